"""Global channel pruning on CIFAR-10: accuracy, size, FLOPs and LiteRT latency of the
shrunk models vs the dense model, a uniform channel baseline and unstructured Global MP.

    python benchmarks/channels.py --data_dir /work/shared/data/cifar10-jpeg.tar.gz \
        --workdir runs/channels --out BENCHMARKS.md --readme README.md \
        --pause_pids <pids of background training, stopped while timing>

For each model (the committed dense runs `saved_models/cifar10_<model>_dense_cpu`;
MobileNet-V2's model file is not committed: its preset `cpu_mobilenet_v2_dense_20k`
is trained into `--workdir` first, about 20 minutes) and
each FLOPs budget (fraction of the kernel multiply-adds removed):

1. *global channel*, one row per score of `--scores` (default: "relative", the
   library's default score, and "mean", mean |w|; see `channels.select`): the
   channel-group sparsity whose global selection on the dense weights first removes
   the budget (config `flops_target`: `channels.rule.sparsity_for_flops`), one-shot,
   then fine-tuned;
   and for each of `--multiples` (default 16) the first score's row with every
   layer's kept width rounded to that multiple (`channel_multiple`; its FLOPs search
   rounds too), named `channel_<score>_x<multiple>`;
2. *uniform L1*: every layer removes the same fraction of its channels, lowest L1
   norm first, the fraction that first removes the same FLOPs, fine-tuned alike;
3. *unstructured Global MP* at the kernel-weight count of the first score's row (same
   parameters), fine-tuned alike (its FLOPs are only saved on paper: LiteRT runs it
   dense).

All rows fine-tune with the model's reduced one-shot recipe (the channel rows are the
presets `cpu_resnet20_{channel,uniform_l1_}{30,50}` and
`cpu_mobilenet_v2_{channel,uniform_l1_}{30,50}_20k`, the recipe of
`cpu_resnet20_gmp90` / `cpu_mobilenet_v2_gmp98_20k`, which the unstructured rows use
with the sparsity of their channel row; `--epochs`, `--max_train_examples` change
the budget), each a resumable run directory under `--workdir`. One-shot accuracies
before fine-tuning are reported for every score (and uniform), kept in
`<workdir>/<model>/one_shot.json`. Then every
model is exported as float32 `.tflite` (the channel rows: the `shrink`-ed model;
unstructured: sparse encoding) and all files of a model are timed in the LiteRT
interpreter with XNNPACK, 1 thread, interleaved (`benchmarks/latency.py`), at each batch
size of `--batches` (default 1 and 16: the main table at batch 1, a second table at
16, where per-invocation overhead is spread over 16 images), with the `--pause_pids`
processes stopped meanwhile. The report ends with the kept output channels of every
Conv2D / Dense layer of each shrunk model (a folded table per model).

Quick check of the script (minutes; tiny data, accuracies meaningless):

    python benchmarks/channels.py --data_dir tests/testdata/cifar10_tiny \
        --workdir /tmp/channels_check --epochs 1 --max_train_examples 50 --repeats 3 \
        --models resnet20 --flops_targets 0.3
"""

import tf_globalmp  # noqa: F401  (selects tf-keras first)

import dataclasses
import json
import os
import platform
import statistics
import time

from absl import app
from absl import flags

from tf_globalmp import configs
from tf_globalmp import controller
from tf_globalmp import export
from tf_globalmp import flops
from tf_globalmp import runs
from tf_globalmp.channels import select
from tf_globalmp.data import cifar10 as cifar10_data
from tf_globalmp.tasks import channel_pruning
from tf_globalmp.tasks import cifar10 as cifar10_task
from tf_globalmp.tasks import common

import latency  # benchmarks/latency.py, beside this script
import sections  # benchmarks/sections.py

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DENSE = {"resnet20": "saved_models/cifar10_resnet20_dense_cpu",
         "mobilenet_v2": "saved_models/cifar10_mobilenet_v2_dense_cpu"}
