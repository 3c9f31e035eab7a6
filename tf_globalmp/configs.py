"""Run configurations: every default lives here, once."""

import dataclasses
import os


def _check_exists(name, path):
    """ValueError naming the field when a local path it names does not exist."""
    if path and path != "imagenet" and not os.path.exists(path):
        raise ValueError(f"{name} does not exist: {path!r}")

def _check_training_fractions(config, names):
    """The [0, 1) fields `names`, the gradual ramp and MT of a CIFAR/ImageNet config."""
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if config.mode == "gradual" and config.initial_sparsity > config.sparsity:
        raise ValueError(f"initial_sparsity must be <= sparsity ({config.sparsity}), "
                         f"got {config.initial_sparsity}")
    if not 0.0 <= config.pruning_begin < config.pruning_end <= 1.0:
        raise ValueError("pruning_begin must be in [0, pruning_end) and pruning_end <= 1, got "
                         f"pruning_begin={config.pruning_begin}, pruning_end={config.pruning_end}")
    fraction = config.min_weights_fraction
    if fraction is not None and not 0.0 <= fraction < 1.0:
        raise ValueError(f"min_weights_fraction must be in [0, 1), got {fraction}")


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


# FastGRNN on HAR-2: the paper's rows (appendix table). The fine-tune learning rates
# are printed as .5 / .5 / .55 for Adam; `HAR2_PRESETS` keeps them as printed.
HAR2_PRESETS = {
    "paper_train": dict(mode="dense", epochs=300, batch_size=100, learning_rate=0.0064),
    "paper_r9_8": dict(mode="structured", ranks=(9, 8), epochs=300, batch_size=64,
                       learning_rate=0.5),
    "paper_r9_7": dict(mode="structured", ranks=(9, 7), epochs=300, batch_size=100,
                       learning_rate=0.5),
    "paper_r8_7": dict(mode="structured", ranks=(8, 7), epochs=300, batch_size=100,
                       learning_rate=0.55),
}
HAR2_MODES = ("dense", "structured", "unstructured")


