"""FastGRNN on HAR-2: the paper's rows as presets, and the config."""

import dataclasses

from tf_globalmp.configs import common
from tf_globalmp.configs.common import field

# The paper's rows (appendix table). The fine-tune learning rates are printed as
# .5 / .5 / .55 for Adam; `HAR2_PRESETS` keeps them as printed.
HAR2_PRESETS = {
    "paper_train": dict(mode="dense", epochs=300, batch_size=100, learning_rate=0.0064),
    "paper_r9_8": dict(mode="structured", ranks=(9, 8), epochs=300, batch_size=64,
                       learning_rate=0.5),
    "paper_r9_7": dict(mode="structured", ranks=(9, 7), epochs=300, batch_size=100,
                       learning_rate=0.5),
    "paper_r8_7": dict(mode="structured", ranks=(8, 7), epochs=300, batch_size=100,
                       learning_rate=0.55),
}
HAR2_MODES = ("dense", "structured", "unstructured")


@dataclasses.dataclass
class Har2Config:
    """FastGRNN on HAR-2: dense training, or structured / unstructured Global MP fine-tuning.

    Defaults are the paper's dense row (300 epochs, batch 100, Adam 0.0064).
    """

    mode: str = field("dense", "dense | structured | unstructured.", choices=HAR2_MODES)
    preset: str = field("custom", "Paper hyperparameters of one row (flags override).")
    # Data: None = the shared npz (tf_globalmp.data.har.DEFAULT_PATH); an npz file or
    # the official "UCI HAR Dataset" folder otherwise.
    data_dir: str | None = field(None, "HAR npz or official 'UCI HAR Dataset' dir.")
    validation_fraction: float = field(
        0.0, "Training subjects held out (for tuning only).")
    # Model: FastGRNN, hidden 80, full-rank factors (rW = 9, rU = 80) unless given.
    units: int = field(80, "FastGRNN hidden units.")
    w_rank: int | None = field(None, "Rank of the W factors (None: full rank).")
    u_rank: int | None = field(None, "Rank of the U factors (None: full rank).")
    # Faster on CPU (measured: ~2.3 vs ~3.5 s/epoch).
    unroll: bool = field(True, "Unroll the RNN.", resumable=True)
    # Pruning (modes structured / unstructured), from the dense model in `pretrained`.
    pretrained: str | None = field(None, "Dense run dir to fine-tune.")
    ranks: tuple[int, int] = field((9, 8), "Target ranks rW,rU (structured per_factor).")
    structured_scope: str = field(
        "per_factor", "Structured: per-pair ranks (paper) or one global budget.",
        choices=("per_factor", "global"))
    # None: the parameter count of `ranks` (structured global / unstructured).
    sparsity: float | None = field(None, "Network-wide sparsity (default: that of --ranks, "
                                   "i.e. the same parameter count).")
    # Optimisation (Adam).
    epochs: int = field(300, "Epochs.", resumable=True)
    batch_size: int = field(100, "Batch size.")
    learning_rate: float = field(0.0064, "Adam learning rate.")
    # Global gradient-norm clipping (not in the paper): without it, dense training at
    # Adam 0.0064 collapsed at epoch 20 (test 0.91 -> 0.76, never recovered). None: off.
    clipnorm: float | None = field(1.0, "Global gradient-norm clip.")
    # Printed paper learning rate when `learning_rate` was changed from it (else None).
    paper_learning_rate: float | None = field(None, "The preset's LR, if changed.")
    learning_rate_note: str = field("", "Why the LR differs from paper.")
    # "paper" or a label for a reduced budget; written to outputs.
    budget: str = field("paper", "Budget label written to every output.", resumable=True)
    export_tflite: bool = field(False, "Also write model.tflite.", resumable=True)
    seed: int = field(0, "Random seed.")
    threads: int = field(1, "TF intra- and inter-op threads.", resumable=True)
    steps_per_execution: int = field(1, "Batches per compiled call (model.compile).")

    def validate(self):
        common.check_choices(self)
        common.check_preset(self.preset, HAR2_PRESETS)
        if len(self.ranks) != 2 or any(not isinstance(r, int) or r < 1 for r in self.ranks):
            raise ValueError(f"ranks must be two positive ints (rW, rU), got {self.ranks!r}")
        if self.sparsity is not None and not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.mode != "dense" and not self.pretrained:
            raise ValueError(f"mode {self.mode!r} fine-tunes a dense model: pass pretrained "
                             "(a dense run directory), got None")
        common.check_exists("pretrained", self.pretrained)
        for name in ("epochs", "batch_size", "units", "threads", "steps_per_execution"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "epochs" else 1):
                raise ValueError(f"{name} must be a positive int (epochs >= 0), got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ValueError(f"clipnorm must be > 0 or None, got {self.clipnorm}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        return self


def har2_config(preset="custom", **overrides):
    """A Har2Config from a preset (HAR2_PRESETS) with `overrides` (None values ignored).
    A learning rate other than the preset's keeps the preset's as `paper_learning_rate`."""
    values = common.preset_values(HAR2_PRESETS, preset, overrides)
    paper_lr = HAR2_PRESETS.get(preset, {}).get("learning_rate")
    if "paper_learning_rate" not in values and values.get("learning_rate", paper_lr) != paper_lr:
        values["paper_learning_rate"] = paper_lr
    return Har2Config(preset=preset, **values).validate()
