"""What the CIFAR-10 and ImageNet configs share: the field groups Run, Pruning,
Optimiser and Execution with their checks (written once), and the helpers every task
config uses (`field`, the preset factory, value checks).

A task config is a dataclass that inherits the groups it has, e.g.
`class Cifar10Config(Execution, Optimiser, Pruning, _Cifar10Data)`. Dataclass fields
follow the bases last-first, so `config.json` lists Run (mode, preset, budget), the
task's data and model fields, Pruning, Optimiser, Execution, then the task's own
fields. A task changes a shared default by re-declaring the field with a plain
default: it keeps its place in the JSON and the group's metadata (`metadata`).

Every field carries a one-line `help` (launchers turn fields into absl flags), its
allowed values as `choices` where there is a fixed set (checked by `check_choices`,
offered by the flag), and `resumable=True` where a resumed run may change it without
changing the run (threads, labels, data locations).
"""

import dataclasses
import os

MODES = ("dense", "one_shot", "gradual")
REDISTRIBUTIONS = ("global", "proportional")  # global (exact) | proportional (paper code)
LR_SCHEDULES = ("cosine", "step", "constant")


def field(default, help, *, choices=None, resumable=False):
    """A dataclass field with its flag help, allowed values and resumability."""
    metadata = {"help": help, "resumable": resumable}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    return dataclasses.field(default=default, metadata=metadata)


def metadata(config, name):
    """The help, choices and resumability of field `name` of `config` (a config or its
    class). A task that re-declares a shared field only to change its default
    (`epochs: int = 100`) keeps the group's: the nearest declaration with any wins."""
    for cls in (config if isinstance(config, type) else type(config)).__mro__:
        declared = vars(cls).get("__dataclass_fields__", {}).get(name)
        if declared is not None and declared.metadata:
            return declared.metadata
    return {}


def resumable_fields(config):
    """Names of the fields of `config` (a config or its class) a resumed run may change:
    those marked resumable, and for a config instance also the fields its other values
    make inert (`inert_fields()`, e.g. channel options of a weight-granularity run)."""
    names = tuple(f.name for f in dataclasses.fields(config)
                  if metadata(config, f.name).get("resumable"))
    if not isinstance(config, type) and hasattr(config, "inert_fields"):
        names += tuple(n for n in config.inert_fields() if n not in names)
    return names


def default_values(config):
    """{field name: default} of `config` (a config or its class), for fields with one."""
    return {f.name: f.default for f in dataclasses.fields(config)
            if f.default is not dataclasses.MISSING}


def check_choices(config):
    """ValueError naming the first field whose value is not one of its `choices`."""
    for f in dataclasses.fields(config):
        allowed = metadata(config, f.name).get("choices")
        if allowed is not None and getattr(config, f.name) not in allowed:
            raise ValueError(f"{f.name} must be one of {allowed}, got {getattr(config, f.name)!r}")


def check_exists(name, path):
    """ValueError naming the field when a local path it names does not exist."""
    if path and path != "imagenet" and not os.path.exists(path):
        raise ValueError(f"{name} does not exist: {path!r}")


def check_fractions(config, names):
    """ValueError naming the first of the fields `names` outside [0, 1)."""
    for name in names:
        value = getattr(config, name)
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")


def check_ints(config, lows):
    """ValueError naming the first field of `lows` ({name: lowest value}) that is not
    an int (bools excluded) >= its lowest value."""
    for name, low in lows.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def check_preset(preset, presets):
    if preset != "custom" and preset not in presets:
        raise ValueError(f"preset must be 'custom' or one of {sorted(presets)}, "
                         f"got {preset!r}")


def preset_values(presets, preset, overrides):
    """The values of `preset` ("custom": none) updated with `overrides` (None values
    are ignored: a flag not given)."""
    check_preset(preset, presets)
    values = dict(presets.get(preset, {}))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


@dataclasses.dataclass
class Run:
    """What a run does, the preset it starts from and its budget label."""

    mode: str = field("dense", "dense | one_shot (prune `pretrained` once, fine-tune with "
                      "the mask fixed) | gradual (from scratch).", choices=MODES)
    preset: str = field("custom", "A named preset (paper_<row>: the paper's recipe; "
                        "cpu_<row>: reduced budget); other flags override it.")
    # "paper", or a label such as "reduced budget: 15 epochs" (set by the task's factory).
    budget: str = field("paper", "Budget label written to every output.", resumable=True)