# The preset that remakes each dense run (its model.keras is not committed for every
# model: MobileNet-V2's is remade under --workdir when missing).
DENSE_PRESET = {"resnet20": "cpu_resnet20_dense", "mobilenet_v2": "cpu_mobilenet_v2_dense_20k"}
FINETUNE_PRESET = {"resnet20": "cpu_resnet20_gmp90", "mobilenet_v2": "cpu_mobilenet_v2_gmp98_20k"}
# The CIFAR-10 presets of the channel rows, by row kind, at a FLOPs budget in percent.
CHANNEL_PRESET = {"resnet20": "cpu_resnet20_{kind}{tag}",
                  "mobilenet_v2": "cpu_mobilenet_v2_{kind}{tag}_20k"}
HEADING = "## Global channel pruning: smaller and faster models (CIFAR-10)"

_MODELS = flags.DEFINE_list("models", ["resnet20", "mobilenet_v2"], "Models (see DENSE).")
_TARGETS = flags.DEFINE_list("flops_targets", ["0.3", "0.5"],
                             "Fractions of kernel FLOPs removed.")
_SCORES = flags.DEFINE_list("scores", ["relative", "mean"], "Global channel scores "
                            "fine-tuned (channels.select.SCORES); all are compared one-shot.")
_DATA = flags.DEFINE_string("data_dir", "/work/shared/data/cifar10-jpeg.tar.gz",
                            "CIFAR-10 image folder or .tar.gz.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/channels", "Run directories and files.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Fine-tuning epochs (default: the preset's).")
_MAX_TRAIN = flags.DEFINE_integer("max_train_examples", None,
                                  "Training subset (default: the preset's).")
_MIN_CHANNELS = flags.DEFINE_integer("min_channels", 1, "Channels every layer keeps.")
_REPEATS = flags.DEFINE_integer("repeats", 50, "Timed invocations per file (interleaved).")
_BATCHES = flags.DEFINE_list("batches", ["1", "16"], "Batch sizes timed (the main table: the "
                             "first; the others in a table of their own).")
_THREADS = flags.DEFINE_integer("threads", 1, "TensorFlow threads for training.")
_MULTIPLES = flags.DEFINE_list("multiples", ["16"], "Also a global row of the first score with "
                               "kept widths rounded to each of these multiples "
                               "(channel_multiple; empty: none).")
_SEEDS = flags.DEFINE_list("seeds", [], "More fine-tuning seeds for the first score's "
                           "channel rows (with and without --multiples) and the uniform "
                           "row (the preset's seed is the first); reported as mean +- std.")
_SEED_MODELS = flags.DEFINE_list("seed_models", None, "Models --seeds applies to "
                                 "(default: all of --models).")
_PAUSE = flags.DEFINE_list("pause_pids", [], "Processes (e.g. background training) stopped "
                           "with SIGSTOP while the latency is timed, resumed after.")
_OUT = flags.DEFINE_string("out", None, "Write the Markdown section into this file.")
_README = flags.DEFINE_string("readme", None, "Also write the results table between the "
                              "README's channels-table markers.")
README_MARKS = ("<!-- channels-table:start -->", "<!-- channels-table:end -->")


def dense_dir(model):
    """The committed dense run of `model` if it holds its model, else the same preset
    trained (resumable) into --workdir/<model>/dense."""
    committed = os.path.join(ROOT, DENSE[model])
    if os.path.exists(os.path.join(committed, "model.keras")):
        return committed
    workdir = os.path.join(_WORKDIR.value, model, "dense")
    print(f"{committed} has no model.keras: training {DENSE_PRESET[model]} into {workdir}",
          flush=True)
    cifar10_task.run(configs.cifar10_config(
        DENSE_PRESET[model], data_dir=_DATA.value, threads=_THREADS.value, verbose=2,
        max_train_examples=_MAX_TRAIN.value), workdir)
    return workdir


def _dense_source(model):
    """Where the dense model of `model` comes from, for the report."""
    path = dense_dir(model)
    if os.path.commonpath([ROOT, os.path.abspath(path)]) == ROOT:
        return os.path.relpath(path, ROOT)
    with open(os.path.join(path, "metrics.json")) as f:
        accuracy = json.load(f)["best_test_accuracy"]
    return (f"preset {DENSE_PRESET[model]} trained into --workdir, "
            f"{100 * accuracy:.2f}% top-1")


