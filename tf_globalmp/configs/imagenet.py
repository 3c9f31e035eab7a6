"""ImageNet: the paper's ResNet-50 / MobileNet-V1 rows and CPU smoke tests as presets,
and the config."""

import dataclasses

from tf_globalmp.configs import channels
from tf_globalmp.configs import common
from tf_globalmp.configs.common import field

# ImageNet: one preset per row of the paper's ResNet-50 and MobileNet-V1 tables
# (appendix recipes, PAPER_NOTES.md). Batch 256 is global (split over the replicas).
# One-shot rows fine-tune the dense model given as `pretrained`; gradual rows train
# from scratch with the cubic schedule from epoch 20 to 79 of 100 (STR's GMP baseline).
_R50 = dict(model="resnet50", epochs=100, batch_size=256)
_R50_TRAIN = dict(_R50, momentum=0.875, weight_decay=3.1e-5, learning_rate=0.256,
                  warmup_epochs=5.0, label_smoothing=0.1)
_R50_HIGH = dict(_R50, mode="one_shot", momentum=0.95, weight_decay=0.0, learning_rate=0.0512,
                 label_smoothing=0.05)
_MNV1_FT = dict(model="mobilenet_v1", mode="one_shot", epochs=120, batch_size=256,
                momentum=0.875, label_smoothing=0.1)
IMAGENET_PRESETS = {
    "paper_resnet50_dense": dict(_R50_TRAIN),
    "paper_resnet50_gradual80": dict(_R50_TRAIN, mode="gradual", sparsity=0.8),
    "paper_resnet50_gradual90": dict(_R50_TRAIN, mode="gradual", sparsity=0.9),
    "paper_resnet50_gradual95_3": dict(_R50_TRAIN, mode="gradual", sparsity=0.953),
    "paper_resnet50_gradual98_05": dict(_R50_TRAIN, mode="gradual", sparsity=0.9805),
    "paper_resnet50_oneshot80": dict(_R50, mode="one_shot", sparsity=0.8, momentum=0.875,
                                     weight_decay=2.3e-5, learning_rate=0.0256,
                                     warmup_epochs=5.0, label_smoothing=0.1),
    "paper_resnet50_oneshot90": dict(_R50, mode="one_shot", sparsity=0.9, momentum=0.875,
                                     weight_decay=7e-6, learning_rate=0.1024,
                                     label_smoothing=0.1),
    "paper_resnet50_oneshot95_3": dict(_R50_HIGH, sparsity=0.953),
    "paper_resnet50_oneshot98_05": dict(_R50_HIGH, sparsity=0.9805),
    "paper_mobilenet_v1_dense": dict(model="mobilenet_v1", epochs=100, batch_size=256,
                                     momentum=0.875, weight_decay=3.1e-5, learning_rate=0.256,
                                     warmup_epochs=5.0, label_smoothing=0.1),
    "paper_mobilenet_v1_oneshot75": dict(_MNV1_FT, sparsity=0.75, weight_decay=1e-5,
                                         learning_rate=0.0512),
    "paper_mobilenet_v1_oneshot90": dict(_MNV1_FT, sparsity=0.9, weight_decay=1e-5,
                                         learning_rate=0.0256),
    "paper_mobilenet_v1_oneshot90_mt": dict(_MNV1_FT, sparsity=0.9, weight_decay=0.0,
                                            learning_rate=0.0512, min_weights_fraction=0.002),
}
# Reduced budgets for this CPU: a paper row on fake data, 3 steps of 8 images at 64x64
# (a smoke test of the whole pipeline, labelled "reduced budget" in every output).
_IMAGENET_SMOKE = dict(fake_data=True, epochs=1, steps_per_epoch=3, batch_size=8,
                       eval_batch_size=8, eval_steps=1, image_size=64, warmup_epochs=0.0)
# Global channel pruning (granularity "channel") at 30% / 50% of the FLOPs removed
# (tf_globalmp.flops' accounting: multiply-adds at 224x224), one-shot from `pretrained`
# with the paper's one-shot fine-tuning recipe of the nearest row (ResNet-50 80%,
# MobileNet-V1 75%). Not rows of the paper: channel pruning is this package's extension.
IMAGENET_PRESETS.update({
    f"paper_{row}_channel{t}": dict(IMAGENET_PRESETS[f"paper_{row}"], granularity="channel",
                                    flops_target=t / 100, min_channels=8)
    for row in ("resnet50_oneshot80", "mobilenet_v1_oneshot75") for t in (30, 50)})
IMAGENET_CPU_ROWS = {
    "cpu_fake_resnet50_channel50": "paper_resnet50_oneshot80_channel50",
    "cpu_fake_mobilenet_v1_channel50": "paper_mobilenet_v1_oneshot75_channel50",
    "cpu_fake_resnet50_oneshot90": "paper_resnet50_oneshot90",
    "cpu_fake_resnet50_gradual90": "paper_resnet50_gradual90",
    "cpu_fake_mobilenet_v1_oneshot90_mt": "paper_mobilenet_v1_oneshot90_mt",
}
IMAGENET_PRESETS.update({name: dict(IMAGENET_PRESETS[row], **_IMAGENET_SMOKE)
                         for name, row in IMAGENET_CPU_ROWS.items()})
IMAGENET_MODES = common.MODES
IMAGENET_PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
IMAGENET_DISTRIBUTIONS = ("none", "mirrored", "multi_worker")

