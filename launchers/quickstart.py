"""Quickstart: train a small CNN on scikit-learn's digits, prune 90% globally, fine-tune.

    python launchers/quickstart.py [--sparsity=0.9] [--min_weights_fraction=0.005]
"""

import tf_globalmp  # noqa: F401  (selects tf-keras before TensorFlow loads)

from absl import app
from absl import flags

from tf_globalmp import configs
from tf_globalmp import train

_DEFAULTS = configs.QuickstartConfig()
_SPARSITY = flags.DEFINE_float("sparsity", _DEFAULTS.sparsity, "Global sparsity in [0, 1).")
_MT = flags.DEFINE_float("min_weights_fraction", _DEFAULTS.min_weights_fraction,
                         "Minimum Threshold per layer, as a fraction of all prunable weights.")
_REDIST = flags.DEFINE_enum("redistribution", _DEFAULTS.redistribution,
                            ["global", "proportional"], "How MT's cost is shared.")
_EPOCHS = flags.DEFINE_integer("epochs", _DEFAULTS.epochs, "Dense training epochs.")
_FT_EPOCHS = flags.DEFINE_integer("finetune_epochs", _DEFAULTS.finetune_epochs,
                                  "Fine-tuning epochs after pruning.")
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed, "Random seed.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/quickstart", "Output run directory.")
_EXPORT = flags.DEFINE_bool("export_tflite", _DEFAULTS.export_tflite,
                            "Also write model.tflite (sparse float32, verified) to --workdir.")

flags.register_validator("sparsity", lambda v: 0.0 <= v < 1.0,
                         message="--sparsity must be in [0, 1)")
flags.register_validator("min_weights_fraction", lambda v: 0.0 <= v < 1.0,
                         message="--min_weights_fraction must be in [0, 1)")
flags.register_validator("epochs", lambda v: v >= 0, message="--epochs must be >= 0")
flags.register_validator("finetune_epochs", lambda v: v >= 0,
                         message="--finetune_epochs must be >= 0")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    config = configs.QuickstartConfig(
        sparsity=_SPARSITY.value, min_weights_fraction=_MT.value,
        redistribution=_REDIST.value, epochs=_EPOCHS.value,
        finetune_epochs=_FT_EPOCHS.value, seed=_SEED.value, export_tflite=_EXPORT.value,
    )
    metrics, layer_report = train.run(config, _WORKDIR.value, verbose=2)
    print(f"\nData: {metrics['data']} (real 8x8 digits from scikit-learn)")
    print(f"Dense test accuracy:            {100 * metrics['dense_accuracy']:.2f}%")
    print(f"One-shot pruned, no fine-tune:  {100 * metrics['one_shot_accuracy_before_finetune']:.2f}%")
    print(f"Pruned + fine-tuned accuracy:   {100 * metrics['pruned_accuracy']:.2f}%  "
          f"(global sparsity {100 * metrics['achieved_sparsity']:.2f}%, "
          f"MT {metrics['min_weights_per_layer']} weights/layer)\n")
    print(layer_report.to_table())
    if "tflite" in metrics:
        print(f"\nmodel.tflite: {metrics['tflite']['bytes']:,} bytes, "
              f"{metrics['tflite']['ratio']:.3f}x the dense float32 file")
    print(f"\nPruned model and metrics written to {_WORKDIR.value}/ "
          f"({metrics['wall_time_s_this_attempt']:.1f} s)")


if __name__ == "__main__":
    app.run(main)
