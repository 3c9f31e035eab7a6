"""CIFAR-10: dense training, one-shot or gradual Global MP (paper rows as presets).

    python launchers/cifar10.py --preset=cpu_resnet20_dense --data_dir=cifar10-jpeg.tar.gz \
        --workdir=runs/r20_dense
    python launchers/cifar10.py --preset=cpu_resnet20_gmp90 --pretrained=runs/r20_dense \
        --data_dir=cifar10-jpeg.tar.gz --workdir=runs/r20_gmp90
"""

import tf_globalmp  # noqa: F401  (selects tf-keras before TensorFlow loads)

from absl import app

import _flags
from tf_globalmp import configs
from tf_globalmp import models

NAMES = _flags.define(configs.Cifar10Config, (
    "model", "mode", "redistribution", "lr_schedule", "distribution", "layer_distribution",
    "sparsity", "min_weights_fraction", "learning_rate", "weight_decay", "label_smoothing",
    "momentum", "dropout", "warmup_epochs", "pruning_begin", "pruning_end", "min_weights",
    "epochs", "batch_size", "max_train_examples", "pruning_frequency", "threads", "seed",
    "verbose", "checkpoint_every_steps", "steps_per_execution", "nesterov", "mixed_bfloat16",
    "export_tflite", "deterministic", "pretrained", "data_dir", "qat_epochs",
    "qat_learning_rate", "quantize", "granularity", "min_channels", "channel_multiple",
    "channel_score", "flops_target"),
    presets=sorted(configs.CIFAR10_PRESETS), choices={"model": sorted(models.CIFAR_MODELS)})
WORKDIR = _flags.workdir(None)


def _summary(config, m, workdir):
    print(f"{m['data']}, {m['budget']}: best test {100 * m['best_test_accuracy']:.2f}% "
          f"(epoch {m['best_epoch']}), final {100 * m['final_test_accuracy']:.2f}%, "
          f"sparsity {100 * m['achieved_sparsity']:.2f}% -> {workdir}/")


main = _flags.main(
    configs.cifar10_config, NAMES, WORKDIR, "cifar10", _summary,
    before=lambda c: print(f"CIFAR-10 {c.model} {c.mode} ({c.budget}) -> {WORKDIR.value}"))

if __name__ == "__main__":
    app.run(main)
