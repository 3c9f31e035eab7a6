"""ImageNet models on fake data: training images/s with and without pruning wrappers,
and the time of one global mask update.

    python benchmarks/imagenet_throughput.py --image_size 224 --batch_size 8 --steps 3 \\
        --rounds 3 --out BENCHMARKS.md

Throughput: ResNet-50 v1.5 trained with `model.fit` (SGD, the ImageNet compile of
`tasks.imagenet.run`) on one fixed fake batch, dense vs wrapped at 90% one-shot
sparsity with `UpdateGlobalPruningStep` (masks re-applied after every step). The two
models alternate round by round (after a warm-up fit each that traces the step), so
load from other jobs hits both alike; medians and the ratio of medians are reported.

Mask update: `GlobalPruner.prune_to` on ResNet-50 and MobileNet-V1 (224x224 builds,
random init) at rising sparsities 0.5, 0.6, ..., so each call really recomputes the
masks; the first call (which traces the compiled update) is reported separately.

With `--out FILE` the section "ImageNet throughput" of FILE is replaced (appended if
missing); other sections stay.
"""

import tf_globalmp  # noqa: F401  (first: selects tf-keras)

import json
import statistics
import sys
import time

from absl import app
from absl import flags

from tf_globalmp import configs
from tf_globalmp import controller
from tf_globalmp import prune
from tf_globalmp import schedules
from tf_globalmp.data import imagenet as imagenet_data
from tf_globalmp.models import imagenet as imagenet_models
from tf_globalmp.tasks import imagenet as imagenet_task

import sections  # benchmarks/sections.py, beside this script

_SIZE = flags.DEFINE_integer("image_size", 224, "Input size.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Training batch.")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per fit.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved rounds (dense, wrapped).")
_UPDATES = flags.DEFINE_integer("updates", 4, "Mask updates per model (after the first).")
_OUT = flags.DEFINE_string("out", None, "Markdown file whose section is replaced.")
SECTION = "## ImageNet throughput"


def _throughput():
    config = configs.imagenet_config(
        fake_data=True, model="resnet50", mode="one_shot", sparsity=0.9,
        image_size=_SIZE.value, batch_size=_BATCH.value, steps_per_epoch=_STEPS.value,
        epochs=1, warmup_epochs=0.0, verbose=0)
    train_ds, _, info = imagenet_data.load(config)
    models = {}
    for mode in ("dense", "one_shot"):
        cfg = configs.imagenet_config(**{**config.__dict__, "mode": mode, "preset": "custom"})
        model = imagenet_task.build_model(cfg, info, _STEPS.value)
        imagenet_task.compile_model(model, cfg, _STEPS.value)
        callbacks = []
        if mode == "one_shot":
            pruner = controller.GlobalPruner(model)  # the schedule's (float32) value
            pruner.prune_to(schedules.sparsity_at(pruner.schedule, 0)[1], step=0)
            callbacks = [controller.UpdateGlobalPruningStep()]
        model.fit(train_ds, epochs=1, steps_per_epoch=1, verbose=0, callbacks=callbacks)
        models[mode] = (model, callbacks)
    times = {"dense": [], "one_shot": []}
    for _ in range(_ROUNDS.value):
        for mode, (model, callbacks) in models.items():
            start = time.perf_counter()
            model.fit(train_ds, epochs=1, steps_per_epoch=_STEPS.value, verbose=0,
                      callbacks=callbacks)
            times[mode].append(_STEPS.value * _BATCH.value / (time.perf_counter() - start))
    return {m: statistics.median(t) for m, t in times.items()}, times


def _mask_update(name):
    model = imagenet_models.build(name)
    wrapped = prune.prune_low_magnitude_global(model, schedules.GlobalConstantSparsity(0.5))
    pruner = controller.GlobalPruner(wrapped)
    seconds = []
    for i in range(_UPDATES.value + 1):
        start = time.perf_counter()
        pruner.prune_to(0.5 + 0.1 * i)
        seconds.append(time.perf_counter() - start)
    return {"weights": pruner.total, "first_s": seconds[0],
            "median_s": statistics.median(seconds[1:]), "all_s": seconds}


def _markdown(result):
    t = result["throughput"]
    lines = [
        SECTION, "",
        "Command: `python benchmarks/imagenet_throughput.py --image_size "
        f"{_SIZE.value} --batch_size {_BATCH.value} --steps {_STEPS.value} --rounds "
        f"{_ROUNDS.value} --updates {_UPDATES.value} --out BENCHMARKS.md` (2 busy CPU cores,"
        " float32, no strategy; fake data, one fixed batch).", "",
        "| ResNet-50 v1.5 training (fit, SGD) | images/s (median) | per round |",
        "|---|---|---|",
        f"| dense | {t['dense']:.2f} | {', '.join(f'{x:.2f}' for x in result['rounds']['dense'])} |",
        f"| pruning wrappers, 90% one-shot, masks re-applied every step | {t['one_shot']:.2f} "
        f"| {', '.join(f'{x:.2f}' for x in result['rounds']['one_shot'])} |",
        f"| ratio wrapped / dense | {t['one_shot'] / t['dense']:.3f} | |", "",
        "| one global mask update (`GlobalPruner.prune_to`) | prunable weights | first call "
        "(traces) | median of the next calls |", "|---|---|---|---|",
    ]
    for name, r in result["mask_update"].items():
        lines.append(f"| {name} | {r['weights']:,} | {r['first_s']:.2f} s | "
                     f"{1000 * r['median_s']:.0f} ms |")
    lines += ["", "CPU numbers only show the relative cost of the wrappers (an extra "
              "multiply by the mask per prunable weight in the forward pass, plus one "
              "compiled re-masking per step); GPU throughput is not measured here.", ""]
    return "\n".join(lines)


def main(argv):
    del argv
    start = time.time()
    medians, rounds = _throughput()
    result = {"throughput": medians, "rounds": rounds,
              "mask_update": {n: _mask_update(n) for n in ("resnet50", "mobilenet_v1")},
              "wall_s": round(time.time() - start, 1)}
    json.dump(result, sys.stdout, indent=1)
    print()
    text = _markdown(result)
    print(text)
    if _OUT.value:
        sections.write_section(_OUT.value, SECTION, text)


if __name__ == "__main__":
    app.run(main)