# tf_globalmp.models.imagenet.IMAGENET_MODELS and tf_globalmp.data.imagenet.PREPROCESSING
# (kept in sync by a test; named here so a config is checked without TensorFlow).
_MODELS = ("mobilenet_v1", "mobilenet_v2", "resnet50")
_PREPROCESSING = ("mean_std", "inception")


@dataclasses.dataclass
class _ImagenetData(common.Run):
    """ImageNet's data and model fields (in config.json after Run's)."""

    # Data (tf_globalmp.data.imagenet): a TFRecord directory (train-*-of-*,
    # validation-*-of-*) or tfds' manual dir for imagenet2012; or fake data.
    data_dir: str | None = field(None, "TFRecord dir (train-*-of-*) or tfds manual dir.",
                                 resumable=True)
    tfds_data_dir: str | None = field(None, "tfds data_dir for imagenet2012.", resumable=True)
    fake_data: bool = field(False, "Random images with ImageNet shapes.")
    image_size: int = field(224, "Input size.")
    # Eval: resize to image_size / this (256 for 224), then centre-crop.
    eval_crop_fraction: float = field(0.875, "Evaluation centre-crop fraction.")
    preprocessing: str = field("mean_std", "mean_std | inception ([-1, 1], Keras' MobileNets).",
                               choices=_PREPROCESSING)
    cache: bool = field(False, "Cache the decoded data set.")
    shuffle_buffer: int = field(10_000, "Shuffle buffer (examples).")
    train_examples: int = field(1_281_167, "Training set size.")
    eval_examples: int = field(50_000, "Validation set size.")
    steps_per_epoch: int = field(0, "0: train_examples // batch_size.")
    eval_steps: int = field(0, "0: the whole validation set.")
    model: str = field("resnet50", "resnet50 (v1.5) | mobilenet_v1 | mobilenet_v2.",
                       choices=_MODELS)


@dataclasses.dataclass
class ImagenetConfig(common.Execution, common.Optimiser, channels.ChannelPruning,
                     common.Pruning, _ImagenetData):
    """ImageNet: dense training, one-shot Global MP of `pretrained` + fine-tuning, or
    gradual Global MP from scratch. Defaults: the paper's ResNet-50 training recipe."""

    # Shared fields with ImageNet's defaults (the paper's ResNet-50 recipe).
    pretrained: str | None = field(None, "'imagenet' (Keras weights, downloaded) or a local "
                                   "run directory / .keras file (None: random init).")
    pruning_begin: float = 0.2
    pruning_end: float = 0.79
    epochs: int = 100
    batch_size: int = 256
    eval_batch_size: int = 256
    learning_rate: float = 0.256
    momentum: float = 0.875
    weight_decay: float = 3.1e-5
    warmup_epochs: float = 5.0
    label_smoothing: float = 0.1
    distribution: str = field("none", "mirrored: local GPUs; multi_worker: TF_CONFIG "
                              "cluster.", choices=IMAGENET_DISTRIBUTIONS, resumable=True)
    verbose: int = 2
    checkpoint_every_steps: int = 1000
    # ImageNet's own: pruning runs in float32 whatever the compute precision.
    precision: str = field("float32", "Compute precision.", choices=IMAGENET_PRECISIONS)

    def validate(self):
        common.check_choices(self)
        common.check_preset(self.preset, IMAGENET_PRESETS)
        if self.mode == "one_shot" and not self.pretrained and not self.fake_data:
            raise ValueError("mode 'one_shot' prunes a trained dense model: pass pretrained "
                             "(a run directory, .keras file or 'imagenet'), got None")
        if not self.fake_data and not self.data_dir:
            raise ValueError("data_dir is needed (ImageNet TFRecords or tfds manual dir) "
                             "unless fake_data is set, got None")
        self.check_pruning()
        self.check_channel_pruning("global")
        self.check_optimiser()
        self.check_execution()
        common.check_ints(self, {"image_size": 32, "steps_per_epoch": 0, "eval_steps": 0,
                                 "train_examples": 0, "eval_examples": 0,
                                 "shuffle_buffer": 1})
        if not 0.0 < self.eval_crop_fraction <= 1.0:
            raise ValueError(f"eval_crop_fraction must be in (0, 1], got {self.eval_crop_fraction}")
        return self


def imagenet_config(preset="custom", **overrides):
    """An ImagenetConfig from a preset (IMAGENET_PRESETS) with `overrides` (None values
    ignored). `budget` says "reduced budget: ..." for cpu_ presets, fake data, fewer
    epochs than the paper row, or a fixed number of steps per epoch."""
    values = common.preset_values(IMAGENET_PRESETS, preset, overrides)
    row = IMAGENET_CPU_ROWS.get(preset, preset)
    paper_epochs = IMAGENET_PRESETS.get(row, {}).get("epochs")
    config = ImagenetConfig(preset=preset, **values)
    if overrides.get("budget") is None:
        reasons = []
        if config.fake_data:
            reasons.append("fake data")
        if paper_epochs and config.epochs < paper_epochs:
            reasons.append(f"{config.epochs} epochs of {paper_epochs}")
        if config.steps_per_epoch:
            reasons.append(f"{config.steps_per_epoch} steps/epoch of {config.batch_size}")
        if config.image_size != 224:
            reasons.append(f"{config.image_size}x{config.image_size} images")
        if reasons or preset.startswith("cpu_"):
            config.budget = "reduced budget: " + ", ".join(reasons or [preset])
    return config.validate()
