"""CIFAR-10: the paper's rows and reduced CPU budgets as presets, and the config."""

import dataclasses

from tf_globalmp.configs import common
from tf_globalmp.configs import channels
from tf_globalmp.configs.common import field

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
# ResNet-32 at a short budget (issue 19: dense >= 91.5% on the JPEG copy), a recipe of
# its own rather than the paper's 300-epoch one compressed: 40 epochs, SGD + Nesterov
# 0.9 at batch 128, peak LR 0.1 (the usual batch-128 value for CIFAR ResNets) after 2
# epochs of linear warmup, cosine to 0, coupled L2 5e-4 (at the peak the same shrink
# per step, LR x decay, as the paper's 0.05 x 1e-3), label smoothing 0.1. Pruned rows:
# one-shot from that dense model, then 20 epochs (half the dense budget) re-trained on
# the same kind of schedule from a high LR (0.05, 1 warmup epoch), i.e. learning-rate
# rewinding (Renda et al. 2020), which recovers one-shot pruning better than a small
# fine-tuning LR (the paper's 0.01) at a short budget. Not tuned here (a run takes
# hours); the tfmot rows differ only in layer_distribution. Measured on this 2-core
# AVX512-BF16 CPU (ResNet-32, batch 128, one thread, interleaved, shared machine):
# mixed_bfloat16 ~1.8x float32 (512 vs 930 ms/step), steps_per_execution 10 ~5-8%
# faster than 1 dense, more with the pruning callbacks.
_R32_SHORT = dict(nesterov=True, momentum=0.9, batch_size=128, lr_schedule="cosine",
                  label_smoothing=0.1, weight_decay=5e-4, steps_per_execution=10)
