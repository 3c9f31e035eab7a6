"""Global MP vs uniform / ERK / LAMP / random at equal budget, one-shot on CIFAR-10.

    python benchmarks/compare_distributions.py --model resnet20 \
        --pretrained saved_models/cifar10_resnet20_dense_cpu \
        --data_dir ../shared/data/cifar10-jpeg.tar.gz \
        --sparsities 0.9,0.95,0.98 --methods global,global_mt,uniform,erk,lamp,random,tfmot \
        --finetune_epochs 1 --max_train_examples 10000 --seeds 0 --out BENCHMARKS.md

Every method starts from the same trained dense model, prunes it once to the same
global sparsity through the same wrappers (`prune_low_magnitude_global(...,
distribution=method)`), and is fine-tuned with the same budget by
`tasks.cifar10.run` (mode one_shot: mask fixed, re-applied after every step).
`global_mt` is Global MP with Minimum Threshold (`--min_weights_fraction`). Each run
is a resumable run directory under `--workdir`, so an interrupted comparison
continues where it stopped. Writes `<workdir>/results.json`, a per-layer plot
(global vs uniform at the middle sparsity) and, with `--out`, a Markdown section.
"""

import tf_globalmp  # noqa: F401  (selects tf-keras first)

import json
import os
import statistics
import time

from absl import app
from absl import flags

from tf_globalmp import configs
from tf_globalmp import flops
from tf_globalmp import prune
from tf_globalmp import report
from tf_globalmp.tasks import cifar10 as cifar10_task
from tf_globalmp import runs

import sections  # benchmarks/sections.py, beside this script

_MODEL = flags.DEFINE_string("model", "resnet20", "CIFAR model name.")
_PRETRAINED = flags.DEFINE_string("pretrained", "saved_models/cifar10_resnet20_dense_cpu",
                                  "Trained dense run directory or .keras file.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "CIFAR-10 image folder or .tar.gz "
                                "(default: tfds).")
_SPARSITIES = flags.DEFINE_list("sparsities", ["0.9", "0.95", "0.98"], "Global sparsities.")
_METHODS = flags.DEFINE_list("methods", ["global", "global_mt", "uniform", "erk", "lamp",
                                         "random"], "Methods to compare.")
_MT = flags.DEFINE_float("min_weights_fraction", 0.002, "MT of global_mt (fraction of N).")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Fine-tuning seeds (>= 2 for mean +- std).")
_EPOCHS = flags.DEFINE_integer("finetune_epochs", 1, "Fine-tuning epochs per method.")
_SUBSET = flags.DEFINE_integer("max_train_examples", 10000,
                               "Fine-tune on a fixed random subset of this size (0: all).")
_LR = flags.DEFINE_float("learning_rate", 0.01, "Fine-tuning learning rate (cosine).")
_THREADS = flags.DEFINE_integer("threads", 1, "TensorFlow threads per run.")
_BF16 = flags.DEFINE_bool("mixed_bfloat16", True, "bfloat16 compute (only on CPUs with "
                          "native bfloat16: AMX / AVX512-BF16).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/compare_distributions", "Run directories.")
_OUT = flags.DEFINE_string("out", None, "Markdown file to append the section to.")

METHODS = {
    "global": ("global", False), "global_mt": ("global", True), "uniform": ("uniform", False),
    "erk": ("erk", False), "lamp": ("lamp", False), "random": ("random", False),
    "tfmot": ("tfmot", False),  # tfmot's own prune_low_magnitude (its code path)
}


def _config(method, sparsity, seed, budget):
    distribution, mt = METHODS[method]
    return configs.Cifar10Config(
        mode="one_shot", model=_MODEL.value, pretrained=_PRETRAINED.value,
        data_dir=_DATA_DIR.value, sparsity=sparsity, layer_distribution=distribution,
        min_weights_fraction=_MT.value if mt else None, epochs=_EPOCHS.value,
        max_train_examples=_SUBSET.value or None, learning_rate=_LR.value,
        lr_schedule="cosine", label_smoothing=0.1, weight_decay=5e-4,
        mixed_bfloat16=_BF16.value, threads=_THREADS.value, verbose=0, seed=seed, budget=budget,
    )


def _fmt(values):
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    return f"{100 * statistics.mean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