def _config(model, preset=None, **overrides):
    values = dict(pretrained=dense_dir(model), data_dir=_DATA.value,
                  threads=_THREADS.value, verbose=2, epochs=_EPOCHS.value,
                  max_train_examples=_MAX_TRAIN.value, min_channels=_MIN_CHANNELS.value)
    values.update(overrides)
    return configs.cifar10_config(preset or FINETUNE_PRESET[model], **values)


def _channel_preset(model, kind, target):
    """The preset of a channel row ("channel" or "uniform_l1_") at a FLOPs budget, or
    None for a budget without one (the one-shot recipe + flops_target then)."""
    name = CHANNEL_PRESET[model].format(kind=kind, tag=int(round(100 * target)))
    return name if name in configs.CIFAR10_PRESETS and \
        configs.CIFAR10_PRESETS[name].get("flops_target") == target else None


def _one_shot_key(distribution, score, multiple, target):
    """The name of a one-shot accuracy, e.g. "global_relative_x16@0.3"."""
    return f"{distribution}_{score}{f'_x{multiple}' if multiple > 1 else ''}@{target}"


def _one_shot_accuracy(model, target, distribution, score, multiple=1):
    """Test accuracy right after one-shot channel pruning to `target` (no fine-tuning),
    kept in --workdir/<model>/one_shot.json (a rerun of the script does not redo it)."""
    path = os.path.join(_WORKDIR.value, model, "one_shot.json")
    key = _one_shot_key(distribution, score, multiple, target)
    done = {}
    if os.path.exists(path):
        with open(path) as f:
            done = json.load(f)
    if key in done:
        return done[key]
    accuracy = _one_shot_eval(model, target, distribution, score, multiple)
    if os.path.exists(path):  # re-read: another run of the script may have added keys
        with open(path) as f:
            done = json.load(f)
    done[key] = accuracy
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(done, f, indent=1)
    return accuracy


def _one_shot_eval(model, target, distribution, score, multiple):
    config = channel_pruning.resolve(
        _config(model, granularity="channel", channel_score=score, flops_target=target,
                layer_distribution=distribution, channel_multiple=multiple),
        lambda: runs.load_model(dense_dir(model)))
    _, test_ds, info = cifar10_data.load(config)
    net = cifar10_task.build_model(config, info, info["steps_per_epoch"])
    cifar10_task.compile_model(net, config, info["steps_per_epoch"])
    controller.GlobalPruner(net).prune_to(config.sparsity, step=0)
    return common.accuracy(net, test_ds)


def _seeded_accuracies(model, kind, target, overrides, workdir, first):
    """{seed: best test accuracy} of a channel row fine-tuned with the preset's seed
    (`first`, its metrics) and each of --seeds (run dirs <workdir>_seed<N>), or None
    without --seeds for this model. One-shot selection does not depend on the seed."""
    if not _SEEDS.value or model not in (_SEED_MODELS.value or _MODELS.value):
        return None
    config = _config(model, _channel_preset(model, kind, target), granularity="channel",
                     flops_target=target, **overrides)
    out = {config.seed: first["best_test_accuracy"]}
    for seed in (int(s) for s in _SEEDS.value):
        m = cifar10_task.run(dataclasses.replace(config, seed=seed), f"{workdir}_seed{seed}")
        out[seed] = m["best_test_accuracy"]
    return out


def _seed_table(rows):
    """Mean +- sample std over seeds of the rows that have them (empty list if none)."""
    rows = [r for r in rows if r.get("seeds")]
    if not rows:
        return []
    lines = ["", "Fine-tuned top-1 over seeds (mean ± sample std; one-shot selection is the "
             "same for every seed, the seed changes the fine-tuning data order):", "",
             "| model | row | FLOPs budget % | seeds | top-1 % mean ± std | per seed |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        values = [100 * v for v in r["seeds"].values()]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        lines.append(f"| {r['model']} | {r['row']} | {_pct(r['target'])} | "
                     f"{', '.join(str(k) for k in r['seeds'])} | "
                     f"{statistics.mean(values):.2f} ± {std:.2f} | "
                     f"{', '.join(f'{v:.2f}' for v in values)} |")
    return lines


