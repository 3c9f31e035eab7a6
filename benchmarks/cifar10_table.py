"""The README's CIFAR-10 results table, generated from the runs' metrics.json files.

    python benchmarks/cifar10_table.py                 # print the table
    python benchmarks/cifar10_table.py --write README.md   # replace it between the markers

Reads every `saved_models/cifar10_*/metrics.json` (written by `launchers/cifar10.py`).
Runs of one preset with several seeds (directories `..._seed<N>_cpu` beside the seed-0
run) are also summarised below the table as mean +- sample std over the seeds.
"""

import glob
import json
import collections
import os
import re
import statistics
import sys

from absl import app
from absl import flags

import sections  # benchmarks/sections.py, beside this script

_RUNS = flags.DEFINE_string("runs", "saved_models/cifar10_*", "Glob of run directories.")
_WRITE = flags.DEFINE_string("write", None, "Markdown file whose table to replace.")
BEGIN, END = "<!-- cifar10-table:begin -->", "<!-- cifar10-table:end -->"


def _pct(value):
    return "-" if value is None else f"{100 * value:.2f}"


def _pruning(metrics):
    """Who chose the mask: Global MP (one threshold), tfmot's per-layer pruning, ..."""
    if metrics["mode"] == "dense":
        return "-"
    method = metrics.get("layer_distribution") or "global"
    mt = metrics.get("min_weights_per_layer") or 0
    names = {"global": "Global MP" + (f" + MT {mt}" if mt else ""),
             "tfmot": "tfmot prune_low_magnitude (per layer)"}
    return names.get(method, f"{method} (per-layer baseline)")


def table(run_dirs):
    lines = ["| run | model | mode | pruning | budget | sparsity % | FLOPs pruned % "
             "| best top-1 % (epoch) | final top-1 % | one-shot, before fine-tune % "
             "| train img/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run_dir in sorted(run_dirs):
        path = os.path.join(run_dir, "metrics.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            m = json.load(f)
        lines.append(
            f"| `{os.path.basename(run_dir)}` | {m['model']} | {m['mode']} | {_pruning(m)} "
            f"| {m['budget']} "
            f"| {_pct(m['achieved_sparsity'])} | {_pct(m.get('flops_pruned'))} "
            f"| {_pct(m['best_test_accuracy'])} "
            f"({m['best_epoch']}) | {_pct(m['final_test_accuracy'])} "
            f"| {_pct(m.get('one_shot_test_accuracy'))} | {m.get('train_images_per_s')} |")
    return "\n".join(lines)


def _load(run_dir, name):
    with open(os.path.join(run_dir, name)) as f:
        return json.load(f)


def _mean_std(values):
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.2f} ± {100 * std:.2f}"


def seed_table(run_dirs):
    """Mean +- std over seeds of every preset run with more than one seed (else [])."""
    groups = collections.defaultdict(list)
    for run_dir in sorted(run_dirs):
        if not os.path.exists(os.path.join(run_dir, "metrics.json")):
            continue
        metrics, config = _load(run_dir, "metrics.json"), _load(run_dir, "config.json")
        base = re.sub(r"_seed\d+_cpu$", "_cpu", os.path.basename(run_dir))
        groups[base].append((config.get("seed", 0), metrics))
    rows = [(base, runs) for base, runs in sorted(groups.items())
            if len({seed for seed, _ in runs}) > 1]
    if not rows:
        return []
    lines = ["", "Repeated with other seeds (mean ± sample std over the seeds):", "",
             "| runs (`_seed<N>` beside) | model | pruning | budget | sparsity % | seeds "
             "| best top-1 % | final top-1 % | one-shot, before fine-tune % |",
             "|---|---|---|---|---|---|---|---|---|"]
    for base, runs in rows:
        m = runs[0][1]
        one_shot = [r["one_shot_test_accuracy"] for _, r in runs
                    if r.get("one_shot_test_accuracy") is not None]
        lines.append(
            f"| `{base}` | {m['model']} | {_pruning(m)} | {m['budget']} "
            f"| {_pct(m['achieved_sparsity'])} | {', '.join(str(s) for s in sorted(s for s, _ in runs))} "
            f"| {_mean_std([r['best_test_accuracy'] for _, r in runs])} "
            f"| {_mean_std([r['final_test_accuracy'] for _, r in runs])} "
            f"| {_mean_std(one_shot) if one_shot else '-'} |")
    return lines


def main(argv):
    del argv
    run_dirs = glob.glob(_RUNS.value)
    text = "\n".join([table(run_dirs), *seed_table(run_dirs)])
    if not _WRITE.value:
        print(text)
        return
    try:
        sections.write_marked(_WRITE.value, BEGIN, END, text)
    except ValueError as e:
        sys.exit(f"--write: {e}")


if __name__ == "__main__":
    app.run(main)
