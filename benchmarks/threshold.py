"""Global magnitude threshold cost: ours vs np.partition vs tf.math.top_k.

    python benchmarks/threshold.py --repeats 5 --out BENCHMARKS.md

Weights: the prunable kernels of `ResNet50(weights=None)` and `MobileNet(weights=None)`
(conv + fc kernels; MobileNet's depthwise kernels included), filled with seeded
random normal float32 values. Every method of a model runs in one process,
interleaved round-robin (the start rotates every repeat) so that contention from
other jobs on the machine hits all of them alike; medians are reported.

Peak extra memory (`--memory`): each (model, method) runs again in a fresh
subprocess that builds the inputs, runs the method once (tracing), releases freed
memory to the OS (`malloc_trim`, fixed glibc mmap threshold, oneDNN's pooling CPU
allocator off), resets the peak resident set (`/proc/self/clear_refs` = 5), runs the
method once more and reports `VmHWM - VmRSS` (peak resident bytes above the resident
bytes just before the call).

Exactness (always): kept count == N - round(sparsity * N); smallest kept magnitude
== numpy's k-th largest |w|; masks == a numpy reference (ties at the threshold kept
lowest position first); GlobalPruner's masks == global_magnitude_masks' masks.

First call vs later calls (`--first_call`, on by default; `--first_call_only` for just
this): the first call of a compiled update traces and optimises its graph. Each
(code, model, method) runs in a fresh subprocess that builds the inputs, times the
first call (including tracing), then `--first_call_repeats` later calls; the
processes of all codes and methods run interleaved, `--first_call_runs` times. With
`--before REF` the same is measured for the package as of git ref REF (extracted to
a temporary directory and put first on PYTHONPATH), side by side with the working
tree.

With `--out FILE` the section "Global threshold (core engine)" of FILE and its
rows in FILE's summary table are replaced (created if missing); other sections stay.
With `--first_call_only` only the first-call block (between its own markers, inside
that section) and its summary row are replaced.
"""

import tf_globalmp  # first: selects tf-keras

import ctypes
import gc
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from absl import logging

from tf_globalmp import _compat
from tf_globalmp import controller
from tf_globalmp import masks
from tf_globalmp import prune
from tf_globalmp import registry
from tf_globalmp import schedules
from tf_globalmp import wrapping

import sections  # benchmarks/sections.py, beside this script

_REPEATS = flags.DEFINE_integer("repeats", 5, "Interleaved timed repeats per method.")
_SPARSITY = flags.DEFINE_float("sparsity", 0.9, "Global sparsity (fraction pruned).")
_MODELS = flags.DEFINE_list("models", ["resnet50", "mobilenet"], "Models to benchmark.")
_MEMORY = flags.DEFINE_boolean("memory", True, "Measure peak extra memory per method.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random normal weights.")
_OUT = flags.DEFINE_string("out", None, "Markdown file whose section is (re)written.")
_CHILD = flags.DEFINE_string("memory_child", None, "Internal: 'model:method' to measure.")
_FIRST_CALL = flags.DEFINE_boolean(
    "first_call", True, "Measure the first call (incl. tracing) vs later calls."
)
_FIRST_CALL_ONLY = flags.DEFINE_boolean(
    "first_call_only", False, "Only the first-call table (its block in --out)."
)
_BEFORE = flags.DEFINE_string(
    "before", None, "Git ref whose tf_globalmp the first-call table compares against."
)
_FIRST_RUNS = flags.DEFINE_integer(
    "first_call_runs", 2, "Fresh processes per (code, model, method)."
)
_FIRST_REPEATS = flags.DEFINE_integer(
    "first_call_repeats", 5, "Later calls timed in each first-call process."
)
_FIRST_MODELS = flags.DEFINE_list(
    "first_call_models", ["resnet50"], "Models of the first-call table."
)
_FIRST_CHILD = flags.DEFINE_string(
    "first_call_child", None, "Internal: 'model:method' first-call process."
)