@dataclasses.dataclass
class Har2Config:
    """FastGRNN on HAR-2: dense training, or structured / unstructured Global MP fine-tuning.

    Defaults are the paper's dense row (300 epochs, batch 100, Adam 0.0064).
    """

    mode: str = "dense"  # dense | structured | unstructured
    preset: str = "custom"  # name from HAR2_PRESETS, or "custom"
    # Data: None = the shared npz (tf_globalmp.data.har.DEFAULT_PATH); an npz file or
    # the official "UCI HAR Dataset" folder otherwise.
    data_dir: str | None = None
    validation_fraction: float = 0.0  # whole training subjects held out, for tuning only
    # Model: FastGRNN, hidden 80, full-rank factors (rW = 9, rU = 80) unless given.
    units: int = 80
    w_rank: int | None = None
    u_rank: int | None = None
    unroll: bool = True  # faster on CPU (measured: ~2.3 vs ~3.5 s/epoch)
    # Pruning (modes structured / unstructured), from the dense model in `pretrained`.
    pretrained: str | None = None
    ranks: tuple = (9, 8)  # target (rW, rU) for structured per_factor
    structured_scope: str = "per_factor"  # per_factor (paper) | global (one budget)
    # None: the parameter count of `ranks` (structured global / unstructured).
    sparsity: float | None = None
    # Optimisation (Adam).
    epochs: int = 300
    batch_size: int = 100
    learning_rate: float = 0.0064
    # Global gradient-norm clipping (not in the paper): without it, dense training at
    # Adam 0.0064 collapsed at epoch 20 (test 0.91 -> 0.76, never recovered). None: off.
    clipnorm: float | None = 1.0
    # Printed paper learning rate when `learning_rate` was changed from it (else None).
    paper_learning_rate: float | None = None
    learning_rate_note: str = ""
    budget: str = "paper"  # "paper" or a label for a reduced budget; written to outputs
    export_tflite: bool = False
    seed: int = 0
    threads: int = 1  # TensorFlow intra- and inter-op threads

    def validate(self):
        if self.mode not in HAR2_MODES:
            raise ValueError(f"mode must be one of {HAR2_MODES}, got {self.mode!r}")
        if self.preset != "custom" and self.preset not in HAR2_PRESETS:
            raise ValueError(f"preset must be 'custom' or one of {sorted(HAR2_PRESETS)}, "
                             f"got {self.preset!r}")
        if self.structured_scope not in ("per_factor", "global"):
            raise ValueError("structured_scope must be 'per_factor' or 'global', got "
                             f"{self.structured_scope!r}")
        if len(self.ranks) != 2 or any(not isinstance(r, int) or r < 1 for r in self.ranks):
            raise ValueError(f"ranks must be two positive ints (rW, rU), got {self.ranks!r}")
        if self.sparsity is not None and not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.mode != "dense" and not self.pretrained:
            raise ValueError(f"mode {self.mode!r} fine-tunes a dense model: pass pretrained "
                             "(a dense run directory), got None")
        _check_exists("pretrained", self.pretrained)
        for name in ("epochs", "batch_size", "units", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < (0 if name == "epochs" else 1):
                raise ValueError(f"{name} must be a positive int (epochs >= 0), got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise ValueError(f"clipnorm must be > 0 or None, got {self.clipnorm}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        return self


def har2_config(preset="custom", **overrides):
    """A Har2Config from a preset (HAR2_PRESETS) with `overrides` (None values ignored)."""
    if preset != "custom" and preset not in HAR2_PRESETS:
        raise ValueError(f"preset must be 'custom' or one of {sorted(HAR2_PRESETS)}, "
                         f"got {preset!r}")
    values = dict(HAR2_PRESETS.get(preset, {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return Har2Config(preset=preset, **values).validate()


# CIFAR-10: one row per CIFAR training recipe of the paper (appendix table), then
# reduced "cpu_" budgets for this 2-core CPU (labelled "reduced budget" everywhere).
# One-shot rows fine-tune the dense model given as `pretrained`.
_RESNET32 = dict(model="resnet32", epochs=300, batch_size=128, momentum=0.9)
_WRN28_8 = dict(model="wrn28_8", epochs=200, batch_size=128, dropout=0.3, nesterov=True)
_WRN22_8 = dict(model="wrn22_8", momentum=0.9, nesterov=True, lr_schedule="step",
                weight_decay=5e-4, learning_rate=0.1)
_MNV2 = dict(model="mobilenet_v2", epochs=200, momentum=0.9, nesterov=True, weight_decay=5e-4,
             learning_rate=0.1, lr_schedule="step", lr_step_every=25, lr_decay_factor=0.56)
_FT = dict(mode="one_shot", label_smoothing=0.1)  # the paper smooths labels in fine-tuning
CIFAR10_PRESETS = {
    "paper_resnet32_dense": dict(_RESNET32, weight_decay=1e-3, learning_rate=0.05),
    "paper_resnet32_gmp90": dict(_RESNET32, **_FT, sparsity=0.9, weight_decay=1e-3,
                                 learning_rate=0.01),
    "paper_resnet32_gmp95": dict(_RESNET32, **_FT, sparsity=0.95, weight_decay=1e-5,
                                 learning_rate=0.01),
    "paper_wrn28_8_dense": dict(_WRN28_8, momentum=0.875, weight_decay=5e-4, learning_rate=0.1),
    "paper_wrn28_8_gmp90": dict(_WRN28_8, **_FT, sparsity=0.9, momentum=0.9, weight_decay=0.0,
                                learning_rate=0.0512),
    "paper_wrn28_8_gmp95": dict(_WRN28_8, **_FT, sparsity=0.95, momentum=0.9,
                                weight_decay=2e-5, learning_rate=0.0256),
    "paper_wrn28_8_gmp975": dict(_WRN28_8, **_FT, sparsity=0.975, momentum=0.9,
                                 weight_decay=0.0, learning_rate=0.0128),
    "paper_wrn22_8_dense": dict(_WRN22_8, epochs=30, batch_size=256, lr_boundaries=(25,)),
    "paper_wrn22_8_gmp999": dict(_WRN22_8, **_FT, sparsity=0.999, epochs=80, batch_size=64,
                                 lr_boundaries=(40,)),
    "paper_mobilenet_v2_dense": dict(_MNV2, batch_size=450),
    "paper_mobilenet_v2_gmp98": dict(_MNV2, **_FT, sparsity=0.98, batch_size=64),
    "paper_mobilenet_v2_gmp98_mt": dict(_MNV2, **_FT, sparsity=0.98, batch_size=64,
                                        min_weights_fraction=0.0002),
}
# Reduced budgets: the paper row's recipe with fewer epochs (the LR schedule is
# compressed to fit), bfloat16 mixed precision, and for the wide models a fixed
# training subset; each meant to take about an hour on this 2-core CPU. Sized from
# training throughput per core measured here in bfloat16 (CPU time, batch 128):
# ResNet-20 ~470 img/s, ResNet-32 ~300, MobileNet-V2 ~73; the WRNs (not measured)
# scaled by FLOPs from ResNet-20: WRN-22-8 ~8, WRN-28-8 ~6. Evaluation on the 10,000
# test images each epoch comes on top. Epochs and subset can be overridden.
# cpu preset -> (the paper row it reduces, what changes).
CIFAR10_CPU_ROWS = {
    "cpu_resnet20_dense": ("paper_resnet32_dense", dict(model="resnet20", epochs=13)),
    "cpu_resnet20_gmp90": ("paper_resnet32_gmp90", dict(model="resnet20", epochs=3)),
    "cpu_resnet20_gradual90": ("paper_resnet32_dense", dict(model="resnet20", mode="gradual",
                                                            sparsity=0.9, epochs=16)),
    "cpu_resnet32_dense": ("paper_resnet32_dense", dict(epochs=8)),
    "cpu_resnet32_gmp90": ("paper_resnet32_gmp90", dict(epochs=3)),
    "cpu_resnet32_gmp95": ("paper_resnet32_gmp95", dict(epochs=3)),
    "cpu_wrn28_8_dense": ("paper_wrn28_8_dense", dict(epochs=2, max_train_examples=5000)),
    "cpu_wrn28_8_gmp90": ("paper_wrn28_8_gmp90", dict(epochs=1, max_train_examples=5000)),
    "cpu_wrn28_8_gmp95": ("paper_wrn28_8_gmp95", dict(epochs=1, max_train_examples=5000)),
    "cpu_wrn28_8_gmp975": ("paper_wrn28_8_gmp975", dict(epochs=1, max_train_examples=5000)),
    "cpu_wrn22_8_dense": ("paper_wrn22_8_dense", dict(epochs=2, max_train_examples=8000,
                                                      lr_boundaries=())),
    "cpu_wrn22_8_gmp999": ("paper_wrn22_8_gmp999", dict(epochs=2, max_train_examples=8000,
                                                        lr_boundaries=(1,))),
    "cpu_mobilenet_v2_dense": ("paper_mobilenet_v2_dense", dict(epochs=4, batch_size=128,
                                                                lr_step_every=1)),
    "cpu_mobilenet_v2_gmp98": ("paper_mobilenet_v2_gmp98", dict(epochs=2, lr_step_every=1)),
    "cpu_mobilenet_v2_gmp98_mt": ("paper_mobilenet_v2_gmp98_mt", dict(epochs=2,
                                                                      lr_step_every=1)),
}
CIFAR10_PRESETS.update({name: dict(CIFAR10_PRESETS[row], mixed_bfloat16=True, **changes)
                        for name, (row, changes) in CIFAR10_CPU_ROWS.items()})
CIFAR10_MODES = ("dense", "one_shot", "gradual")
# distributions.METHODS (kept in sync by a test) plus tfmot's own prune_low_magnitude.
CIFAR10_LAYER_DISTRIBUTIONS = ("global", "uniform", "erk", "lamp", "random", "tfmot")


@dataclasses.dataclass
class Cifar10Config:
    """CIFAR-10: dense training, one-shot Global MP + fine-tuning, or gradual Global MP.

    Defaults: a generic ResNet-20 recipe (SGD 0.1, momentum 0.9, cosine, 200 epochs);
    the paper's rows are `CIFAR10_PRESETS`.
    """

    mode: str = "dense"  # dense | one_shot | gradual
    preset: str = "custom"  # name from CIFAR10_PRESETS, or "custom"
    # "paper", or a label such as "reduced budget: 15 epochs" (set by cifar10_config).
    budget: str = "paper"
    # Data: None = tfds "cifar10"; else an image folder (train/<class>/*.jpg,
    # test/<class>/*.jpg) or a .tar.gz of one (unpacked into cache_dir).
    data_dir: str | None = None
    tfds_data_dir: str | None = None
    cache_dir: str | None = None  # None: ~/.cache/tf_globalmp/cifar10
    max_train_examples: int | None = None  # a fixed random training subset (reduced budgets)
    # Model: a name from tf_globalmp.models.CIFAR_MODELS.
    model: str = "resnet20"
    dropout: float = 0.0
    # Pruning. one_shot: prune `pretrained` (a run directory or .keras file) once to
    # `sparsity`, fine-tune with the mask fixed. gradual: from scratch, cubic schedule
    # from initial_sparsity to sparsity between the given fractions of training.
    pretrained: str | None = None
    sparsity: float = 0.9
    initial_sparsity: float = 0.0
    min_weights: int = 0
    min_weights_fraction: float | None = None
    redistribution: str = "global"  # global (exact) | proportional (paper code)
    # Layer-wise allocation (`prune_low_magnitude_global(distribution=...)`): "global"
    # (Global MP) or a baseline from tf_globalmp.distributions for comparisons, or
    # "tfmot": tfmot's own prune_low_magnitude (per layer) under the same schedule.
    layer_distribution: str = "global"
    pruning_begin: float = 0.1
    pruning_end: float = 0.6
    pruning_frequency: int = 0  # steps between gradual updates; 0 = once per epoch
    # Optimisation: SGD with momentum, coupled L2 weight decay on kernels.
    epochs: int = 200
    batch_size: int = 128
    eval_batch_size: int = 500
    learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    lr_schedule: str = "cosine"  # cosine | step | constant
    warmup_epochs: float = 0.0
    lr_boundaries: tuple = ()  # step schedule: epochs at which lr *= lr_decay_factor
    lr_step_every: int = 0  # step schedule: also every this many epochs (0: off)
    lr_decay_factor: float = 0.1
    label_smoothing: float = 0.0
    # Execution.
    mixed_bfloat16: bool = False  # bfloat16 compute, float32 variables and pruning math
    threads: int = 0  # TensorFlow intra- and inter-op threads; 0 = TensorFlow's default
    # tf.config.experimental.enable_op_determinism(): bit-identical reruns and resumes
    # (slower; needs a fresh process, as the launcher is).
    deterministic: bool = False
    distribution: str = "none"  # none | mirrored
    verbose: int = 1  # Keras progress: 0 silent, 1 progress bar, 2 one line per epoch
    # Also checkpoint every this many steps inside an epoch (0: at epoch ends only).
    checkpoint_every_steps: int = 0
    export_tflite: bool = False
    seed: int = 0

    def validate(self):
        from tf_globalmp import models  # the model names live with the builders

        if self.mode not in CIFAR10_MODES:
            raise ValueError(f"mode must be one of {CIFAR10_MODES}, got {self.mode!r}")
        if self.preset != "custom" and self.preset not in CIFAR10_PRESETS:
            raise ValueError(f"preset must be 'custom' or one of {sorted(CIFAR10_PRESETS)}, "
                             f"got {self.preset!r}")
        if self.model not in models.CIFAR_MODELS:
            raise ValueError(f"model must be one of {sorted(models.CIFAR_MODELS)}, "
                             f"got {self.model!r}")
        if self.mode == "one_shot" and not self.pretrained:
            raise ValueError("pretrained must be a dense run directory or .keras file for "
                             "mode 'one_shot' (it prunes a trained model), got None")
        _check_exists("pretrained", self.pretrained)
        _check_training_fractions(
            self, ("sparsity", "initial_sparsity", "dropout", "label_smoothing", "momentum"))
        if self.min_weights < 0:
            raise ValueError(f"min_weights must be >= 0, got {self.min_weights}")
        if self.redistribution not in ("global", "proportional"):
            raise ValueError("redistribution must be 'global' or 'proportional', got "
                             f"{self.redistribution!r}")
        if self.layer_distribution not in CIFAR10_LAYER_DISTRIBUTIONS:
            raise ValueError(f"layer_distribution must be one of {CIFAR10_LAYER_DISTRIBUTIONS}, "
                             f"got {self.layer_distribution!r}")
        if self.layer_distribution == "tfmot" and (self.min_weights or
                                                   self.min_weights_fraction):
            raise ValueError("layer_distribution 'tfmot' (tfmot's per-layer pruning) has no "
                             f"Minimum Threshold, got min_weights={self.min_weights}, "
                             f"min_weights_fraction={self.min_weights_fraction}")
        for name in ("epochs", "batch_size", "eval_batch_size", "threads", "pruning_frequency",
                     "lr_step_every", "seed", "checkpoint_every_steps"):
            value = getattr(self, name)
            low = 1 if name in ("batch_size", "eval_batch_size") else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if self.max_train_examples is not None and self.max_train_examples < 1:
            raise ValueError(f"max_train_examples must be >= 1, got {self.max_train_examples}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.lr_schedule not in ("cosine", "step", "constant"):
            raise ValueError("lr_schedule must be 'cosine', 'step' or 'constant', got "
                             f"{self.lr_schedule!r}")
        if not 0.0 < self.lr_decay_factor <= 1.0:
            raise ValueError(f"lr_decay_factor must be in (0, 1], got {self.lr_decay_factor}")
        if self.warmup_epochs < 0 or self.warmup_epochs > max(self.epochs, 0):
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}], "
                             f"got {self.warmup_epochs}")
        if self.distribution not in ("none", "mirrored"):
            raise ValueError(f"distribution must be 'none' or 'mirrored', got "
                             f"{self.distribution!r}")
        return self


def cifar10_config(preset="custom", **overrides):
    """A Cifar10Config from a preset (CIFAR10_PRESETS) with `overrides` (None values
    ignored). `budget` says "reduced budget: ..." for cpu_ presets and for paper
    presets run with fewer epochs or a training subset."""
    if preset != "custom" and preset not in CIFAR10_PRESETS:
        raise ValueError(f"preset must be 'custom' or one of {sorted(CIFAR10_PRESETS)}, "
                         f"got {preset!r}")
    values = dict(CIFAR10_PRESETS.get(preset, {}))
    paper_epochs = values.get("epochs")
    values.update({k: v for k, v in overrides.items() if v is not None})
    config = Cifar10Config(preset=preset, **values)
    if "budget" not in overrides or overrides["budget"] is None:
        if preset in CIFAR10_CPU_ROWS:
            paper_epochs = CIFAR10_PRESETS[CIFAR10_CPU_ROWS[preset][0]]["epochs"]
        reduced = preset.startswith("cpu_") or config.max_train_examples or (
            paper_epochs and config.epochs < paper_epochs)
        if reduced:
            plural = "" if config.epochs == 1 else "s"
            config.budget = f"reduced budget: {config.epochs} epoch{plural}" + (
                f" of {paper_epochs}" if paper_epochs else "") + (
                f", {config.max_train_examples} training images"
                if config.max_train_examples else "")
    return config.validate()


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
IMAGENET_CPU_ROWS = {
    "cpu_fake_resnet50_oneshot90": "paper_resnet50_oneshot90",
    "cpu_fake_resnet50_gradual90": "paper_resnet50_gradual90",
    "cpu_fake_mobilenet_v1_oneshot90_mt": "paper_mobilenet_v1_oneshot90_mt",
}
IMAGENET_PRESETS.update({name: dict(IMAGENET_PRESETS[row], **_IMAGENET_SMOKE)
                         for name, row in IMAGENET_CPU_ROWS.items()})
IMAGENET_MODES = ("dense", "one_shot", "gradual")
IMAGENET_PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
IMAGENET_DISTRIBUTIONS = ("none", "mirrored", "multi_worker")


@dataclasses.dataclass
class ImagenetConfig:
    """ImageNet: dense training, one-shot Global MP of `pretrained` + fine-tuning, or
    gradual Global MP from scratch. Defaults: the paper's ResNet-50 training recipe."""

    mode: str = "dense"  # dense | one_shot | gradual
    preset: str = "custom"  # name from IMAGENET_PRESETS, or "custom"
    budget: str = "paper"  # or "reduced budget: ..." (set by imagenet_config)
    # Data (tf_globalmp.data.imagenet): a TFRecord directory (train-*-of-*,
    # validation-*-of-*) or tfds' manual dir for imagenet2012; or fake data.
    data_dir: str | None = None
    tfds_data_dir: str | None = None
    fake_data: bool = False
    image_size: int = 224
    eval_crop_fraction: float = 0.875  # eval: resize to image_size / this (256), crop
    preprocessing: str = "mean_std"  # mean_std | inception ([-1, 1], Keras' MobileNets)
    cache: bool = False
    shuffle_buffer: int = 10_000
    train_examples: int = 1_281_167
    eval_examples: int = 50_000
    steps_per_epoch: int = 0  # 0: train_examples // batch_size
    eval_steps: int = 0  # 0: the whole validation set
    # Model: resnet50 (v1.5) | mobilenet_v1 | mobilenet_v2 (tf_globalmp.models.imagenet).
    model: str = "resnet50"
    # None (random init), "imagenet" (Keras weights, downloaded) or a local path.
    pretrained: str | None = None
    # Pruning (as Cifar10Config): one_shot prunes once then fine-tunes with the mask
    # fixed; gradual: cubic from pruning_begin to pruning_end (fractions of training).
    sparsity: float = 0.9
    initial_sparsity: float = 0.0
    min_weights: int = 0
    min_weights_fraction: float | None = None
    redistribution: str = "global"  # global (exact) | proportional (paper code)
    pruning_begin: float = 0.2
    pruning_end: float = 0.79
    pruning_frequency: int = 0  # steps between gradual updates; 0 = once per epoch
    # Optimisation: SGD with momentum, coupled L2 on kernels, cosine with linear warmup.
    epochs: int = 100
    batch_size: int = 256  # global, over all replicas and workers
    eval_batch_size: int = 256
    learning_rate: float = 0.256
    momentum: float = 0.875
    nesterov: bool = False
    weight_decay: float = 3.1e-5
    lr_schedule: str = "cosine"  # cosine | step | constant
    warmup_epochs: float = 5.0
    lr_boundaries: tuple = ()
    lr_step_every: int = 0
    lr_decay_factor: float = 0.1
    label_smoothing: float = 0.1
    # Execution.
    precision: str = "float32"  # float32 | mixed_float16 | mixed_bfloat16 (pruning: float32)
    distribution: str = "none"  # none | mirrored (local GPUs) | multi_worker (TF_CONFIG)
    threads: int = 0
    verbose: int = 2
    # Also checkpoint every this many steps inside an epoch (0: at epoch ends only).
    checkpoint_every_steps: int = 1000
    export_tflite: bool = False
    seed: int = 0

    def validate(self):
        from tf_globalmp.data import imagenet as imagenet_data
        from tf_globalmp.models import imagenet as imagenet_models

        choices = (("mode", IMAGENET_MODES), ("precision", IMAGENET_PRECISIONS),
                   ("distribution", IMAGENET_DISTRIBUTIONS),
                   ("model", tuple(sorted(imagenet_models.IMAGENET_MODELS))),
                   ("preprocessing", imagenet_data.PREPROCESSING),
                   ("redistribution", ("global", "proportional")),
                   ("lr_schedule", ("cosine", "step", "constant")))
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.preset != "custom" and self.preset not in IMAGENET_PRESETS:
            raise ValueError(f"preset must be 'custom' or one of {sorted(IMAGENET_PRESETS)}, "
                             f"got {self.preset!r}")
        if self.mode == "one_shot" and not self.pretrained and not self.fake_data:
            raise ValueError("mode 'one_shot' prunes a trained dense model: pass pretrained "
                             "(a run directory, .keras file or 'imagenet'), got None")
        _check_exists("pretrained", self.pretrained)
        if not self.fake_data and not self.data_dir:
            raise ValueError("data_dir is needed (ImageNet TFRecords or tfds manual dir) "
                             "unless fake_data is set, got None")
        _check_training_fractions(
            self, ("sparsity", "initial_sparsity", "label_smoothing", "momentum"))
        for name in ("epochs", "batch_size", "eval_batch_size", "image_size", "steps_per_epoch",
                     "eval_steps", "threads", "pruning_frequency", "lr_step_every", "seed",
                     "min_weights", "train_examples", "eval_examples", "shuffle_buffer",
                     "checkpoint_every_steps"):
            value = getattr(self, name)
            low = 1 if name in ("batch_size", "eval_batch_size", "shuffle_buffer") else 0
            low = 32 if name == "image_size" else low
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if not 0.0 < self.eval_crop_fraction <= 1.0:
            raise ValueError(f"eval_crop_fraction must be in (0, 1], got {self.eval_crop_fraction}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 < self.lr_decay_factor <= 1.0:
            raise ValueError(f"lr_decay_factor must be in (0, 1], got {self.lr_decay_factor}")
        if self.warmup_epochs < 0 or self.warmup_epochs > max(self.epochs, 0):
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}], "
                             f"got {self.warmup_epochs}")
        return self


def imagenet_config(preset="custom", **overrides):
    """An ImagenetConfig from a preset (IMAGENET_PRESETS) with `overrides` (None values
    ignored). `budget` says "reduced budget: ..." for cpu_ presets, fake data, fewer
    epochs than the paper row, or a fixed number of steps per epoch."""
    if preset != "custom" and preset not in IMAGENET_PRESETS:
        raise ValueError(f"preset must be 'custom' or one of {sorted(IMAGENET_PRESETS)}, "
                         f"got {preset!r}")
    values = dict(IMAGENET_PRESETS.get(preset, {}))
    row = IMAGENET_CPU_ROWS.get(preset, preset)
    paper_epochs = IMAGENET_PRESETS.get(row, {}).get("epochs")
    values.update({k: v for k, v in overrides.items() if v is not None})
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