def _widths(keras_model):
    """{layer name: output channels} of the layers whose kernel sets their width
    (Conv2D: `filters`, Dense: `units`; depthwise layers follow their input)."""
    return {layer.name: getattr(layer, "filters", None) or layer.units
            for layer in keras_model.layers if hasattr(layer, "kernel") and (
                getattr(layer, "filters", None) or getattr(layer, "units", None))}


def _width_table(rows):
    """Kept output channels per layer, one column per channel row (per model, folded)."""
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        columns = [r for r in rows if r["model"] == model and r.get("widths")]
        dense = columns[0]["widths"]
        lines += ["", f"<details><summary>{model}: kept output channels per layer "
                  "(Conv2D / Dense of the shrunk models)</summary>", "",
                  "| layer | " + " | ".join(
                      r["row"] if r["row"] == "dense" else f"{r['row']} @{_pct(r['target'])}"
                      for r in columns) + " |",
                  "|---|" + "---|" * len(columns)]
        for name in dense:
            lines.append(f"| {name} | " + " | ".join(
                str(r["widths"].get(name, "")) for r in columns) + " |")
        lines += ["", "</details>"]
    return lines


def _export(keras_model, path, sparse):
    if not os.path.exists(path):
        export.export_tflite(common.float32_copy(keras_model), path, sparse=sparse)
    return os.path.getsize(path)


def _model_rows(model, targets):
    base = os.path.join(_WORKDIR.value, model)
    dense = runs.load_model(dense_dir(model))
    with open(os.path.join(dense_dir(model), "metrics.json")) as f:
        dense_metrics = json.load(f)
    dense_flops = flops.flops_report(dense).dense
    rows = [dict(model=model, row="dense", target=0.0, unit="", sparsity=0.0,
                 accuracy=dense_metrics["best_test_accuracy"], one_shot=None,
                 params=int(dense.count_params()), flops=dense_flops, widths=_widths(dense),
                 tflite=_export(dense, os.path.join(base, "dense.tflite"), False),
                 path=os.path.join(base, "dense.tflite"))]
    one_shot = {}
    for target in targets:
        tag = int(round(100 * target))
        first = _SCORES.value[0]
        multiples = [int(m) for m in _MULTIPLES.value]
        keys = [("global", s, 1) for s in select.SCORES] + [("uniform", "l1", 1)] + [
            ("global", first, m) for m in multiples]
        for key in keys:
            one_shot[key, target] = _one_shot_accuracy(model, target, *key)
        runs_here = [(f"channel_{s}", "channel", dict(channel_score=s), ("global", s, 1))
                     for s in _SCORES.value]
        runs_here += [(f"channel_{first}_x{m}", "channel",
                       dict(channel_score=first, channel_multiple=m), ("global", first, m))
                      for m in multiples]
        runs_here.append(("uniform_l1", "uniform_l1_", dict(
            channel_score="l1", layer_distribution="uniform"), ("uniform", "l1", 1)))
        for name, kind, overrides, key in runs_here:
            workdir = os.path.join(base, f"{name}_{tag}")
            m = cifar10_task.run(_config(model, _channel_preset(model, kind, target),
                                         granularity="channel", flops_target=target,
                                         **overrides), workdir)
            seeds = _seeded_accuracies(model, kind, target, overrides, workdir, m) if (
                name.startswith(f"channel_{first}") or name == "uniform_l1") else None
            tflite = os.path.join(workdir, "shrunk.tflite")
            shrunk = runs.load_model(os.path.join(workdir, "model_shrunk.keras"))
            rows.append(dict(model=model, row=name, target=target, unit="groups",
                             sparsity=m["channel_sparsity"], accuracy=m["best_test_accuracy"],
                             one_shot=one_shot[key, target], params=m["shrunk_parameters"],
                             flops=m["shrunk_flops"], tflite=_export(shrunk, tflite, False),
                             widths=_widths(shrunk),
                             path=tflite, kernel_weights_removed=m["kernel_weights_removed"],
                             channels_removed=m["channels_removed"], seeds=seeds))
        # Unstructured Global MP at the kernel-weight count of the first channel row.
        with open(os.path.join(base, f"channel_{_SCORES.value[0]}_{tag}", "metrics.json")) as f:
            weight_sparsity = round(json.load(f)["achieved_sparsity"], 6)
        workdir = os.path.join(base, f"unstructured_{tag}")
        m = cifar10_task.run(_config(model, sparsity=weight_sparsity), workdir)
        tflite = os.path.join(workdir, "sparse.tflite")
        masked = runs.load_model(os.path.join(workdir, "model.keras"))
        nonzero = m["model_parameters"] - m["prunable_weights"] + m["nonzero_prunable_weights"]
        rows.append(dict(model=model, row="unstructured", target=target, unit="weights",
                         sparsity=weight_sparsity, accuracy=m["best_test_accuracy"],
                         one_shot=m["one_shot_test_accuracy"], params=nonzero,
                         flops=m["sparse_flops"], tflite=_export(masked, tflite, True),
                         path=tflite))
    batches = [int(b) for b in _BATCHES.value]
    with latency.paused([int(p) for p in _PAUSE.value]):
        ms = {b: latency.interleaved_ms([r["path"] for r in rows], _REPEATS.value, batch=b)
              for b in batches}
    for r in rows:
        r["flops_ratio"] = r["flops"] / dense_flops
        r["ms_by_batch"] = {b: ms[b][r["path"]] for b in batches}
        r["ms_ratio_by_batch"] = {
            b: None if ms[b][r["path"]] is None or ms[b][rows[0]["path"]] is None else
            ms[b][r["path"]] / ms[b][rows[0]["path"]] for b in batches}
        r["ms"] = r["ms_by_batch"][batches[0]]
        r["ms_ratio"] = r["ms_ratio_by_batch"][batches[0]]
    return rows, {_one_shot_key(*key, target): v for (key, target), v in one_shot.items()}