SECTION = "Global threshold (core engine)"
SECTION_SHORT = "Global threshold"
BEGIN = "<!-- benchmarks/threshold.py: begin -->"
END = "<!-- benchmarks/threshold.py: end -->"
FIRST_BEGIN = "<!-- benchmarks/threshold.py first call: begin -->"
FIRST_END = "<!-- benchmarks/threshold.py first call: end -->"
FIRST_ROW = "first mask update incl. tracing vs a later one"

# name -> (constructor, expected prunable count, where the expectation comes from)
MODELS = {
    "resnet50": ("ResNet50", 25_502_912, "all conv kernels + fc kernel"),
    "mobilenet": ("MobileNet", 4_209_088, "the paper's count, depthwise kernels included"),
}

# method id -> label; the order is the table's order.
METHODS = {
    "ours_graph": "ours: `masks._global_fn` (compiled graph only; pre-flattened tensors -> bool masks)",
    "ours_api": "ours: `global_magnitude_masks(tensors, s)` (public API; float masks, finite check)",
    "np_concat": "np.partition incl. concatenation (per-layer arrays -> concat, abs, partition)",
    "np_part": "np.partition excl. concatenation (in-place partition of concatenated abs(w))",
    "np_masks": "np.partition incl. concatenation + masks (abs(w) >= t per layer; ties not exact)",
    "tf_topk": "tf.math.top_k excl. concatenation (concatenated abs(w), k = kept, unsorted)",
    "tfmot": "tfmot's per-layer update: every wrapper's own mask (per-layer top_k, compiled)",
    "update": "whole mask update: `GlobalPruner(wrapped).prune_to(s)`, first prune from dense",
}
BASELINE = "np_concat"
BASELINE_2 = "np_part"
FIRST_CALL_METHODS = ("ours_graph", "ours_api", "update")  # they set Workload.cpu


# ------------------------------------------------------------------ machine info
def _cpu_info():
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "unknown"
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return name


def _proc_status_kib(field):
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1))


