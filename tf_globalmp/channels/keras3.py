"""Channel pruning and Keras 3: not ported yet; the one check both Keras 3 entry points
(`keras3.GlobalPruner`, `keras3.GlobalPruning`) call. No Keras import here."""

GRANULARITIES = ("weight", "channel")


def check_granularity(granularity):
    """ValueError unless `granularity` is "weight" (channel pruning is tf-keras only)."""
    if granularity == "channel":
        raise ValueError(
            "granularity='channel' is not available for Keras 3 models yet: the channel "
            "dependency analysis reads tf-keras' functional graph and the Keras 3 pruner "
            "masks kernels only (not BatchNorm or biases). Build the model with tf-keras and "
            "use tf_globalmp.prune_low_magnitude_global(model, schedule, "
            "granularity='channel') and tf_globalmp.shrink (README, 'Global channel "
            "pruning').")
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be 'weight' or 'channel', got {granularity!r}")