@dataclasses.dataclass
class Pruning:
    """Global MP. one_shot: prune `pretrained` once to `sparsity`, fine-tune with the
    mask fixed. gradual: from scratch, cubic from initial_sparsity to sparsity between
    the fractions pruning_begin and pruning_end of training. Needs Run's `mode`."""

    pretrained: str | None = field(
        None, "Dense model to prune (mode one_shot): a run directory or .keras file.")
    sparsity: float = field(0.9, "Target global sparsity.")
    initial_sparsity: float = field(0.0, "Gradual: sparsity at pruning_begin.")
    min_weights: int = field(0, "MT: weights kept per layer.")
    min_weights_fraction: float | None = field(
        None, "MT as a fraction of all prunable weights.")
    redistribution: str = field("global", "How MT's cost is shared.", choices=REDISTRIBUTIONS)
    pruning_begin: float = field(0.1, "Gradual: start (fraction of training).")
    pruning_end: float = field(0.6, "Gradual: end (fraction of training).")
    pruning_frequency: int = field(0, "Gradual: steps between updates (0: per epoch).")

    def check_pruning(self):
        check_exists("pretrained", self.pretrained)
        check_fractions(self, ("sparsity", "initial_sparsity"))
        if self.mode == "gradual" and self.initial_sparsity > self.sparsity:
            raise ValueError(f"initial_sparsity must be <= sparsity ({self.sparsity}), "
                             f"got {self.initial_sparsity}")
        if not 0.0 <= self.pruning_begin < self.pruning_end <= 1.0:
            raise ValueError("pruning_begin must be in [0, pruning_end) and pruning_end <= 1, "
                             f"got pruning_begin={self.pruning_begin}, "
                             f"pruning_end={self.pruning_end}")
        fraction = self.min_weights_fraction
        if fraction is not None and not 0.0 <= fraction < 1.0:
            raise ValueError(f"min_weights_fraction must be in [0, 1), got {fraction}")
        check_ints(self, {"min_weights": 0, "pruning_frequency": 0})


@dataclasses.dataclass
class Optimiser:
    """SGD with momentum, coupled L2 weight decay on kernels, a decaying learning rate
    after an optional linear warmup. Defaults: a generic CIFAR ResNet recipe."""

    epochs: int = field(200, "Training epochs.")
    batch_size: int = field(128, "Batch size (global, over all replicas and workers).")
    eval_batch_size: int = field(500, "Evaluation batch size.")
    learning_rate: float = field(0.1, "Peak learning rate.")
    momentum: float = field(0.9, "SGD momentum.")
    nesterov: bool = field(False, "Nesterov momentum.")
    weight_decay: float = field(5e-4, "Coupled L2 on kernels.")
    lr_schedule: str = field("cosine", "Learning-rate decay.", choices=LR_SCHEDULES)
    warmup_epochs: float = field(0.0, "Linear warmup (epochs).")
    lr_boundaries: tuple = field((), "Step schedule: epochs at which lr *= lr_decay_factor.")
    lr_step_every: int = field(0, "Step schedule: also every this many epochs (0: off).")
    lr_decay_factor: float = field(0.1, "Step schedule: the factor.")
    label_smoothing: float = field(0.0, "Label smoothing.")

    def check_optimiser(self):
        check_fractions(self, ("label_smoothing", "momentum"))
        check_ints(self, {"epochs": 0, "batch_size": 1, "eval_batch_size": 1,
                          "lr_step_every": 0})
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 < self.lr_decay_factor <= 1.0:
            raise ValueError(f"lr_decay_factor must be in (0, 1], got {self.lr_decay_factor}")
        if self.warmup_epochs < 0 or self.warmup_epochs > max(self.epochs, 0):
            raise ValueError(f"warmup_epochs must be in [0, epochs={self.epochs}], "
                             f"got {self.warmup_epochs}")


@dataclasses.dataclass
class Execution:
    """Where and how a run executes: strategy, threads, logs, checkpoints, export, seed."""

    distribution: str = field("none", "tf.distribute strategy (mirrored: local devices).",
                              choices=("none", "mirrored"), resumable=True)
    threads: int = field(0, "TF intra/inter-op threads (0: TensorFlow's default).",
                         resumable=True)
    verbose: int = field(1, "Keras progress: 0 silent, 1 progress bar, 2 line per epoch.",
                         resumable=True)
    # Batches per compiled call (`model.compile(steps_per_execution=...)`): fewer Python
    # round trips and callback calls per step. Dense and one-shot runs train exactly as
    # with 1 (the wrappers mask the kernels inside every step); a gradual mask update
    # due inside an execution is applied at the next one's first batch (up to N-1 steps
    # late), so gradual rows keep 1. Callbacks see every N-th step only.
    steps_per_execution: int = field(1, "Batches per compiled call (model.compile).")
    checkpoint_every_steps: int = field(
        0, "Also checkpoint every N steps (0: at epoch ends only).", resumable=True)
    export_tflite: bool = field(False, "Also write model.tflite (sparse).", resumable=True)
    seed: int = field(0, "Random seed.")

    def check_execution(self):
        check_ints(self, {"threads": 0, "seed": 0, "checkpoint_every_steps": 0,
                          "steps_per_execution": 1})
