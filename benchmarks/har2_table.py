"""FastGRNN on HAR-2: the README table, regenerated from the run directories' JSON files.

    python benchmarks/har2_table.py [--readme] [saved_models/har2_fastgrnn_* ...]

With --readme the table replaces the block between the `har2-table` markers in README.md.

Rows are (recipe, setting): the recipe is "tuned" for runs of the tuned_<row>_s<seed>
presets (Adam LR and decay chosen on held-out training subjects), else "Adam 1e-3"
(the earlier constant-LR runs). Runs of one row with different seeds are averaged:
mean ± sample std over seeds, of the best test accuracy over epochs (the paper's report)
and of the final epoch's; "vs paper" is the mean best minus the paper's number. Paper
numbers: Gupta et al. (Global MP) and STR (Kusupati et al. 2020), both as printed.
"""

import glob
import json
import os
import sys

import numpy as np

import sections  # benchmarks/sections.py, beside this script

PAPER = {  # (rW, rU) -> (Global MP paper, STR)
    None: ("96.10", "–"),
    (9, 8): ("95.89", "95.76"),
    (9, 7): ("95.72", "95.62"),
    (8, 7): ("95.62", "95.59"),
}


def _load(run_dir):
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    return config, metrics


def _recipe(config):
    return "tuned" if config["preset"].startswith("tuned_") else "Adam 1e-3"


def _key(config):
    recipe = _recipe(config)
    if config["mode"] == "dense":
        return (recipe, "dense", None, "")
    scope = config["structured_scope"] if config["mode"] == "structured" else ""
    return (recipe, config["mode"], tuple(config["ranks"]), scope)


def _label(key):
    _, mode, ranks, scope = key
    if mode == "dense":
        return "full rank (dense), (rW, rU) = (9, 80)"
    if mode == "structured":
        if scope == "per_factor":
            return f"structured, per-factor ranks ({ranks[0]}, {ranks[1]})"
        return f"structured, global column ranking (same #params) as ({ranks[0]}, {ranks[1]})"
    return f"unstructured Global MP, same #params as ({ranks[0]}, {ranks[1]})"


def _stat(values):
    values = 100 * np.asarray(values, float)
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def _schedule(config):
    schedule = config.get("lr_schedule", "constant")
    if schedule == "step":
        at = "/".join(map(str, config["lr_boundaries"]))
        return f"step x{config['lr_decay_factor']:g} at {at}"
    return schedule


def _order(key):
    recipe, mode, ranks, scope = key
    return (recipe != "tuned", mode != "dense", mode != "structured", scope != "per_factor",
            [-r for r in (ranks or ())])


def table(run_dirs):
    groups = {}
    for run_dir in sorted(run_dirs):
        if os.path.exists(os.path.join(run_dir, "metrics.json")):
            config, metrics = _load(run_dir)
            groups.setdefault(_key(config), []).append((config, metrics))
    lines = [
        "| recipe | setting | paper (Global MP) | STR | ours best | vs paper | ours final "
        "| seeds | ranks reached | non-zero prunable | TFLite bytes (sparse / compact) "
        "| epochs (budget) | Adam LR, decay |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(groups, key=_order):
        runs = groups[key]
        paper, str_ = PAPER.get(key[2], ("–", "–"))
        if key[1] == "unstructured" or key[3] == "global":
            paper, str_ = "–", "–"
        best = [m["best_test_accuracy"] for _, m in runs]
        gap = f"{100 * np.mean(best) - float(paper):+.2f}" if paper != "–" else "–"
        config, metrics = runs[0]
        tflite = metrics.get("tflite_bytes")
        compact = metrics.get("tflite_compact_bytes")
        epochs = sorted({m["epochs_done"] for _, m in runs})
        budget = {c["budget"] for c, _ in runs}
        seeds = ",".join(str(c["seed"]) for c, _ in sorted(runs, key=lambda r: r[0]["seed"]))
        lines.append(
            f"| {key[0]} | {_label(key)} | {paper} | {str_} | {_stat(best)} | {gap} "
            f"| {_stat([m['final_test_accuracy'] for _, m in runs])} "
            f"| {len(runs)} ({seeds}) | {tuple(metrics['ranks'])} "
            f"| {metrics['nonzero_prunable_weights']:,} / {metrics['prunable_weights']:,} "
            f"| {f'{tflite:,}' if tflite else '–'} / {f'{compact:,}' if compact else '–'} "
            f"| {'/'.join(map(str, epochs))} ({'/'.join(sorted(budget))}) "
            f"| {config['learning_rate']:g}, {_schedule(config)} |"
        )
    return "\n".join(lines)


START, END = "<!-- har2-table:start -->", "<!-- har2-table:end -->"


def write_readme(text, path="README.md"):
    sections.write_marked(path, START, END, text)


def main(argv):
    args = [a for a in argv[1:] if a != "--readme"]
    text = table(args or glob.glob("saved_models/har2_fastgrnn_*"))
    print(text)
    if "--readme" in argv:
        write_readme(text)


if __name__ == "__main__":
    main(sys.argv)