# ------------------------------------------------------------------ workload
class Workload:
    """Weights of one model as arrays, tensors, a concatenation and a wrapped model."""

    def __init__(self, model_name, sparsity, seed):
        ctor_name, self.expected, self.expected_note = MODELS[model_name]
        keras = _compat.keras
        keras.utils.set_random_seed(seed)
        model = getattr(keras.applications, ctor_name)(weights=None)
        plain = [w for layer in model.layers for w in registry.prunable_weights(layer)]
        self.wrapped = prune.prune_low_magnitude_global(
            model, schedules.GlobalConstantSparsity(sparsity)
        )
        self.pruning_vars = [
            pv for w in wrapping.collect_wrappers(self.wrapped) for pv in w.pruning_vars
        ]
        weights = [weight for weight, _, _ in self.pruning_vars]
        if sorted(id(w) for w in weights) != sorted(id(w) for w in plain):
            raise RuntimeError("wrapped model prunes other weights than registry says")
        self.name = model_name
        self.n_layers = len(weights)
        self.n_depthwise = sum("depthwise" in w.name for w in weights)
        self.total = sum(int(np.prod(w.shape)) for w in weights)
        self.sparsity = sparsity
        self.n_keep = self.total - int(round(sparsity * self.total))
        self.kth = self.total - self.n_keep  # ascending index of the n_keep-th largest

        rng = np.random.default_rng(seed)
        self.arrays = [rng.standard_normal(w.shape).astype(np.float32) for w in weights]
        for w, a in zip(weights, self.arrays):
            w.assign(a)
        self.tensors = [tf.constant(a) for a in self.arrays]
        self.flat = [tf.reshape(t, [-1]) for t in self.tensors]
        self.concat_abs = np.abs(np.concatenate([a.ravel() for a in self.arrays]))
        self.concat_abs_tf = tf.constant(self.concat_abs)
        self.scratch = np.empty_like(self.concat_abs)
        self.pruner = controller.GlobalPruner(self.wrapped)
        self._n_keep_t = tf.constant(self.n_keep, tf.int32)
        self._no_forced = tf.zeros([self.n_layers], tf.int32)

    # Each method runs once and returns (elapsed seconds, result); setup work a
    # method needs before it (restoring state) is done before the clock starts.
    # (`cpu`: process CPU seconds of the last call of a FIRST_CALL_METHODS method.)
    def ours_graph(self):
        start, cpu = time.perf_counter(), time.process_time()
        out = masks._global_fn(self.flat, self._n_keep_t, self._no_forced)
        # (masks, threshold) now; a list of masks before the first-call work.
        bool_masks = out[0] if isinstance(out, tuple) else out
        bool_masks[-1].numpy()
        self.cpu = time.process_time() - cpu
        return time.perf_counter() - start, bool_masks

    def ours_api(self):
        start, cpu = time.perf_counter(), time.process_time()
        out = masks.global_magnitude_masks(self.tensors, self.sparsity)
        out[-1].numpy()
        self.cpu = time.process_time() - cpu
        return time.perf_counter() - start, out

    def _concat_threshold(self):
        """The n_keep-th largest |w|: concatenate, abs, np.partition (np_concat, np_masks)."""
        c = np.concatenate([a.ravel() for a in self.arrays])
        np.abs(c, out=c)
        c.partition(self.kth)
        return c[self.kth]

    def np_concat(self):
        start = time.perf_counter()
        t = self._concat_threshold()
        return time.perf_counter() - start, t

    def np_part(self):
        np.copyto(self.scratch, self.concat_abs)
        start = time.perf_counter()
        self.scratch.partition(self.kth)
        t = self.scratch[self.kth]
        return time.perf_counter() - start, t

    def np_masks(self):
        start = time.perf_counter()
        t = self._concat_threshold()
        out = [np.abs(a) >= t for a in self.arrays]
        return time.perf_counter() - start, out

    def tf_topk(self):
        start = time.perf_counter()
        values = tf.math.top_k(self.concat_abs_tf, k=self.n_keep, sorted=False).values
        t = tf.reduce_min(values).numpy()
        return time.perf_counter() - start, t

    def tfmot(self):
        """tfmot's update of all wrapped layers (each layer to the same sparsity)."""
        self.reset_model()
        if not hasattr(self, "_tfmot_fn"):
            wrappers = wrapping.collect_wrappers(self.wrapped)

            @tf.function
            def tfmot_update():
                for wrapper in wrappers:
                    for weight, mask, threshold in wrapper.pruning_vars:
                        new_threshold, new_mask = wrapper.pruning_obj._maybe_update_block_mask(
                            weight
                        )
                        threshold.assign(new_threshold)
                        mask.assign(new_mask)
                return [m for w in wrappers for _, m, _ in w.pruning_vars][-1].read_value()

            self._tfmot_fn = tfmot_update
        start = time.perf_counter()
        out = self._tfmot_fn().numpy()
        return time.perf_counter() - start, out

    def reset_model(self):
        """Dense weights (the random arrays) and all-ones masks: a first prune."""
        for (weight, mask, _), a in zip(self.pruning_vars, self.arrays):
            weight.assign(a)
            mask.assign(tf.ones_like(mask))

    def update(self):
        self.reset_model()
        start, cpu = time.perf_counter(), time.process_time()
        result = self.pruner.prune_to(self.sparsity)
        elapsed = time.perf_counter() - start
        self.cpu = time.process_time() - cpu
        if result.unchanged:
            raise RuntimeError("prune_to skipped the update: masks were not reset")
        return elapsed, result

    def run(self, method):
        return getattr(self, method)()


