"""CIFAR-10: dense training, one-shot or gradual Global MP (paper rows as presets).

    python launchers/cifar10.py --preset=cpu_resnet20_dense --data_dir=cifar10-jpeg.tar.gz \
        --workdir=runs/r20_dense
    python launchers/cifar10.py --preset=cpu_resnet20_gmp90 --pretrained=runs/r20_dense \
        --data_dir=cifar10-jpeg.tar.gz --workdir=runs/r20_gmp90
"""

import sys

import tf_globalmp  # noqa: F401  (selects tf-keras before TensorFlow loads)

from absl import app
from absl import flags

from tf_globalmp import configs
from tf_globalmp import models

_PRESETS = ["custom"] + sorted(configs.CIFAR10_PRESETS)
_PRESET = flags.DEFINE_enum("preset", "custom", _PRESETS,
                            "paper_<row>: the paper's recipe; cpu_<row>: reduced budget.")
_STR = {"model": (sorted(models.CIFAR_MODELS), "Architecture."),
        "mode": (list(configs.CIFAR10_MODES), "dense | one_shot | gradual."),
        "redistribution": (["global", "proportional"], "How MT's cost is shared."),
        "lr_schedule": (["cosine", "step", "constant"], "Learning-rate decay."),
        "distribution": (["none", "mirrored"], "tf.distribute strategy."),
        "layer_distribution": (list(configs.CIFAR10_LAYER_DISTRIBUTIONS), "global: Global MP; "
                               "uniform/erk/lamp/random: baselines; tfmot: tfmot's own "
                               "prune_low_magnitude.")}
for _name, (_values, _help) in _STR.items():
    flags.DEFINE_enum(_name, None, _values, _help + " Default: preset / config.")
_FLOATS = {"sparsity": "Target global sparsity.", "min_weights_fraction": "MT as a fraction "
           "of all prunable weights.", "learning_rate": "Peak learning rate.",
           "weight_decay": "Coupled L2 on kernels.", "label_smoothing": "Label smoothing.",
           "momentum": "SGD momentum.", "dropout": "Dropout (WRN, MobileNet-V2).",
           "warmup_epochs": "Linear warmup.", "pruning_begin": "Gradual: start (fraction).",
           "pruning_end": "Gradual: end (fraction)."}
_INTS = {"min_weights": "MT: weights kept per layer.", "epochs": "Training epochs.",
         "batch_size": "Batch size.", "max_train_examples": "Training subset size.",
         "pruning_frequency": "Gradual: steps between updates (0: per epoch).",
         "threads": "TF intra/inter-op threads (0: default).", "seed": "Random seed.",
         "verbose": "0 silent, 1 progress bar, 2 line per epoch.",
         "checkpoint_every_steps": "Also checkpoint every N steps (0: epoch ends only)."}
for _name, _help in _FLOATS.items():
    flags.DEFINE_float(_name, None, _help + " Default: preset / config.")
for _name, _help in _INTS.items():
    flags.DEFINE_integer(_name, None, _help + " Default: preset / config.")
for _name, _help in {"nesterov": "Nesterov momentum.", "mixed_bfloat16": "bfloat16 compute.",
                     "export_tflite": "Also write model.tflite (sparse).",
                     "deterministic": "Op determinism (bit-identical resume)."}.items():
    flags.DEFINE_boolean(_name, None, _help + " Default: preset / config.")
flags.DEFINE_string("pretrained", None, "Dense run dir or .keras file (mode one_shot).")
flags.DEFINE_string("data_dir", None, "Image folder or its .tar.gz; default: tfds cifar10.")
flags.DEFINE_string("workdir", None, "Run directory (resumable).")
flags.mark_flag_as_required("workdir")
_FIELDS = list(_STR) + list(_FLOATS) + list(_INTS) + [
    "nesterov", "mixed_bfloat16", "export_tflite", "deterministic", "pretrained", "data_dir"]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config = configs.cifar10_config(
            _PRESET.value, **{n: getattr(flags.FLAGS, n) for n in _FIELDS})
    except ValueError as e:  # one line naming the flag
        sys.exit(f"--{str(e).split()[0]}: {e}")
    from tf_globalmp import train  # imports TensorFlow: only once the flags are valid

    print(f"CIFAR-10 {config.model} {config.mode} ({config.budget}) -> {flags.FLAGS.workdir}")
    m = train.run_cifar10(config, flags.FLAGS.workdir)
    print(f"{m['data']}, {m['budget']}: best test {100 * m['best_test_accuracy']:.2f}% "
          f"(epoch {m['best_epoch']}), final {100 * m['final_test_accuracy']:.2f}%, "
          f"sparsity {100 * m['achieved_sparsity']:.2f}% -> {flags.FLAGS.workdir}/")


if __name__ == "__main__":
    app.run(main)
