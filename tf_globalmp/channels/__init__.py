"""Global channel pruning: whole channel groups ranked by one global threshold.

- `graph`: dependency analysis of a functional tf-keras model into channel groups;
- `select`: pure numpy scores, the global selection with a per-layer minimum, costs
  in groups, channels, weights and FLOPs;
- `rule`: the driver's `mask_rule` and the wrapping behind
  `prune_low_magnitude_global(..., granularity="channel")`;
- `shrink`: the physically smaller model (`tf_globalmp.shrink`);
- `layers`: the layer `shrink` may need (`ChannelZeroPad`).
"""
