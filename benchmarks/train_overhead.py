"""Training step time: dense vs Global MP wrappers vs tfmot's prune_low_magnitude.

    python benchmarks/train_overhead.py --model resnet20 --batch 64 --rounds 3 --out BENCHMARKS.md

Same model, batch and data (random CIFAR-shaped inputs: timing only) for the three
variants; pruning variants use a cubic schedule 50% -> 90% from step 100 with frequency 100,
so each 100-step round contains exactly one mask update (its cost is in the mean).
The variants run round-robin in one process (the first two rounds of each, which
include the one-off tracing of the update, are not counted); a round's time runs from
the first `on_train_batch_begin` to `on_train_end` of a timer that runs before every
other callback, so callback work (our global update, tfmot's step counter) is
included. Reported: median over rounds of the mean step time (round time / steps), and
its ratio to dense. `--steps_per_execution N` compiles every variant with N batches per
call (callbacks then see every N-th batch).
"""

import tf_globalmp  # noqa: F401  (selects tf-keras first)

import platform
import statistics
import time

from absl import app
from absl import flags
import numpy as np

from tf_globalmp import _compat
from tf_globalmp import controller
from tf_globalmp import prune
from tf_globalmp import schedules
from tf_globalmp.models import resnet_cifar

import sections  # benchmarks/sections.py, beside this script

keras = _compat.keras
tfmot = _compat.tfmot

_MODEL = flags.DEFINE_enum("model", "resnet20", ["resnet20", "resnet32", "resnet56"],
                           "CIFAR ResNet to time.")
_BATCH = flags.DEFINE_integer("batch", 64, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 100, "Steps per round (= pruning frequency).")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Timed rounds per variant (after a warm-up).")
_OUT = flags.DEFINE_string("out", None, "Append the Markdown section to this file.")
_SPE = flags.DEFINE_integer("steps_per_execution", 1, "Batches per compiled call, all variants.")

VARIANTS = ("dense", "global_mp", "tfmot")
# Round 0 (steps 0-99) is before begin_step, unpruned; round 1 holds the first
# mask update, i.e. the one-off tracing of the compiled update. Neither is counted.
WARMUP = 2


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.marks = []

    def on_train_batch_begin(self, batch, logs=None):
        self.marks.append(time.perf_counter())

    def on_train_end(self, logs=None):
        self.marks.append(time.perf_counter())


def _build(variant, depth):
    keras.utils.set_random_seed(0)
    model = resnet_cifar.resnet(depth)
    end = 100_000  # far away: every round prunes a bit more, as in gradual training
    callbacks = []
    if variant == "global_mp":
        schedule = schedules.GlobalPolynomialDecay(0.5, 0.9, _STEPS.value, end,
                                                   frequency=_STEPS.value)
        model = prune.prune_low_magnitude_global(model, schedule)
        callbacks = [controller.UpdateGlobalPruningStep()]
    elif variant == "tfmot":
        schedule = tfmot.sparsity.keras.PolynomialDecay(0.5, 0.9, _STEPS.value, end,
                                                        frequency=_STEPS.value)
        # tfmot's documented pattern for models with custom layers (the option-A
        # shortcut has no weights): wrap only the prunable layers.
        def wrap(layer):
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
                return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
            return layer.__class__.from_config(layer.get_config())

        model = keras.models.clone_model(model, clone_function=wrap)
        callbacks = [tfmot.sparsity.keras.UpdatePruningStep()]
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        steps_per_execution=_SPE.value,
    )
    return model, callbacks


def main(argv):
    del argv
    depth = int(_MODEL.value[len("resnet"):])
    rng = np.random.default_rng(0)
    n = _BATCH.value * _STEPS.value
    x = rng.standard_normal((n, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, n).astype("int32")
    built = {v: _build(v, depth) for v in VARIANTS}
    means = {v: [] for v in VARIANTS}
    start = time.time()
    for round_ in range(_ROUNDS.value + WARMUP):
        for variant in VARIANTS:
            model, callbacks = built[variant]
            timer = StepTimer()
            model.fit(x, y, batch_size=_BATCH.value, epochs=1, shuffle=False, verbose=0,
                      callbacks=[timer, *callbacks])
            # Callbacks see one batch per execution: time per step over the whole round.
            mean = (timer.marks[-1] - timer.marks[0]) / _STEPS.value
            if round_ >= WARMUP:
                means[variant].append(mean)
            print(f"round {round_} {variant}: {1000 * mean:.1f} ms/step "
                  f"(slowest execution {1000 * np.max(np.diff(timer.marks)):.0f} ms)", flush=True)
    dense = statistics.median(means["dense"])
    lines = [
        "## Training overhead of the pruning wrappers",
        "",
        f"Machine: {platform.machine()}, 2 CPU cores (shared with other jobs during the "
        f"run); {_MODEL.value} CIFAR, batch {_BATCH.value}, float32, random inputs, "
        f"steps_per_execution {_SPE.value}. "
        f"{_ROUNDS.value} rounds of {_STEPS.value} steps per variant after {WARMUP} warm-up rounds, "
        f"round-robin; one mask update per round (frequency {_STEPS.value}). "
        f"Total {time.time() - start:.0f} s.",
        "",
        f"Command: `python benchmarks/train_overhead.py --model {_MODEL.value} "
        f"--batch {_BATCH.value} --steps {_STEPS.value} --rounds {_ROUNDS.value} "
        f"--steps_per_execution {_SPE.value} --out BENCHMARKS.md`",
        "",
        "| variant | mean ms/step (median of rounds) | rounds (ms) | vs dense |",
        "|---|---:|---|---:|",
    ]
    labels = {"dense": "dense (no wrappers)",
              "global_mp": "Global MP: `prune_low_magnitude_global` + `UpdateGlobalPruningStep`",
              "tfmot": "tfmot: `prune_low_magnitude` + `UpdatePruningStep` (per layer)"}
    for variant in VARIANTS:
        med = statistics.median(means[variant])
        rounds = ", ".join(f"{1000 * m:.1f}" for m in means[variant])
        lines.append(f"| {labels[variant]} | {1000 * med:.1f} | {rounds} | {med / dense:.3f}x |")
    sections.show_and_append(lines, _OUT.value)


if __name__ == "__main__":
    app.run(main)
