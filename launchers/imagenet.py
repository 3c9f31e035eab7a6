"""ImageNet: ResNet-50 v1.5 / MobileNet-V1 / V2, dense, one-shot or gradual Global MP;
re-running a command resumes it. Commands (paper rows, CPU smoke test): README, ImageNet.
"""

import tf_globalmp  # noqa: F401  (selects tf-keras before TensorFlow loads)

from absl import app
from absl import flags

import _flags
from tf_globalmp import configs

NAMES = _flags.define(configs.ImagenetConfig, (
    "model", "mode", "sparsity", "min_weights_fraction", "data_dir", "tfds_data_dir", "fake_data",
    "pretrained", "epochs", "steps_per_epoch", "eval_steps", "batch_size", "learning_rate",
    "image_size", "precision", "distribution", "export_tflite", "seed", "verbose",
    "checkpoint_every_steps", "steps_per_execution", "granularity", "min_channels",
    "channel_multiple",
    "flops_target"), presets=configs.IMAGENET_PRESETS)
CPUS = flags.DEFINE_integer("logical_cpus", 0, "Split the CPU into N devices (testing).")
WORKDIR = _flags.workdir("runs/imagenet")


def _cpus(config):  # before TensorFlow initialises its devices
    if CPUS.value > 1:
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * CPUS.value)


def _summary(config, m, workdir):
    print(f"{config.model} {config.mode} ({config.budget}): top-1 {m['final_test_top1']:.4f}, "
          f"sparsity {m['achieved_sparsity']:.4f}, FLOPs pruned {m['flops_pruned']:.4f} -> "
          f"{workdir}")


main = _flags.main(configs.imagenet_config, NAMES, WORKDIR, "imagenet", _summary, before=_cpus,
    extra=lambda: dict(eval_batch_size=_flags.value("batch_size")))  # evaluation batch too

if __name__ == "__main__":
    app.run(main)
