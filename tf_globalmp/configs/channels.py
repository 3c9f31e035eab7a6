"""The channel-pruning field group, shared by the CIFAR-10 and ImageNet configs."""

import dataclasses

from tf_globalmp.configs import common
from tf_globalmp.configs.common import field

GRANULARITIES = ("weight", "channel")
CHANNEL_SCORES = ("mean", "relative", "l1", "l2")  # tf_globalmp.channels.select.SCORES
# (the field default below is select.DEFAULT_SCORE; tests/channels_task_test.py)
CHANNEL_DISTRIBUTIONS = ("global", "uniform")  # tf_globalmp.channels.rule.DISTRIBUTIONS


@dataclasses.dataclass
class ChannelPruning:
    """Global channel pruning (`prune_low_magnitude_global(granularity="channel")`):
    `sparsity` is then the fraction of channel groups removed, `min_channels` the
    per-layer minimum, and the run also writes the physically smaller model
    (`tf_globalmp.shrink`) as model_shrunk.keras (and exports it with export_tflite).
    Needs the Pruning group's fields."""

    granularity: str = field("weight", "weight: Global MP of single weights; channel: whole "
                             "channel groups (sparsity = fraction of groups removed).",
                             choices=GRANULARITIES)
    min_channels: int = field(1, "Channel granularity: output channels every layer keeps.")
    channel_score: str = field("relative", "Channel granularity: group score (relative: "
                               "|w| over its layer's mean |w|; mean: mean |w|; l1; l2).",
                               choices=CHANNEL_SCORES)
    channel_multiple: int = field(1, "Channel granularity: round every layer's kept "
                                  "channels to a multiple of this (1: off; 16 suits "
                                  "XNNPACK); the group count is then approximate.")
    # One-shot: the sparsity is set from the pretrained weights so that at least this
    # fraction of the kernel multiply-adds (tf_globalmp.flops) is removed; `sparsity`
    # is then ignored (metrics.json gives the sparsity used).
    flops_target: float | None = field(
        None, "Channel granularity, one_shot: remove at least this fraction of the FLOPs "
        "(sets sparsity from the pretrained weights).")

    def inert_fields(self):
        """The channel fields that do not affect a run of this config: all but
        `granularity` unless it is "channel" (so runs made before a channel default
        changed still resume and match their presets)."""
        return () if self.granularity == "channel" else (
            "min_channels", "channel_score", "channel_multiple")

    def check_channel_pruning(self, distribution):
        """Checks the fields against the run's layer distribution (global/uniform/...)."""
        common.check_ints(self, {"min_channels": 0, "channel_multiple": 1})
        if self.granularity != "channel":
            if self.flops_target is not None:
                raise ValueError("flops_target needs granularity 'channel', got "
                                 f"granularity={self.granularity!r}")
            return
        if distribution not in CHANNEL_DISTRIBUTIONS:
            raise ValueError(f"granularity 'channel' takes a layer distribution in "
                             f"{CHANNEL_DISTRIBUTIONS}, got {distribution!r}")
        if self.flops_target is not None:
            if not 0.0 < self.flops_target < 1.0:
                raise ValueError(f"flops_target must be in (0, 1), got {self.flops_target}")
            if self.mode != "one_shot":
                raise ValueError("flops_target sets the sparsity from a pretrained model: "
                                 f"mode must be 'one_shot', got {self.mode!r}")
        if self.min_weights or self.min_weights_fraction:
            raise ValueError("granularity 'channel' takes min_channels, not min_weights: got "
                             f"min_weights={self.min_weights}, "
                             f"min_weights_fraction={self.min_weights_fraction}")
