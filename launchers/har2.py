"""FastGRNN on HAR-2: dense training, or structured / unstructured Global MP fine-tuning.

    python launchers/har2.py --preset=paper_train --learning_rate=0.001 --workdir=runs/har2_dense
    python launchers/har2.py --preset=paper_r9_8 --pretrained=runs/har2_dense \\
        --learning_rate=0.001 --workdir=runs/har2_r9_8
    python launchers/har2.py --mode=unstructured --pretrained=runs/har2_dense ...

Re-running the same command resumes from the last finished epoch.
"""

import tf_globalmp  # noqa: F401  (selects tf-keras before TensorFlow loads)

import sys

from absl import app
from absl import flags

from tf_globalmp import configs
from tf_globalmp import train

_D = configs.Har2Config()
_MODE = flags.DEFINE_enum("mode", None, list(configs.HAR2_MODES),
                          f"Default: the preset's, else {_D.mode}.")
_PRESET = flags.DEFINE_enum("preset", "custom", ["custom", *configs.HAR2_PRESETS],
                            "Paper hyperparameters of one row (flags below override).")
_RANKS = flags.DEFINE_list("ranks", None, f"Target ranks rW,rU (default {_D.ranks}).")
_SCOPE = flags.DEFINE_enum("structured_scope", None, ["per_factor", "global"],
                           "Structured: per-pair ranks (paper) or one global budget.")
_SPARSITY = flags.DEFINE_float("sparsity", None, "Network-wide sparsity (default: that "
                               "of --ranks, i.e. the same parameter count).")
_EPOCHS = flags.DEFINE_integer("epochs", None, f"Epochs (default: preset, else {_D.epochs}).")
_BATCH = flags.DEFINE_integer("batch_size", None, "Batch size (default: preset).")
_LR = flags.DEFINE_float("learning_rate", None, "Adam learning rate (default: preset).")
_LR_NOTE = flags.DEFINE_string("learning_rate_note", None, "Why the LR differs from paper.")
_BUDGET = flags.DEFINE_string("budget", None, "Budget label written to every output.")
_VAL = flags.DEFINE_float("validation_fraction", None, "Training subjects held out.")
_DATA = flags.DEFINE_string("data_dir", None, "HAR npz or official 'UCI HAR Dataset' dir.")
_PRETRAINED = flags.DEFINE_string("pretrained", None, "Dense run dir to fine-tune.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/har2", "Run directory (resumable).")
_EXPORT = flags.DEFINE_bool("export_tflite", False, "Also write model.tflite.")
_SEED = flags.DEFINE_integer("seed", None, f"Random seed (default {_D.seed}).")
_CLIP = flags.DEFINE_float("clipnorm", None, f"Grad-norm clip (default {_D.clipnorm}; 0: off).")
_UNROLL = flags.DEFINE_bool("unroll", None, f"Unroll the RNN (default {_D.unroll}).")
_THREADS = flags.DEFINE_integer("threads", None, f"TF threads (default {_D.threads}).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        ranks = tuple(int(r) for r in _RANKS.value) if _RANKS.value else None
    except ValueError:
        raise app.UsageError(f"--ranks must be two ints like 9,8, got {_RANKS.value}")
    lr = _LR.value
    preset_lr = configs.HAR2_PRESETS.get(_PRESET.value, {}).get("learning_rate")
    try:
        config = configs.har2_config(
            _PRESET.value, mode=_MODE.value, ranks=ranks, structured_scope=_SCOPE.value,
            sparsity=_SPARSITY.value, epochs=_EPOCHS.value, batch_size=_BATCH.value,
            learning_rate=lr, budget=_BUDGET.value, validation_fraction=_VAL.value,
            data_dir=_DATA.value, pretrained=_PRETRAINED.value, seed=_SEED.value,
            export_tflite=_EXPORT.value, threads=_THREADS.value, unroll=_UNROLL.value,
            clipnorm=_CLIP.value or None,
            paper_learning_rate=preset_lr if lr is not None and lr != preset_lr else None,
            learning_rate_note=_LR_NOTE.value,
        )
    except ValueError as e:  # one line naming the flag, before any work
        sys.exit(f"--{str(e).split()[0]}: {e}")
    metrics = train.run_har2(config, _WORKDIR.value, verbose=2)
    print(f"\nHAR-2 FastGRNN ({config.mode}, preset {config.preset}, budget {config.budget}): "
          f"best test {100 * metrics['best_test_accuracy']:.2f}% (epoch "
          f"{metrics['best_epoch']}), final {100 * metrics['final_test_accuracy']:.2f}%, "
          f"ranks (rW, rU) = {tuple(metrics['ranks'])}, "
          f"{metrics['nonzero_prunable_weights']} non-zero prunable weights")
    print(f"Run written to {_WORKDIR.value}/")


if __name__ == "__main__":
    app.run(main)
