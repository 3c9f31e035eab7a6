"""Training step time: dense vs Global MP wrappers vs tfmot's prune_low_magnitude.

    python benchmarks/train_overhead.py --model resnet20 --batch 128 --steps 40 \
        --rounds 8 --steps_per_execution 1,10 --threads 2 --out BENCHMARKS.md

Same model, batch and data (random CIFAR-shaped inputs: timing only) for the three
variants; pruning variants use a cubic schedule 50% -> 90% from step `--steps` with
frequency `--steps`, so each round contains exactly one mask update (its cost is in the
mean). Every (variant, steps_per_execution) pair runs round-robin in one process (the
first two rounds of each, which include the one-off tracing of the update, are not
counted); a round's time runs from the first `on_train_batch_begin` to `on_train_end`
of a timer that runs before every other callback, so callback work (our global update,
tfmot's step counter) is included.

Reported per pair: median over rounds of the mean step time (round time / steps), its
min-max and images/s; and the ratio to dense with the same steps_per_execution computed
*per round* (the pairs of one round ran back to back, so slow drifts of the machine
cancel), as the median and min-max of those per-round ratios. The spread of the
per-round ratios is what a claimed difference must exceed. With several
`--steps_per_execution` values, each is also compared with the first (dense and wrapped).
Run it on an idle machine: other jobs on the same cores inflate wrapped variants more
than dense ones (they have more small ops), which once showed up as "half speed".
"""

import tf_globalmp  # noqa: F401  (selects tf-keras first)

import os
import platform
import statistics
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np
import tensorflow as tf

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
_BATCH = flags.DEFINE_integer("batch", 128, "Batch size.")
_STEPS = flags.DEFINE_integer("steps", 40, "Steps per round (= pruning frequency).")
_ROUNDS = flags.DEFINE_integer("rounds", 8, "Timed rounds per variant (after a warm-up).")
_OUT = flags.DEFINE_string("out", None, "Write the Markdown section into this file.")
_SPE = flags.DEFINE_list("steps_per_execution", ["1"],
                         "Batches per compiled call; several values are compared.")
_THREADS = flags.DEFINE_integer("threads", None, "TensorFlow intra/inter-op threads.")

VARIANTS = ("dense", "global_mp", "tfmot")
LABELS = {"dense": "dense (no wrappers)",
          "global_mp": "Global MP: `prune_low_magnitude_global` + `UpdateGlobalPruningStep`",
          "tfmot": "tfmot: `prune_low_magnitude` + `UpdatePruningStep` (per layer)"}
HEADING = "## Training overhead of the pruning wrappers"
# Round 0 is before begin_step, unpruned; round 1 holds the first mask update, i.e.
# the one-off tracing of the compiled update. Neither is counted.
WARMUP = 2


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.marks = []

    def on_train_batch_begin(self, batch, logs=None):
        self.marks.append(time.perf_counter())

    def on_train_end(self, logs=None):
        self.marks.append(time.perf_counter())


def _build(variant, depth, steps_per_execution):
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
        steps_per_execution=steps_per_execution,
    )
    return model, callbacks


def _spread(values, scale=1.0, fmt="{:.1f}"):
    return f"{fmt.format(scale * min(values))}-{fmt.format(scale * max(values))}"


