"""Quickstart: train a small CNN on scikit-learn's digits, prune 90% globally, fine-tune.

    python launchers/quickstart.py [--sparsity=0.9] [--min_weights_fraction=0.005]
"""

import tf_globalmp  # noqa: F401  (selects tf-keras before TensorFlow loads)

from absl import app

import _flags
from tf_globalmp import configs

NAMES = _flags.define(configs.QuickstartConfig, (
    "sparsity", "min_weights_fraction", "redistribution", "epochs", "finetune_epochs", "seed",
    "export_tflite"))
WORKDIR = _flags.workdir("runs/quickstart", "Output run directory.")


def _summary(config, m, workdir):
    from tf_globalmp import runs  # imports TensorFlow (loaded by the task already)

    print(f"\nData: {m['data']} (real 8x8 digits from scikit-learn)\n"
          f"Dense test accuracy:            {100 * m['dense_accuracy']:.2f}%\n"
          f"One-shot pruned, no fine-tune:  {100 * m['one_shot_accuracy_before_finetune']:.2f}%\n"
          f"Pruned + fine-tuned accuracy:   {100 * m['pruned_accuracy']:.2f}%  (global sparsity "
          f"{100 * m['achieved_sparsity']:.2f}%, MT {m['min_weights_per_layer']} weights/layer)\n")
    print(runs.load_sparsity_report(workdir).to_table())
    if "tflite" in m:
        print(f"\nmodel.tflite: {m['tflite']['bytes']:,} bytes, {m['tflite']['ratio']:.3f}x the "
              "dense float32 file")
    print(f"\nPruned model and metrics written to {workdir}/ "
          f"({m['wall_time_s_this_attempt']:.1f} s)")


main = _flags.main(configs.quickstart_config, NAMES, WORKDIR, "quickstart", _summary, verbose=2)

if __name__ == "__main__":
    app.run(main)
