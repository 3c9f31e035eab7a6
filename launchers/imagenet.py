"""ImageNet: ResNet-50 v1.5 / MobileNet-V1 / V2, dense, one-shot or gradual Global MP.

    python launchers/imagenet.py --preset=paper_resnet50_dense --data_dir=/data/imagenet \\
        --distribution=mirrored --precision=mixed_float16 --workdir=runs/r50_dense
    python launchers/imagenet.py --preset=paper_resnet50_oneshot90 --pretrained=runs/r50_dense \\
        --data_dir=/data/imagenet --distribution=mirrored --workdir=runs/r50_oneshot90
    python launchers/imagenet.py --preset=cpu_fake_resnet50_oneshot90 --workdir=/tmp/smoke

Re-running the same command resumes from the last finished epoch.
"""

import tf_globalmp  # noqa: F401  (selects tf-keras before TensorFlow loads)

import sys

from absl import app
from absl import flags

from tf_globalmp import configs
from tf_globalmp import train

_D = configs.ImagenetConfig()
_P = list(configs.IMAGENET_PRESETS)
F = flags
_MODEL = F.DEFINE_enum("model", None, ["resnet50", "mobilenet_v1", "mobilenet_v2"],
                       f"Default: the preset's, else {_D.model}.")
_MODE = F.DEFINE_enum("mode", None, list(configs.IMAGENET_MODES), "dense|one_shot|gradual.")
_PRESET = F.DEFINE_enum("preset", "custom", ["custom", *_P], "A paper row (flags override).")
_SPARSITY = F.DEFINE_float("sparsity", None, "Network-wide target sparsity.")
_MT = F.DEFINE_float("min_weights_fraction", None, "MT sigma as a fraction of all weights.")
_DATA = F.DEFINE_string("data_dir", None, "TFRecord dir (train-*-of-*) or tfds manual dir.")
_TFDS = F.DEFINE_string("tfds_data_dir", None, "tfds data_dir for imagenet2012.")
_FAKE = F.DEFINE_bool("fake_data", None, "Random images with ImageNet shapes.")
_PRETRAINED = F.DEFINE_string("pretrained", None, "'imagenet' (Keras) or a local run/model.")
_WORKDIR = F.DEFINE_string("workdir", "runs/imagenet", "Run directory (resumable).")
_EPOCHS = F.DEFINE_integer("epochs", None, "Epochs (default: preset).")
_STEPS = F.DEFINE_integer("steps_per_epoch", None, "0: train_examples // batch_size.")
_EVAL_STEPS = F.DEFINE_integer("eval_steps", None, "0: the whole validation set.")
_BATCH = F.DEFINE_integer("batch_size", None, "Global batch size (default: preset).")
_LR = F.DEFINE_float("learning_rate", None, "Base learning rate (default: preset).")
_SIZE = F.DEFINE_integer("image_size", None, f"Input size (default {_D.image_size}).")
_PRECISION = F.DEFINE_enum("precision", None, list(configs.IMAGENET_PRECISIONS), "Compute.")
_DIST = F.DEFINE_enum("distribution", None, list(configs.IMAGENET_DISTRIBUTIONS),
                      "mirrored: local GPUs; multi_worker: TF_CONFIG cluster.")
_CPUS = F.DEFINE_integer("logical_cpus", 0, "Split the CPU into N devices (testing).")
_EXPORT = F.DEFINE_bool("export_tflite", None, "Also write model.tflite.")
_SEED = F.DEFINE_integer("seed", None, "Random seed.")
_VERBOSE = F.DEFINE_integer("verbose", None, "Keras progress: 0, 1 or 2.")
_CKPT = F.DEFINE_integer("checkpoint_every_steps", None, "Also checkpoint every N steps.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _CPUS.value > 1:
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * _CPUS.value)
    try:
        config = configs.imagenet_config(
            _PRESET.value, model=_MODEL.value, mode=_MODE.value, sparsity=_SPARSITY.value,
            min_weights_fraction=_MT.value, data_dir=_DATA.value, tfds_data_dir=_TFDS.value,
            fake_data=_FAKE.value, pretrained=_PRETRAINED.value, epochs=_EPOCHS.value,
            steps_per_epoch=_STEPS.value, eval_steps=_EVAL_STEPS.value, batch_size=_BATCH.value,
            eval_batch_size=_BATCH.value, learning_rate=_LR.value, image_size=_SIZE.value,
            precision=_PRECISION.value, distribution=_DIST.value, export_tflite=_EXPORT.value,
            seed=_SEED.value, verbose=_VERBOSE.value, checkpoint_every_steps=_CKPT.value)
    except ValueError as e:  # one line naming the flag, before any work
        sys.exit(f"--{str(e).split()[0]}: {e}")
    metrics = train.run_imagenet(config, _WORKDIR.value)
    print(f"{config.model} {config.mode} ({config.budget}): top-1 {metrics['final_test_top1']:.4f},"
          f" sparsity {metrics['achieved_sparsity']:.4f}, FLOPs pruned "
          f"{metrics['flops_pruned']:.4f} -> {_WORKDIR.value}")


if __name__ == "__main__":
    app.run(main)
