"""Run configurations: every default lives here, once."""

import dataclasses


@dataclasses.dataclass
class QuickstartConfig:
    """Train a small CNN on scikit-learn's digits, prune it globally, fine-tune."""

    # Data: scikit-learn load_digits (1,797 real 8x8 images, ships with the package).
    test_fraction: float = 0.2
    # Model.
    filters: int = 32
    hidden_units: int = 64
    # Dense training.
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 2e-3
    # Pruning (one-shot Global MP with Minimum Threshold) and fine-tuning.
    sparsity: float = 0.9
    min_weights_fraction: float = 0.005
    redistribution: str = "global"
    finetune_epochs: int = 8
    finetune_learning_rate: float = 1e-3
    seed: int = 0
    # Also write model.tflite (sparse float32, verified) into the run directory.
    export_tflite: bool = False

    def validate(self):
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        for name in ("epochs", "finetune_epochs", "batch_size"):
            value = getattr(self, name)
            if value < (1 if name == "batch_size" else 0):
                raise ValueError(f"{name} must be non-negative (batch_size >= 1), got {value}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        return self
