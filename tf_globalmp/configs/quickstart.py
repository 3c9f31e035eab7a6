"""Quickstart: a small CNN on scikit-learn's digits, pruned once globally, fine-tuned."""

import dataclasses

from tf_globalmp.configs import common
from tf_globalmp.configs.common import field


@dataclasses.dataclass
class QuickstartConfig:
    """Train a small CNN on scikit-learn's digits, prune it globally, fine-tune."""

    # Data: scikit-learn load_digits (1,797 real 8x8 images, ships with the package).
    test_fraction: float = field(0.2, "Fraction of the digits held out for testing.")
    # Model.
    filters: int = field(32, "Convolution filters.")
    hidden_units: int = field(64, "Dense hidden units.")
    # Dense training.
    epochs: int = field(15, "Dense training epochs.", resumable=True)
    batch_size: int = field(32, "Batch size.")
    learning_rate: float = field(2e-3, "Adam learning rate (dense training).")
    # Pruning (one-shot Global MP with Minimum Threshold) and fine-tuning.
    sparsity: float = field(0.9, "Global sparsity in [0, 1).")
    min_weights_fraction: float = field(
        0.005, "Minimum Threshold per layer, as a fraction of all prunable weights.")
    redistribution: str = field("global", "How MT's cost is shared.",
                                choices=common.REDISTRIBUTIONS)
    finetune_epochs: int = field(8, "Fine-tuning epochs after pruning.")
    finetune_learning_rate: float = field(1e-3, "Adam learning rate (fine-tuning).")
    seed: int = field(0, "Random seed.")
    export_tflite: bool = field(
        False, "Also write model.tflite (sparse float32, verified) to --workdir.",
        resumable=True)

    def validate(self):
        common.check_choices(self)
        common.check_fractions(self, ("sparsity", "min_weights_fraction"))
        for name in ("epochs", "finetune_epochs", "batch_size"):
            value = getattr(self, name)
            if value < (1 if name == "batch_size" else 0):
                raise ValueError(f"{name} must be non-negative (batch_size >= 1), got {value}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        return self


def quickstart_config(**overrides):
    """A validated QuickstartConfig with `overrides` (None values ignored)."""
    return QuickstartConfig(**{k: v for k, v in overrides.items() if v is not None}).validate()