# ------------------------------------------------------------------ exactness
def check_exactness(wl):
    """Dict of exactness facts for one workload (runs each method once more)."""
    kth_value = np.partition(wl.concat_abs, wl.kth)[wl.kth]
    _, ours = wl.ours_api()
    ours_flat = np.concatenate([m.numpy().ravel() for m in ours])
    kept = int(ours_flat.sum())
    smallest_kept = float(wl.concat_abs[ours_flat > 0].min())
    # numpy reference: everything above the threshold, then ties lowest position first.
    reference = wl.concat_abs > kth_value
    ties = np.flatnonzero(wl.concat_abs == kth_value)
    reference[ties[: wl.n_keep - int(reference.sum())]] = True
    _, graph = wl.ours_graph()
    graph_flat = np.concatenate([m.numpy().ravel() for m in graph])
    _, result = wl.update()
    pruner_flat = np.concatenate([m.numpy().ravel() for _, m, _ in wl.pruning_vars])
    _, np_t = wl.np_concat()
    _, topk_t = wl.tf_topk()
    return {
        "kept": kept,
        "kept_ok": kept == wl.n_keep,
        "threshold": float(kth_value),
        "threshold_ok": smallest_kept == float(kth_value),
        "ties_at_threshold": int(ties.size),
        "masks_equal_reference": bool(np.array_equal(ours_flat > 0, reference)),
        "graph_equal_api": bool(np.array_equal(graph_flat, ours_flat > 0)),
        "pruner_kept_ok": result.kept == wl.n_keep,
        "pruner_threshold_ok": result.threshold == float(kth_value),
        "pruner_equal_api": bool(np.array_equal(pruner_flat > 0, ours_flat > 0)),
        "np_concat_ok": float(np_t) == float(kth_value),
        "tf_topk_ok": float(topk_t) == float(kth_value),
    }


# ------------------------------------------------------------------ memory
def _memory_child(spec):
    """In a fresh process: peak resident bytes above baseline for one method call."""
    model_name, method = spec.split(":")
    logging.set_verbosity(logging.WARNING)
    wl = Workload(model_name, _SPARSITY.value, _SEED.value)
    wl.run(method)  # trace / warm caches
    libc = ctypes.CDLL("libc.so.6")
    gc.collect()
    libc.malloc_trim(0)
    if method in ("update", "tfmot"):
        wl.reset_model()
        gc.collect()
        libc.malloc_trim(0)
    if method == "np_part":
        np.copyto(wl.scratch, wl.concat_abs)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current VmRSS
    before = _proc_status_kib("VmRSS")
    if method == "update":
        wl.pruner.prune_to(wl.sparsity)
    elif method == "tfmot":
        wl._tfmot_fn().numpy()
    elif method == "np_part":
        wl.scratch.partition(wl.kth)
    else:
        result = wl.run(method)  # noqa: F841  (kept alive: its output counts)
    peak = _proc_status_kib("VmHWM")
    print(json.dumps({"extra_kib": peak - before, "before_kib": before}))