def _pct(value):
    return "" if value is None else f"{100 * value:.2f}"


def _table(rows):
    lines = ["| model | row | FLOPs budget % | sparsity (unit) | top-1 % fine-tuned | top-1 % "
             "one-shot | parameters | MFLOPs | FLOPs ratio | .tflite KB | XNNPACK ms | "
             "latency ratio | latency / FLOPs ratio |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ms = "" if r["ms"] is None else f"{r['ms']:.2f}"
        ms_ratio = "" if r["ms_ratio"] is None else f"{r['ms_ratio']:.3f}"
        over = "" if r["ms_ratio"] is None else f"{r['ms_ratio'] / r['flops_ratio']:.2f}"
        lines.append(
            f"| {r['model']} | {r['row']} | {_pct(r['target'])} | "
            f"{r['sparsity']:.4f} {r['unit']} | {_pct(r['accuracy'])} | {_pct(r['one_shot'])} "
            f"| {r['params']:,} | {r['flops'] / 1e6:.2f} | {r['flops_ratio']:.3f} | "
            f"{r['tflite'] / 1024:.0f} | {ms} | {ms_ratio} | {over} |")
    return lines


def _batch_table(rows):
    """Latency at the batch sizes after the first (empty list if there are none)."""
    batches = [int(b) for b in _BATCHES.value[1:]]
    if not batches:
        return []
    lines = ["", "Latency at larger batches (same files, input batch dimension resized; "
             "ms per invocation, ratios to the dense model at the same batch):", "",
             "| model | row | FLOPs budget % | FLOPs ratio | "
             + " | ".join(f"batch {b}: ms | latency ratio | latency / FLOPs ratio"
                          for b in batches) + " |",
             "|---|---|---|---|" + "---|---|---|" * len(batches)]
    for r in rows:
        cells = []
        for b in batches:
            ms, ratio = r["ms_by_batch"][b], r["ms_ratio_by_batch"][b]
            cells += ["" if ms is None else f"{ms:.2f}",
                      "" if ratio is None else f"{ratio:.3f}",
                      "" if ratio is None else f"{ratio / r['flops_ratio']:.2f}"]
        lines.append(f"| {r['model']} | {r['row']} | {_pct(r['target'])} | "
                     f"{r['flops_ratio']:.3f} | " + " | ".join(cells) + " |")
    return lines


def main(argv):
    del argv
    import tensorflow as tf

    start = time.time()
    targets = [float(t) for t in _TARGETS.value]
    all_rows, one_shot = [], {}
    for model in _MODELS.value:
        rows, shots = _model_rows(model, targets)
        all_rows += rows
        one_shot[model] = shots
        print("\n".join(_table(rows) + _batch_table(rows)), flush=True)
    os.makedirs(_WORKDIR.value, exist_ok=True)
    with open(os.path.join(_WORKDIR.value, "results.json"), "w") as f:
        json.dump({"rows": all_rows, "one_shot": one_shot}, f, indent=2)
    budget = ", ".join(f"{m}: preset {FINETUNE_PRESET[m]}" for m in _MODELS.value)
    text = [
        HEADING, "",
        f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}); "
        f"TensorFlow {tf.__version__}. Reduced budget: one-shot from the dense models ("
        + ", ".join(_dense_source(m) for m in _MODELS.value)
        + f"), fine-tuning as {budget}"
        + (f", {_EPOCHS.value} epoch(s)" if _EPOCHS.value else "")
        + (f" on {_MAX_TRAIN.value} training images" if _MAX_TRAIN.value else "")
        + f"; min_channels {_MIN_CHANNELS.value}. Latency: LiteRT, XNNPACK, 1 thread, batch "
        f"{_BATCHES.value[0]}, median of {_REPEATS.value} interleaved invocations per file"
        + (" (other training jobs on the machine stopped while timing)" if _PAUSE.value
           else "") + ". "
        f"Total run {time.time() - start:.0f} s.", "",
        "Command: `python benchmarks/channels.py --data_dir <cifar10-jpeg.tar.gz> --models "
        f"{','.join(_MODELS.value)} --flops_targets {','.join(_TARGETS.value)} --scores "
        f"{','.join(_SCORES.value)} --repeats {_REPEATS.value} "
        f"--batches {','.join(_BATCHES.value)}"
        + (f" --epochs {_EPOCHS.value}" if _EPOCHS.value else "")
        + (f" --max_train_examples {_MAX_TRAIN.value}" if _MAX_TRAIN.value else "")
        + " --multiples " + (",".join(_MULTIPLES.value) or "''")
        + (f" --seeds {','.join(_SEEDS.value)}" if _SEEDS.value else "")
        + (f" --seed_models {','.join(_SEED_MODELS.value)}" if _SEED_MODELS.value else "")
        + " --out BENCHMARKS.md" + (" --readme README.md" if _README.value else "") + "`",
        "",
        "FLOPs: kernel multiply-adds of the model as it runs (`flops.py`: the shrunk model "
        "for channel rows, the nonzero weights for unstructured rows, which LiteRT "
        "still runs dense). Sparsity unit: channel groups removed (channel rows), kernel "
        "weights removed (unstructured). Parameters: the shrunk model's (channel), the "
        "nonzero ones (unstructured).", "",
    ] + _table(all_rows) + _batch_table(all_rows) + _seed_table(all_rows) + \
        _width_table(all_rows) + [
        "", "One-shot top-1 (before fine-tuning) by score:", "",
                           "| model | " + " | ".join(sorted(next(iter(one_shot.values())))) + " |",
                           "|---|" + "---|" * len(next(iter(one_shot.values())))]
    for model, shots in one_shot.items():
        text.append(f"| {model} | " + " | ".join(_pct(shots[k]) for k in sorted(shots)) + " |")
    if _OUT.value:
        sections.write_section(_OUT.value, HEADING, "\n".join(text) + "\n")
    if _README.value:
        sections.write_marked(_README.value, *README_MARKS,
                              "\n".join(_table(all_rows) + _seed_table(all_rows)))
    print("\n".join(text))


if __name__ == "__main__":
    app.run(main)