def main(argv):
    del argv
    sparsities = [float(s) for s in _SPARSITIES.value]
    seeds = [int(s) for s in _SEEDS.value]
    unknown = [m for m in _METHODS.value if m not in METHODS]
    if unknown:
        raise app.UsageError(f"--methods: unknown {unknown}; choose from {sorted(METHODS)}")
    subset = f"{_SUBSET.value:,} training images" if _SUBSET.value else "all training images"
    budget = (f"reduced budget: one-shot from the same dense model, {_EPOCHS.value} "
              f"fine-tuning epoch(s) on {subset}")
    start = time.time()
    results = []
    for sparsity in sparsities:
        for method in _METHODS.value:
            for seed in seeds:
                workdir = os.path.join(_WORKDIR.value, f"s{sparsity}_{method}_seed{seed}")
                try:
                    metrics = cifar10_task.run(_config(method, sparsity, seed, budget), workdir)
                except ValueError as e:  # MT needing more weights than the budget keeps
                    if "forces" not in str(e):
                        raise
                    print(f"{method:>10} @ {sparsity}: infeasible ({e})", flush=True)
                    results.append({"sparsity": sparsity, "method": method, "seed": seed,
                                    "infeasible": str(e)})
                    continue
                model = runs.load_model(workdir)
                results.append({
                    "sparsity": sparsity, "method": method, "seed": seed,
                    "achieved_sparsity": metrics["achieved_sparsity"],
                    "dense_test_accuracy": metrics["dense_test_accuracy"],
                    "one_shot_test_accuracy": metrics["one_shot_test_accuracy"],
                    "final_test_accuracy": metrics["final_test_accuracy"],
                    "flops_pruned": flops.flops_report(model).pruned_fraction,
                    "layer_sparsity": [r.sparsity for r in report.sparsity_report(model).rows],
                })
                print(f"{method:>10} @ {sparsity}: one-shot "
                      f"{100 * results[-1]['one_shot_test_accuracy']:.2f}% -> fine-tuned "
                      f"{100 * results[-1]['final_test_accuracy']:.2f}%", flush=True)
    with open(os.path.join(_WORKDIR.value, "results.json"), "w") as f:
        json.dump({"budget": budget, "results": results}, f, indent=2)

    middle = sparsities[len(sparsities) // 2]
    plot = None
    if {"global", "uniform"} <= set(_METHODS.value):
        run_dirs = {m: os.path.join(_WORKDIR.value, f"s{middle}_{m}_seed{seeds[0]}")
                    for m in ("global", "uniform")}
        os.makedirs(os.path.join("benchmarks", "results"), exist_ok=True)
        plot = os.path.join("benchmarks", "results", f"layers_global_vs_uniform_{middle}.png")
        report.plot_layer_sparsity(
            prune.strip_pruning(runs.load_model(run_dirs["global"])), plot,
            compare=runs.load_model(run_dirs["uniform"]), labels=("global", "uniform"))

    dense = results[0]["dense_test_accuracy"]
    lines = [
        "## Layer-wise distributions at equal budget (CIFAR-10, one-shot)",
        "",
        f"CIFAR-10 (JPEG copy), {_MODEL.value} from `{_PRETRAINED.value}` (dense test "
        f"accuracy {100 * dense:.2f}%). **{budget}**; SGD lr {_LR.value} cosine, label "
        f"smoothing 0.1, {'mixed_bfloat16' if _BF16.value else 'float32'}; seeds {seeds}. "
        f"MT of global_mt: "
        f"{_MT.value:g} of the weights per layer. Total {time.time() - start:.0f} s on 2 "
        "shared CPU cores.",
        "",
        "Command: `python benchmarks/compare_distributions.py "
        f"--model {_MODEL.value} --pretrained {_PRETRAINED.value} --data_dir <cifar10> "
        f"--sparsities {','.join(_SPARSITIES.value)} --methods {','.join(_METHODS.value)} "
        f"--finetune_epochs {_EPOCHS.value} --max_train_examples {_SUBSET.value} "
        f"--seeds {','.join(_SEEDS.value)} --out BENCHMARKS.md`",
        "",
        "| sparsity | method | top-1 right after pruning (%) | top-1 after fine-tuning (%) "
        "| FLOPs pruned (%) |",
        "|---:|---|---:|---:|---:|",
    ]
    for sparsity in sparsities:
        for method in _METHODS.value:
            rows = [r for r in results if r["sparsity"] == sparsity and r["method"] == method]
            if any("infeasible" in r for r in rows):
                lines.append(f"| {100 * sparsity:g}% | {method} | n/a: MT keeps more weights "
                             "than the budget | n/a | n/a |")
                continue
            lines.append(
                f"| {100 * sparsity:g}% | {method} | "
                f"{_fmt([r['one_shot_test_accuracy'] for r in rows])} | "
                f"{_fmt([r['final_test_accuracy'] for r in rows])} | "
                f"{100 * rows[0]['flops_pruned']:.1f} |")
    if plot:
        lines += ["", f"Per-layer plot (global vs uniform at {100 * middle:g}%): `{plot}`."]
    sections.show_and_append(lines, _OUT.value)


if __name__ == "__main__":
    app.run(main)
