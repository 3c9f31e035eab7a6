"""Global Magnitude Pruning masks: one threshold over all prunable weights.

Pure functions: tensors in, tensors out; no layers, no variables, no globals.
`global_magnitude_masks` is the public entry point; `keep_masks` is the rule every
pruning path calls (`tf_globalmp.driver`). `global_keep_masks` and
`per_layer_keep_masks` build the same graph inside a caller's own ``tf.function``.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from tf_globalmp import min_threshold
from tf_globalmp import selection


@dataclasses.dataclass(frozen=True)
class UpdateResult:
    """What one global mask update did (tf-keras controller and Keras 3 alike)."""

    step: int | None
    target_sparsity: float
    achieved_sparsity: float
    kept: int
    total: int
    threshold: float  # magnitude threshold of the globally shared budget
    floor_layers: int  # layers MT holds at their floor min(sigma, n_l) > 0
    layer_kept: tuple
    unchanged: bool  # masks were already at the target count and were kept


def validate_sparsity(sparsity, name="sparsity"):
    """Returns `sparsity` as a float; ValueError unless it is in [0, 1)."""
    try:
        value = float(sparsity)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1), got {sparsity!r}") from None
    if math.isnan(value) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {sparsity}")
    return value


def n_keep_for(total, sparsity):
    """Number of weights to keep: ``N - round(sparsity * N)`` (Python rounding)."""
    return int(total) - int(round(validate_sparsity(sparsity) * int(total)))


# Graph builders use explicit tf.cond: a caller's AutoGraph must not convert them
# (converting the selection code costs seconds of tracing).
@tf.autograph.experimental.do_not_convert
def global_keep_masks(keys, n_keep, forced_counts, sizes):
    """Graph: exact Global MP with MT ("global" redistribution).

    Each layer keeps its `forced_counts[l]` largest keys; the remaining
    ``n_keep - sum(forced)`` go to the largest other keys network-wide. One
    selection over the concatenated keys (see `selection`): the graph's size does not
    grow with the number of layers beyond one concat and one split.

    Returns (bool masks, threshold key of the shared part, forced masks).
    """
    mask, threshold, forced = _global_flat(selection.concat(keys), n_keep, forced_counts, sizes)
    return selection.split(mask, sizes), threshold, selection.split(forced, sizes)


def _global_flat(keys, n_keep, forced_counts, sizes):
    """`global_keep_masks` on the concatenated keys: (mask, threshold key, forced)."""
    any_forced = tf.reduce_any(forced_counts > 0)
    candidates = tf.cond(  # forced keys become EXCLUDED (magnitude keys are >= 0)
        any_forced,
        lambda: tf.where(
            selection.segment_top_k_mask(keys, forced_counts, sizes), selection.EXCLUDED, keys
        ),
        lambda: keys,
    )
    remaining = n_keep - tf.reduce_sum(forced_counts)
    chosen, threshold = selection.top_k_mask(candidates, remaining)
    forced = candidates < 0
    mask = tf.cond(any_forced, lambda: tf.logical_or(chosen, forced), lambda: chosen)
    return mask, threshold, forced


@tf.autograph.experimental.do_not_convert
def per_layer_keep_masks(keys, keep_counts, sizes):
    """Graph: each layer keeps exactly `keep_counts[l]` of its largest keys."""
    mask = selection.segment_top_k_mask(selection.concat(keys), keep_counts, sizes)
    return selection.split(mask, sizes)


def _flat_keys(flat_weights):
    """Magnitude keys of all weights as one buffer (concatenated first: one copy)."""
    return selection.magnitude_keys(
        selection.concat([tf.cast(w, tf.float32) for w in flat_weights])
    )


def _global_fn(flat_weights, n_keep, forced_counts):
    """Compiled Global MP (+ MT): (flat bool masks, threshold magnitude).

    Called eagerly without MT (all `forced_counts` 0), a smaller graph without the
    MT part runs: it traces and optimises in about half the time.
    """
    if tf.executing_eagerly() and not np.any(np.asarray(forced_counts)):
        return _global_no_mt_graph(flat_weights, n_keep)
    return _global_graph(flat_weights, n_keep, forced_counts)


@tf.function(reduce_retracing=True, autograph=False)
def _global_graph(flat_weights, n_keep, forced_counts):
    sizes = selection.sizes_of(flat_weights)
    mask, threshold, _ = _global_flat(_flat_keys(flat_weights), n_keep, forced_counts, sizes)
    return selection.split(mask, sizes), selection.keys_to_magnitude(threshold)


@tf.function(reduce_retracing=True, autograph=False)
def _global_no_mt_graph(flat_weights, n_keep):
    sizes = selection.sizes_of(flat_weights)
    mask, threshold = selection.top_k_mask(_flat_keys(flat_weights), n_keep)
    return selection.split(mask, sizes), selection.keys_to_magnitude(threshold)


@tf.function(reduce_retracing=True, autograph=False)
def _per_layer_fn(flat_weights, keep_counts):
    sizes = selection.sizes_of(flat_weights)
    mask = selection.segment_top_k_mask(_flat_keys(flat_weights), keep_counts, sizes)
    return selection.split(mask, sizes)


def _finite_flags(flat_weights):
    """Per float32 tensor: whether every entry is finite (numpy bools), eagerly.

    One sum per tensor: a sum is finite only if every term is (NaN and inf propagate);
    a sum that overflowed on finite terms is re-checked entry by entry.
    """
    finite = np.array(tf.math.is_finite(tf.stack([tf.reduce_sum(w) for w in flat_weights])))
    for i in np.flatnonzero(~finite):
        finite[i] = bool(tf.reduce_all(tf.math.is_finite(flat_weights[i])))
    return finite


def check_finite(flat_weights, names):
    """ValueError naming the first layer whose weights hold NaN or inf."""
    finite = _finite_flags([tf.cast(w, tf.float32) for w in flat_weights])
    if not finite.all():
        bad = int(np.argmin(finite))
        raise ValueError(
            f"weights of layer {names[bad]!r} contain NaN or inf; cannot compute a "
            "magnitude threshold (check the learning rate / loss for divergence)"
        )


def layer_names(weights, names=None):
    if names is not None:
        names = list(names)
        if len(names) != len(weights):
            raise ValueError(f"names has {len(names)} entries for {len(weights)} weights")
        return names
    return [getattr(w, "name", None) or f"weights[{i}]" for i, w in enumerate(weights)]


def keep_masks(flat_weights, n_keep, sigma=0, redistribution="global"):
    """The one Global MP (+ MT) rule: flat bool keep masks holding exactly `n_keep`.

    Every path computes its masks here: `global_magnitude_masks`, the tf-keras
    controller and the Keras 3 pruner (through `tf_globalmp.driver`).

    Args:
      flat_weights: list of flat float tensors (already masked: pruned entries 0).
      n_keep: total number of weights to keep.
      sigma: MT per-layer minimum (a count); each layer keeps min(sigma, n_l).
      redistribution: "global" or "proportional" (see `min_threshold`).

    Returns:
      (one flat bool tensor per weight, threshold magnitude as a float: the smallest
      magnitude of the globally shared budget; nan for "proportional" with MT).
    """
    sizes = [int(w.shape.num_elements()) for w in flat_weights]
    forced = min_threshold.forced_keep_counts(sizes, sigma, n_keep)
    if redistribution == "proportional" and sigma > 0:
        plain, _ = _global_fn(
            flat_weights, tf.constant(n_keep, tf.int32), tf.zeros([len(sizes)], tf.int32)
        )
        counts = [int(tf.reduce_sum(tf.cast(m, tf.int32))) for m in plain]
        keep = min_threshold.proportional_keep_counts(counts, sizes, forced, n_keep)
        return per_layer_masks(flat_weights, keep), float("nan")
    masks, threshold = _global_fn(
        flat_weights, tf.constant(n_keep, tf.int32), tf.constant(forced, tf.int32)
    )
    return masks, float(threshold)


def per_layer_masks(flat_weights, keep_counts):
    """Flat bool masks: layer l keeps exactly its `keep_counts[l]` largest magnitudes."""
    return _per_layer_fn(flat_weights, tf.constant(list(keep_counts), tf.int32))


def global_magnitude_masks(
    weights,
    sparsity,
    min_weights=0,
    *,
    min_weights_fraction=None,
    redistribution="global",
    names=None,
):
    """0/1 masks that prune `sparsity` of all `weights` with one global threshold.

    Args:
      weights: sequence of arrays or tensors (float16/bfloat16/float32/float64), any
        shapes; one entry per layer.
      sparsity: network-wide fraction to prune, in [0, 1). Exactly
        ``n_keep = N - round(sparsity * N)`` ones are returned in total.
      min_weights: Minimum Threshold sigma as a count: every layer keeps its
        ``min(sigma, layer size)`` largest magnitudes.
      min_weights_fraction: sigma as a fraction of N instead (``int(N * f)``).
      redistribution: ``"global"`` (exact: the remaining budget goes to the
        largest other magnitudes network-wide) or ``"proportional"`` (the paper
        code's per-layer scaling). Without MT both equal plain Global MP.
      names: optional layer names for error messages.

    Returns:
      One mask per weight, same shape and dtype, holding 0 and 1. Ties at the
      threshold are kept lowest position first (layers in order, elements in
      row-major order), so the count is exact.

    Raises:
      ValueError: sparsity outside [0, 1); MT needing more than n_keep weights
        (names `min_weights`); NaN/inf weights (names the layer); empty input.
    """
    weights = list(weights)
    if not weights:
        raise ValueError("weights must hold at least one array, got an empty sequence")
    sparsity = validate_sparsity(sparsity)
    min_threshold.validate_redistribution(redistribution)
    names = layer_names(weights, names)
    tensors = [tf.convert_to_tensor(w) for w in weights]
    for name, t in zip(names, tensors):
        if not t.dtype.is_floating:
            raise ValueError(f"weights {name!r} must be floating point, got {t.dtype.name}")
    flat = [tf.reshape(t, [-1]) for t in tensors]
    sizes = [int(t.shape.num_elements()) for t in tensors]
    total = sum(sizes)
    check_finite(flat, names)
    n_keep = n_keep_for(total, sparsity)
    sigma = min_threshold.resolve_min_weights(total, min_weights, min_weights_fraction)
    bool_masks, _ = keep_masks(flat, n_keep, sigma, redistribution)
    return [
        tf.reshape(tf.cast(m, t.dtype), tf.shape(t)) for m, t in zip(bool_masks, tensors)
    ]
