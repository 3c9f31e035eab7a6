"""FastGRNN on HAR-2: dense training, or structured / unstructured Global MP fine-tuning.

    python launchers/har2.py --preset=tuned_train_s0 --workdir=runs/har2_dense_s0
    python launchers/har2.py --preset=tuned_r9_8_s0 --pretrained=runs/har2_dense_s0 \\
        --workdir=runs/har2_r9_8_s0
    python launchers/har2.py --preset=paper_r9_8 --mode=unstructured \\
        --pretrained=runs/har2_dense_s0 --learning_rate=0.001 ...
    python launchers/har2.py --preset=paper_train --learning_rate=0.002 --lr_schedule=cosine \\
        --validation_fraction=0.3 --epochs=60 ...   # a tuning run: the test set is not used

Presets: paper_<row> (as printed), adam1e3_<row> (the committed constant-LR runs),
tuned_<row>_s<seed> (benchmarks/har2_seeds.sh). Re-running the same command resumes
from the last finished epoch.
"""

import tf_globalmp  # noqa: F401  (selects tf-keras before TensorFlow loads)

from absl import app

import _flags
from tf_globalmp import configs

NAMES = _flags.define(configs.Har2Config, (
    "mode", "ranks", "structured_scope", "sparsity", "epochs", "batch_size", "learning_rate",
    "lr_schedule", "lr_boundaries", "lr_decay_factor", "learning_rate_note", "budget",
    "validation_fraction", "validation_seed", "data_dir", "pretrained",
    "export_tflite", "seed", "clipnorm", "unroll", "threads", "steps_per_execution"),
    presets=configs.HAR2_PRESETS)
WORKDIR = _flags.workdir("runs/har2")


def _summary(config, m, workdir):
    on = "val" if config.validation_fraction > 0 else "test"
    print(f"\nHAR-2 FastGRNN ({config.mode}, preset {config.preset}, budget {config.budget}): "
          f"best {on} {100 * m[f'best_{on}_accuracy']:.2f}% (epoch {m['best_epoch']}), final "
          f"{100 * m[f'final_{on}_accuracy']:.2f}%, ranks (rW, rU) = {tuple(m['ranks'])}, "
          f"{m['nonzero_prunable_weights']} non-zero prunable weights")
    print(f"Run written to {workdir}/")


main = _flags.main(configs.har2_config, NAMES, WORKDIR, "har2", _summary, verbose=2)

if __name__ == "__main__":
    app.run(main)