def _table(means, spes):
    """Markdown rows from means[(variant, spe)] = [seconds per step, one per round]."""
    batch = _BATCH.value
    lines = [
        "| variant | steps_per_execution | ms/step median (min-max) | images/s "
        "| vs dense, same steps_per_execution: median of per-round ratios (min-max) |",
        "|---|---:|---:|---:|---:|",
    ]
    for spe in spes:
        for variant in VARIANTS:
            m = means[(variant, spe)]
            ratios = [a / b for a, b in zip(m, means[("dense", spe)])]
            lines.append(
                f"| {LABELS[variant]} | {spe} | {1000 * statistics.median(m):.1f} "
                f"({_spread(m, 1000)}) | {batch / statistics.median(m):.0f} "
                f"| {statistics.median(ratios):.3f}x ({_spread(ratios, fmt='{:.3f}')}) |")
    if len(spes) > 1:
        lines += ["", f"steps_per_execution vs {spes[0]} (same variant, per-round ratios):", "",
                  "| variant | steps_per_execution | time per step vs "
                  f"steps_per_execution={spes[0]}: median (min-max) |", "|---|---:|---:|"]
        for spe in spes[1:]:
            for variant in VARIANTS:
                ratios = [a / b for a, b in zip(means[(variant, spe)],
                                                means[(variant, spes[0])])]
                lines.append(f"| {LABELS[variant]} | {spe} | {statistics.median(ratios):.3f}x "
                             f"({_spread(ratios, fmt='{:.3f}')}) |")
        # The figure: a wrapped model with N batches per call vs dense with 1.
        for spe in spes[1:]:
            ratios = [a / b for a, b in zip(means[("global_mp", spe)],
                                            means[("dense", spes[0])])]
            lines.append(f"| Global MP with {spe} vs **dense** with {spes[0]} | {spe} "
                         f"| {statistics.median(ratios):.3f}x ({_spread(ratios, fmt='{:.3f}')}) |")
    return lines


def main(argv):
    del argv
    if _THREADS.value:
        tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
        tf.config.threading.set_inter_op_parallelism_threads(_THREADS.value)
    spes = [int(v) for v in _SPE.value]
    depth = int(_MODEL.value[len("resnet"):])
    rng = np.random.default_rng(0)
    n = _BATCH.value * _STEPS.value
    x = rng.standard_normal((n, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, n).astype("int32")
    pairs = [(v, spe) for spe in spes for v in VARIANTS]
    built = {pair: _build(pair[0], depth, pair[1]) for pair in pairs}
    means = {pair: [] for pair in pairs}
    start = time.time()
    for round_ in range(_ROUNDS.value + WARMUP):
        # Rotate the start so no variant always runs first (or right after another).
        order = pairs[round_ % len(pairs):] + pairs[:round_ % len(pairs)]
        for pair in order:
            model, callbacks = built[pair]
            timer = StepTimer()
            model.fit(x, y, batch_size=_BATCH.value, epochs=1, shuffle=False, verbose=0,
                      callbacks=[timer, *callbacks])
            # Callbacks see one batch per execution: time per step over the whole round.
            mean = (timer.marks[-1] - timer.marks[0]) / _STEPS.value
            if round_ >= WARMUP:
                means[pair].append(mean)
            logging.info("round %d %s steps_per_execution=%d: %.1f ms/step", round_,
                         pair[0], pair[1], 1000 * mean)
    threads = _THREADS.value or "default"
    lines = [
        HEADING,
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, idle apart from this "
        f"run (background training paused); TensorFlow threads: {threads}. {_MODEL.value} "
        f"CIFAR, batch {_BATCH.value}, float32, random inputs. {_ROUNDS.value} rounds of "
        f"{_STEPS.value} steps per variant after {WARMUP} warm-up rounds, round-robin with a "
        f"rotating start; one mask update per round (frequency {_STEPS.value}). "
        f"Total {time.time() - start:.0f} s.",
        "",
        f"Command: `python benchmarks/train_overhead.py --model {_MODEL.value} "
        f"--batch {_BATCH.value} --steps {_STEPS.value} --rounds {_ROUNDS.value} "
        f"--steps_per_execution {','.join(map(str, spes))} --threads {threads} "
        "--out BENCHMARKS.md`",
        "",
        *_table(means, spes),
    ]
    print("\n".join(lines))
    if _OUT.value:
        sections.write_section(_OUT.value, HEADING, "\n".join(lines) + "\n")


if __name__ == "__main__":
    app.run(main)
