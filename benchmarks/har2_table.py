"""FastGRNN on HAR-2: the README table, regenerated from the run directories' JSON files.

    python benchmarks/har2_table.py [--readme] [saved_models/har2_fastgrnn_* ...]

With --readme the table replaces the block between the `har2-table` markers in README.md.

Runs of the same setting (mode, ranks, scope) with different seeds are averaged
(mean ± std over seeds). Paper numbers: Gupta et al. (Global MP) and STR (Kusupati et
al. 2020), both as printed.
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


def _key(config):
    if config["mode"] == "dense":
        return ("dense", None, "")
    scope = config["structured_scope"] if config["mode"] == "structured" else ""
    return (config["mode"], tuple(config["ranks"]), scope)


def _label(key):
    mode, ranks, scope = key
    if mode == "dense":
        return "full rank (dense), (rW, rU) = (9, 80)"
    if mode == "structured":
        what = "structured, per-factor ranks" if scope == "per_factor" else \
            "structured, global column ranking (same #params)"
        return f"{what} ({ranks[0]}, {ranks[1]})" if scope == "per_factor" else \
            f"{what} as ({ranks[0]}, {ranks[1]})"
    return f"unstructured Global MP, same #params as ({ranks[0]}, {ranks[1]})"


def _stat(values):
    values = 100 * np.asarray(values, float)
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def table(run_dirs):
    groups = {}
    for run_dir in sorted(run_dirs):
        if os.path.exists(os.path.join(run_dir, "metrics.json")):
            config, metrics = _load(run_dir)
            groups.setdefault(_key(config), []).append((config, metrics))
    order = sorted(groups, key=lambda k: (k[0] != "dense", k[0] != "structured",
                                          k[2] != "per_factor", [-r for r in (k[1] or ())]))
    lines = [
        "| setting | paper (Global MP) | STR | ours best | ours final | seeds "
        "| ranks reached | non-zero prunable | TFLite bytes (sparse / compact) "
        "| epochs (budget) | Adam LR |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in order:
        runs = groups[key]
        paper, str_ = PAPER.get(key[1], ("–", "–")) if key[2] != "global" else ("–", "–")
        if key[0] == "unstructured":
            paper, str_ = "–", "–"
        config, metrics = runs[0]
        tflite = metrics.get("tflite_bytes")
        compact = metrics.get("tflite_compact_bytes")
        epochs = sorted({m["epochs_done"] for _, m in runs})
        budget = {c["budget"] for c, _ in runs}
        lines.append(
            f"| {_label(key)} | {paper} | {str_} "
            f"| {_stat([m['best_test_accuracy'] for _, m in runs])} "
            f"| {_stat([m['final_test_accuracy'] for _, m in runs])} "
            f"| {len(runs)} | {tuple(metrics['ranks'])} "
            f"| {metrics['nonzero_prunable_weights']:,} / {metrics['prunable_weights']:,} "
            f"| {f'{tflite:,}' if tflite else '–'} / {f'{compact:,}' if compact else '–'} "
            f"| {'/'.join(map(str, epochs))} ({'/'.join(sorted(budget))}) "
            f"| {config['learning_rate']:g} |"
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