def measure_memory(model_name, method):
    env = dict(os.environ)
    env["MALLOC_MMAP_THRESHOLD_"] = "131072"  # large buffers are returned on free
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    # oneDNN's CPU allocator pools large buffers (BFC): a second call would reuse the
    # pool and show ~0. The plain allocator mallocs and frees, so the peak is visible.
    env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    cmd = [
        sys.executable, os.path.abspath(__file__), f"--memory_child={model_name}:{method}",
        f"--sparsity={_SPARSITY.value}", f"--seed={_SEED.value}",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        logging.warning("memory child %s:%s failed:\n%s", model_name, method, out.stderr[-2000:])
        return None
    return json.loads(lines[-1])["extra_kib"] * 1024


# ------------------------------------------------------------------ first call
def _first_call_child(spec):
    """In a fresh process: the first call (incl. tracing) and later calls of a method."""
    model_name, method = spec.split(":")
    logging.set_verbosity(logging.WARNING)
    wl = Workload(model_name, _SPARSITY.value, _SEED.value)
    first = wl.run(method)[0]
    first_cpu = wl.cpu
    later, later_cpu = [], []
    for _ in range(_FIRST_REPEATS.value):
        later.append(wl.run(method)[0])
        later_cpu.append(wl.cpu)
    print(json.dumps({
        "first": first, "first_cpu": first_cpu, "later": later, "later_cpu": later_cpu,
        "package": os.path.dirname(tf_globalmp.__file__),
    }))


def _extract_package(ref):
    """tf_globalmp as of git `ref` in a new temporary directory: (directory, commit)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    commit = subprocess.run(
        ["git", "-C", repo, "rev-parse", "--short", ref], capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "-C", repo, "archive", commit, "tf_globalmp"], capture_output=True, check=True
    ).stdout
    directory = tempfile.mkdtemp(prefix="tf_globalmp_before_")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    return directory, commit


def _run_first_call_child(model_name, method, package_root):
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    if package_root:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    cmd = [
        sys.executable, os.path.abspath(__file__), f"--first_call_child={model_name}:{method}",
        f"--sparsity={_SPARSITY.value}", f"--seed={_SEED.value}",
        f"--first_call_repeats={_FIRST_REPEATS.value}",
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not lines:
        logging.warning("first-call child %s:%s (%s) failed:\n%s", model_name, method,
                        package_root or "working tree", out.stderr[-3000:])
        return None
    result = json.loads(lines[-1])
    if package_root and not result["package"].startswith(package_root):
        raise RuntimeError(f"child imported {result['package']}, not the package in {package_root}")
    return result


def measure_first_calls():
    """{(code label, model, method): [child results]}, processes interleaved."""
    codes = {"working tree": None}
    if _BEFORE.value:
        root, commit = _extract_package(_BEFORE.value)
        codes = {f"before ({commit})": root, **codes}
    results = {}
    try:
        for run in range(_FIRST_RUNS.value):
            for model_name in _FIRST_MODELS.value:
                for method in FIRST_CALL_METHODS:
                    for label, root in codes.items():
                        result = _run_first_call_child(model_name, method, root)
                        results.setdefault((label, model_name, method), []).append(result)
                        if result:
                            print(f"first call {label} {model_name}:{method} run {run + 1}: "
                                  f"{result['first']:.2f} s, later "
                                  f"{1000 * statistics.median(result['later']):.0f} ms",
                                  flush=True)
    finally:
        for root in filter(None, codes.values()):
            shutil.rmtree(root, ignore_errors=True)
    return results


def _first_call_stats(runs):
    runs = [r for r in runs if r]
    if not runs:
        return None
    later = [t for r in runs for t in r["later"]]
    later_cpu = [t for r in runs for t in r["later_cpu"]]
    stats = {
        "firsts": [r["first"] for r in runs],
        "first": statistics.median(r["first"] for r in runs),
        "later": statistics.median(later),
        "first_cpu": statistics.median(r["first_cpu"] for r in runs),
        "later_cpu": statistics.median(later_cpu),
    }
    stats["ratio"] = stats["first"] / stats["later"]
    stats["ratio_cpu"] = stats["first_cpu"] / stats["later_cpu"]
    return stats


FIRST_LABELS = {
    "ours_graph": "`masks._global_fn` (compiled selection only)",
    "ours_api": "`global_magnitude_masks(tensors, s)`",
    "update": "whole mask update `GlobalPruner(wrapped).prune_to(s)`",
}


def first_call_lines(results, command):
    """The first-call block (Markdown lines) and its summary row."""
    lines = [
        "### First update (including tracing) vs later updates",
        "",
        f"Command: `{command}`",
        "",
        f"Each row: {_FIRST_RUNS.value} fresh processes (interleaved with the other rows); "
        "each times its first call, which traces and optimises the compiled graph, then "
        f"{_FIRST_REPEATS.value} later calls. Medians over processes (first) and over all "
        "later calls; CPU = process CPU time (user + system, all threads), less "
        "sensitive than wall time to other jobs on the cores. Global sparsity "
        f"{_SPARSITY.value}, seeded random normal weights, no Minimum Threshold.",
        "",
        "| code | model | method | first call s (each process) | later call ms | "
        "first / later | CPU: first s / later ms / ratio |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    summary = {}
    for (label, model_name, method), runs in results.items():
        stats = _first_call_stats(runs)
        title = MODELS[model_name][0]
        if stats is None:
            lines.append(f"| {label} | {title} | {FIRST_LABELS[method]} | failed | | | |")
            continue
        firsts = ", ".join(f"{t:.2f}" for t in stats["firsts"])
        lines.append(
            f"| {label} | {title} | {FIRST_LABELS[method]} | {stats['first']:.2f} ({firsts}) "
            f"| {1000 * stats['later']:.0f} | **{stats['ratio']:.1f}x** | "
            f"{stats['first_cpu']:.2f} / {1000 * stats['later_cpu']:.0f} / {stats['ratio_cpu']:.1f}x |"
        )
        if method == "update":
            summary.setdefault(model_name, []).append((label, stats))
    lines += [""]
    rows = []
    for model_name, entries in summary.items():
        text = "; ".join(
            f"{label}: {s['first']:.2f} s vs {1000 * s['later']:.0f} ms = {s['ratio']:.1f}x "
            f"(CPU time {s['ratio_cpu']:.1f}x)"
            for label, s in entries
        )
        rows.append(
            f"| {FIRST_ROW}, {MODELS[model_name][0]} | {text} (target: <= 10x) | {SECTION_SHORT} |"
        )
    return lines, rows


def write_first_call(path, block_lines, summary_rows):
    """Replaces the first-call block of `path` (or inserts it at the end of the
    Global threshold section, else of the file) and its summary row."""
    text = sections.read(path, sections.NEW_FILE)
    body = "\n".join(block_lines)
    new = sections.replace_marked(text, FIRST_BEGIN, FIRST_END, body)
    if new is None:
        block = "\n".join([FIRST_BEGIN, body, FIRST_END])
        if BEGIN in text and END in text:  # inside this script's section, at its end
            head, tail = text.split(END, 1)
            new = head.rstrip("\n") + "\n\n" + block + "\n\n" + END + tail
        else:
            new = sections.insert_after(text, f"## {SECTION_SHORT}", block)
    new = sections.replace_summary_rows(
        new, lambda row: row.startswith(f"| {FIRST_ROW}"), summary_rows)
    sections.write(path, new.rstrip("\n") + "\n")


# ------------------------------------------------------------------ report
def _fmt_mib(nbytes):
    return "n/a" if nbytes is None else f"{nbytes / 2**20:.0f}"


def model_table(wl, times, first_call, memory, exact):
    base = statistics.median(times[BASELINE])
    base2 = statistics.median(times[BASELINE_2])
    weight_bytes = 4 * wl.total
    count_note = "matches" if wl.total == wl.expected else f"DIFFERS from {wl.expected:,}"
    lines = [
        f"### {MODELS[wl.name][0]}: {wl.total:,} prunable weights in {wl.n_layers} kernels"
        + (f" ({wl.n_depthwise} depthwise)" if wl.n_depthwise else ""),
        "",
        f"Prunable count {count_note} the expected {wl.expected:,} "
        f"({wl.expected_note}). Sparsity {wl.sparsity}: kept {wl.n_keep:,} = "
        f"N - round({wl.sparsity} N). float32 weights = {weight_bytes / 2**20:.0f} MiB.",
        "",
        "| method | median ms | min-max ms | vs np.partition incl. concat | "
        "vs np.partition excl. concat | peak extra MiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for method, label in METHODS.items():
        values = times[method]
        med = statistics.median(values)
        lines.append(
            f"| {label} | {1000 * med:.1f} | {1000 * min(values):.0f}-{1000 * max(values):.0f} "
            f"| {med / base:.2f}x | {med / base2:.2f}x | {_fmt_mib(memory.get(method))} |"
        )
    lines += [
        "",
        "First call incl. tracing (one-off, not in the medians): "
        + ", ".join(f"{m} {1000 * first_call[m]:.0f} ms" for m in ("ours_graph", "ours_api", "update"))
        + ".",
        "",
        "Exactness: "
        f"kept {exact['kept']:,} == {wl.n_keep:,}: {exact['kept_ok']}; "
        f"smallest kept |w| == numpy k-th largest ({exact['threshold']:.9g}): {exact['threshold_ok']}; "
        f"masks == numpy reference ({exact['ties_at_threshold']} value(s) at the threshold): "
        f"{exact['masks_equal_reference']}; graph-only masks == API masks: {exact['graph_equal_api']}; "
        f"GlobalPruner kept/threshold/masks == expected: {exact['pruner_kept_ok']}/"
        f"{exact['pruner_threshold_ok']}/{exact['pruner_equal_api']}; "
        f"np.partition and tf.math.top_k thresholds == numpy: {exact['np_concat_ok']}/{exact['tf_topk_ok']}.",
        "",
    ]
    return lines


def write_out(path, section_lines, summary_rows):
    text = sections.read(path, sections.NEW_FILE)
    body = "\n".join(section_lines)
    new = sections.replace_marked(text, BEGIN, END, body)
    if new is None:
        new = sections.append_text(text, "\n".join([BEGIN, body, END]))
    # Summary table rows whose last cell names this section are ours.
    new = sections.replace_summary_rows(
        new, lambda row: SECTION_SHORT in row.rsplit("|", 2)[-2], summary_rows)
    sections.write(path, new.rstrip("\n") + "\n")


def main(argv):
    del argv
    if _CHILD.value:
        _memory_child(_CHILD.value)
        return
    if _FIRST_CHILD.value:
        _first_call_child(_FIRST_CHILD.value)
        return
    command = "python benchmarks/threshold.py " + " ".join(sys.argv[1:])
    first_block, first_rows = [], []
    if _FIRST_CALL.value or _FIRST_CALL_ONLY.value:
        first_block, first_rows = first_call_lines(measure_first_calls(), command)
        print("\n".join(first_block), flush=True)
    if _FIRST_CALL_ONLY.value:
        if _OUT.value:
            write_first_call(_OUT.value, first_block, first_rows)
            print(f"wrote {_OUT.value}")
        return
    workloads = []
    for name in _MODELS.value:
        wl = Workload(name, _SPARSITY.value, _SEED.value)
        print(
            f"{name}: {wl.total:,} prunable weights in {wl.n_layers} kernels "
            f"({wl.n_depthwise} depthwise); expected {wl.expected:,}: "
            f"{'OK' if wl.total == wl.expected else 'DIFFERENT'}; kept {wl.n_keep:,}",
            flush=True,
        )
        workloads.append(wl)

    logging.set_verbosity(logging.WARNING)  # one INFO line per prune_to otherwise
    first_call = {wl.name: {} for wl in workloads}
    for wl in workloads:
        for method in METHODS:
            first_call[wl.name][method] = wl.run(method)[0]
    times = {wl.name: {m: [] for m in METHODS} for wl in workloads}
    order = list(METHODS)
    for r in range(_REPEATS.value):
        rotated = order[r % len(order):] + order[: r % len(order)]
        for wl in workloads:
            for method in rotated:
                times[wl.name][method].append(wl.run(method)[0])
        print(f"repeat {r + 1}/{_REPEATS.value} done", flush=True)

    exact = {wl.name: check_exactness(wl) for wl in workloads}
    memory = {wl.name: {} for wl in workloads}
    if _MEMORY.value:
        for wl in workloads:
            for method in METHODS:
                memory[wl.name][method] = measure_memory(wl.name, method)
                print(f"memory {wl.name}:{method}: {_fmt_mib(memory[wl.name][method])} MiB", flush=True)

    lines = [
        f"## {SECTION}",
        "",
        f"Machine: {os.cpu_count()} CPUs (nproc), {_cpu_info()}; TensorFlow {tf.__version__}, "
        f"NumPy {np.__version__}, Python {platform.python_version()}; CPU only, shared with "
        "other jobs (hence interleaving).",
        "",
        f"Command: `{command}`",
        "",
        f"Method: seeded random normal float32 weights in the real prunable kernel shapes; "
        f"global sparsity {_SPARSITY.value}. All methods of a model run interleaved in one "
        f"process (round-robin, start rotated each repeat), median of {_REPEATS.value} timed "
        "repeats after one untimed warm-up. Timed: only the method (the whole update's "
        "restore of dense weights and all-ones masks is untimed). "
        + (
            "Peak extra MiB: per method a fresh subprocess builds the inputs, runs the method "
            "once, `malloc_trim`s, resets the peak RSS (`/proc/self/clear_refs` = 5) and runs it "
            "again; reported is `VmHWM - VmRSS` around that call. To make freed buffers "
            "visible the subprocess uses glibc `MALLOC_MMAP_THRESHOLD_=131072` and "
            "`TF_ENABLE_ONEDNN_OPTS=0` (oneDNN's allocator pools large buffers; it does not "
            "change what our ops allocate). It includes the method's output (masks, top-k "
            "values); ResNet/MobileNet build and inputs are in the baseline."
            if _MEMORY.value else "Memory not measured (`--nomemory`)."
        ),
        "",
    ]
    for wl in workloads:
        lines += model_table(wl, times[wl.name], first_call[wl.name], memory[wl.name], exact[wl.name])

    summary_rows = []
    conclusions = []
    for wl in workloads:
        med = {m: statistics.median(v) * 1000 for m, v in times[wl.name].items()}
        ok = all(v for k, v in exact[wl.name].items() if k.endswith("_ok") or k.endswith("_equal_api")
                 or k == "masks_equal_reference")
        title = MODELS[wl.name][0]
        summary_rows.append(
            f"| whole Global MP mask update, {title} ({wl.total / 1e6:.1f}M weights), "
            f"first prune to {_SPARSITY.value} | {med['update']:.0f} ms (target: well under 200 ms) "
            f"| {SECTION_SHORT} |"
        )
        summary_rows.append(
            f"| exact global threshold + masks, {title}, compiled | {med['ours_graph']:.0f} ms: "
            f"{med[BASELINE] / med['ours_graph']:.1f}x faster than np.partition incl. concatenation, "
            f"{med['ours_graph'] / med[BASELINE_2]:.1f}x slower than np.partition alone; exact: {ok} "
            f"| {SECTION_SHORT} |"
        )
        verdict = lambda met: "met" if met else "MISSED"  # noqa: E731
        conclusions.append(
            f"{title}: {'exact' if ok else 'NOT EXACT'}; ours {med['ours_graph']:.0f} ms vs "
            f"np.partition {med[BASELINE]:.0f} ms incl. concatenation "
            f"({verdict(med['ours_graph'] < med[BASELINE])}) / {med[BASELINE_2]:.0f} ms on a "
            f"pre-concatenated array ({verdict(med['ours_graph'] < med[BASELINE_2])}); whole update "
            f"{med['update']:.0f} ms = {med['update'] / 2:.0f}% of the 200 ms budget "
            f"({verdict(med['update'] < 200)})"
        )
    lines += ["Conclusion: " + "; ".join(conclusions) + ".", ""]
    if first_block:
        lines += [FIRST_BEGIN, *first_block, FIRST_END, ""]
        summary_rows += first_rows
    text = "\n".join(lines)
    print(text)
    if _OUT.value:
        write_out(_OUT.value, lines, summary_rows)
        print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    app.run(main)