_R32_DENSE = dict(epochs=40, learning_rate=0.1, warmup_epochs=2.0)
_R32_FT = dict(epochs=20, learning_rate=0.05, warmup_epochs=1.0)
# cpu preset -> (the paper row it reduces, what changes).
CIFAR10_CPU_ROWS = {
    "cpu_resnet20_dense": ("paper_resnet32_dense", dict(model="resnet20", epochs=13)),
    "cpu_resnet20_gmp90": ("paper_resnet32_gmp90", dict(model="resnet20", epochs=3)),
    "cpu_resnet20_gradual90": ("paper_resnet32_dense", dict(model="resnet20", mode="gradual",
                                                            sparsity=0.9, epochs=16)),
    # ResNet-32 short-budget recipe (issue 19), see _R32_SHORT above.
    "cpu_resnet32_dense": ("paper_resnet32_dense", dict(_R32_SHORT, **_R32_DENSE)),
    "cpu_resnet32_gmp90": ("paper_resnet32_gmp90", dict(_R32_SHORT, **_R32_FT)),
    "cpu_resnet32_gmp95": ("paper_resnet32_gmp95", dict(_R32_SHORT, **_R32_FT)),
    "cpu_resnet32_gmp90_tfmot": ("paper_resnet32_gmp90", dict(_R32_SHORT, **_R32_FT,
                                                              layer_distribution="tfmot")),
    "cpu_resnet32_gmp95_tfmot": ("paper_resnet32_gmp95", dict(_R32_SHORT, **_R32_FT,
                                                              layer_distribution="tfmot")),
    # The committed 12-epoch dense ResNet-32 and its 1-epoch fine-tunes (float32, the
    # paper rows' hyperparameters), kept so those rows stay reproducible.
    "cpu_resnet32_dense_12ep": ("paper_resnet32_dense", dict(epochs=12, mixed_bfloat16=False)),
    "cpu_resnet32_gmp90_1ep": ("paper_resnet32_gmp90", dict(epochs=1, mixed_bfloat16=False)),
    "cpu_resnet32_gmp95_1ep": ("paper_resnet32_gmp95", dict(epochs=1, mixed_bfloat16=False)),
    "cpu_resnet32_gmp90_tfmot_1ep": ("paper_resnet32_gmp90", dict(
        epochs=1, mixed_bfloat16=False, layer_distribution="tfmot")),
    "cpu_resnet32_gmp95_tfmot_1ep": ("paper_resnet32_gmp95", dict(
        epochs=1, mixed_bfloat16=False, layer_distribution="tfmot")),
    # The other committed runs (saved_models/cifar10_<row>_cpu, float32: made on a CPU
    # without native bfloat16), each a preset of its own so one command remakes it.
    **{f"cpu_resnet20_gmp{s}_{d}_1ep": ("paper_resnet32_gmp90", dict(
        model="resnet20", epochs=1, sparsity=s / 100, layer_distribution=d,
        mixed_bfloat16=False)) for s in (90, 95) for d in ("global", "tfmot")},
    "cpu_resnet20_gmp98_global_1ep": ("paper_resnet32_gmp90", dict(
        model="resnet20", epochs=1, sparsity=0.98, mixed_bfloat16=False)),
    "cpu_resnet20_gmp98_global_mt_1ep": ("paper_resnet32_gmp90", dict(
        model="resnet20", epochs=1, sparsity=0.98, min_weights_fraction=0.0002,
        mixed_bfloat16=False)),
    "cpu_resnet20_gradual90_20k": ("paper_resnet32_dense", dict(
        model="resnet20", mode="gradual", sparsity=0.9, epochs=4, max_train_examples=20000,
        pruning_frequency=50, mixed_bfloat16=False)),
    "cpu_mobilenet_v2_dense_20k": ("paper_mobilenet_v2_dense", dict(
        epochs=4, batch_size=128, lr_step_every=1, max_train_examples=20000,
        mixed_bfloat16=False)),
    "cpu_mobilenet_v2_gmp98_20k": ("paper_mobilenet_v2_gmp98", dict(
        epochs=2, lr_step_every=1, max_train_examples=20000, mixed_bfloat16=False)),
    "cpu_mobilenet_v2_gmp98_mt_20k": ("paper_mobilenet_v2_gmp98_mt", dict(
        epochs=2, lr_step_every=1, max_train_examples=20000, mixed_bfloat16=False)),
    # Global channel pruning (granularity "channel", benchmarks/channels.py): one-shot
    # from the committed dense runs at 30% / 50% of the FLOPs removed, the one-shot
    # recipe of cpu_resnet20_gmp90 / cpu_mobilenet_v2_gmp98_20k; "uniform_l1": the
    # baseline removing the same fraction of every layer's channels (lowest L1 first).
    **{f"cpu_resnet20_{kind}{t}": ("paper_resnet32_gmp90", dict(
        model="resnet20", epochs=3, granularity="channel", flops_target=t / 100, **changes))
       for t in (30, 50) for kind, changes in (
           ("channel", {}), ("uniform_l1_", dict(layer_distribution="uniform",
                                                 channel_score="l1")))},
    **{f"cpu_mobilenet_v2_{kind}{t}_20k": ("paper_mobilenet_v2_gmp98", dict(
        epochs=2, lr_step_every=1, max_train_examples=20000, mixed_bfloat16=False,
        granularity="channel", flops_target=t / 100, **changes))
       for t in (30, 50) for kind, changes in (
           ("channel", {}), ("uniform_l1_", dict(layer_distribution="uniform",
                                                 channel_score="l1")))},
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
CIFAR10_PRESETS.update({name: dict(CIFAR10_PRESETS[row], **{"mixed_bfloat16": True, **changes})
                        for name, (row, changes) in CIFAR10_CPU_ROWS.items()})
CIFAR10_MODES = common.MODES
# distributions.METHODS (kept in sync by a test) plus tfmot's own prune_low_magnitude.
CIFAR10_LAYER_DISTRIBUTIONS = ("global", "uniform", "erk", "lamp", "random", "tfmot")


@dataclasses.dataclass
class _Cifar10Data(common.Run):
    """CIFAR-10's data and model fields (in config.json after Run's)."""

    # Data: None = tfds "cifar10"; else an image folder (train/<class>/*.jpg,
    # test/<class>/*.jpg) or a .tar.gz of one (unpacked into cache_dir).
    data_dir: str | None = field(None, "Image folder or its .tar.gz; default: tfds cifar10.",
                                 resumable=True)
    tfds_data_dir: str | None = field(None, "tfds data_dir for cifar10.", resumable=True)
    cache_dir: str | None = field(None, "Where a .tar.gz is unpacked (None: "
                                  "~/.cache/tf_globalmp/cifar10).", resumable=True)
    max_train_examples: int | None = field(
        None, "Training subset size (a fixed random subset; reduced budgets).")
    # A name from tf_globalmp.models.CIFAR_MODELS.
    model: str = field("resnet20", "Architecture.")
    dropout: float = field(0.0, "Dropout (WRN, MobileNet-V2).")


@dataclasses.dataclass
class Cifar10Config(common.Execution, common.Optimiser, channels.ChannelPruning,
                    common.Pruning, _Cifar10Data):
    """CIFAR-10: dense training, one-shot Global MP + fine-tuning, or gradual Global MP.

    Defaults: a generic ResNet-20 recipe (SGD 0.1, momentum 0.9, cosine, 200 epochs:
    the shared groups' defaults); the paper's rows are `CIFAR10_PRESETS`.
    """

    # Layer-wise allocation (`prune_low_magnitude_global(distribution=...)`): "global"
    # (Global MP) or a baseline from tf_globalmp.distributions for comparisons, or
    # "tfmot": tfmot's own prune_low_magnitude (per layer) under the same schedule.
    layer_distribution: str = field(
        "global", "global: Global MP; uniform/erk/lamp/random: baselines; tfmot: tfmot's "
        "own prune_low_magnitude.", choices=CIFAR10_LAYER_DISTRIBUTIONS)
    mixed_bfloat16: bool = field(False, "bfloat16 compute (float32 variables and pruning).")
    # tf.config.experimental.enable_op_determinism(): bit-identical reruns and resumes
    # (slower; needs a fresh process, as the launcher is).
    deterministic: bool = field(False, "Op determinism (bit-identical resume).")
    # After training (pruning + fine-tuning): sparsity-preserving quantization-aware
    # training (`tf_globalmp.sparsity_preserving_qat`, float32), SGD on the optimiser
    # fields' recipe with learning rate qat_learning_rate, cosine to 0, no warmup.
    qat_epochs: int = field(0, "Sparsity-preserving quantization-aware training epochs "
                            "after training (0: none); exports int8.")
    qat_learning_rate: float = field(0.001, "QAT: peak learning rate (cosine to 0).")
    quantize: str = field("none", "TFLite export (--export_tflite): none (float32), "
                          "float16, dynamic, int8 (a QAT run's only option).",
                          choices=("none", "float16", "dynamic", "int8"), resumable=True)

    def validate(self):
        from tf_globalmp import models  # the model names live with the builders

        common.check_choices(self)
        common.check_preset(self.preset, CIFAR10_PRESETS)
        if self.model not in models.CIFAR_MODELS:
            raise ValueError(f"model must be one of {sorted(models.CIFAR_MODELS)}, "
                             f"got {self.model!r}")
        if self.mode == "one_shot" and not self.pretrained:
            raise ValueError("pretrained must be a dense run directory or .keras file for "
                             "mode 'one_shot' (it prunes a trained model), got None")
        self.check_pruning()
        self.check_channel_pruning(self.layer_distribution)
        common.check_fractions(self, ("dropout",))
        if self.layer_distribution == "tfmot" and (self.min_weights or
                                                   self.min_weights_fraction):
            raise ValueError("layer_distribution 'tfmot' (tfmot's per-layer pruning) has no "
                             f"Minimum Threshold, got min_weights={self.min_weights}, "
                             f"min_weights_fraction={self.min_weights_fraction}")
        self.check_optimiser()
        self.check_execution()
        common.check_ints(self, {"qat_epochs": 0})
        if not self.qat_learning_rate > 0:
            raise ValueError(f"qat_learning_rate must be > 0, got {self.qat_learning_rate}")
        if self.qat_epochs and self.export_tflite and self.quantize != "int8":
            raise ValueError("qat_epochs exports a full-integer file: quantize must be "
                             f"'int8' with export_tflite, got quantize={self.quantize!r}")
        if self.max_train_examples is not None and self.max_train_examples < 1:
            raise ValueError(f"max_train_examples must be >= 1, got {self.max_train_examples}")
        return self


def cifar10_config(preset="custom", **overrides):
    """A Cifar10Config from a preset (CIFAR10_PRESETS) with `overrides` (None values
    ignored). `budget` says "reduced budget: ..." for cpu_ presets and for paper
    presets run with fewer epochs or a training subset."""
    values = common.preset_values(CIFAR10_PRESETS, preset, overrides)
    config = Cifar10Config(preset=preset, **values)
    if overrides.get("budget") is None:
        row = CIFAR10_CPU_ROWS[preset][0] if preset in CIFAR10_CPU_ROWS else preset
        paper_epochs = CIFAR10_PRESETS.get(row, {}).get("epochs")
        reduced = preset.startswith("cpu_") or config.max_train_examples or (
            paper_epochs and config.epochs < paper_epochs)
        if reduced:
            plural = "" if config.epochs == 1 else "s"
            config.budget = f"reduced budget: {config.epochs} epoch{plural}" + (
                f" of {paper_epochs}" if paper_epochs else "") + (
                f", {config.max_train_examples} training images"
                if config.max_train_examples else "")
    return config.validate()
