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

With `--out FILE` the section "Global threshold (issue: core engine)" of FILE and its
rows in FILE's summary table are replaced (created if missing); other sections stay.
"""

import tf_globalmp  # noqa: F401  (first: selects tf-keras)

import ctypes
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
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

_REPEATS = flags.DEFINE_integer("repeats", 5, "Interleaved timed repeats per method.")
_SPARSITY = flags.DEFINE_float("sparsity", 0.9, "Global sparsity (fraction pruned).")
_MODELS = flags.DEFINE_list("models", ["resnet50", "mobilenet"], "Models to benchmark.")
_MEMORY = flags.DEFINE_boolean("memory", True, "Measure peak extra memory per method.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random normal weights.")
_OUT = flags.DEFINE_string("out", None, "Markdown file whose section is (re)written.")
_CHILD = flags.DEFINE_string("memory_child", None, "Internal: 'model:method' to measure.")

SECTION = "Global threshold (issue: core engine)"
SECTION_SHORT = "Global threshold"
BEGIN = "<!-- benchmarks/threshold.py: begin -->"
END = "<!-- benchmarks/threshold.py: end -->"

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
            pv for w in prune.collect_wrappers(self.wrapped) for pv in w.pruning_vars
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
    def ours_graph(self):
        start = time.perf_counter()
        out = masks._global_fn(self.flat, self._n_keep_t, self._no_forced)
        out[-1].numpy()
        return time.perf_counter() - start, out

    def ours_api(self):
        start = time.perf_counter()
        out = masks.global_magnitude_masks(self.tensors, self.sparsity)
        out[-1].numpy()
        return time.perf_counter() - start, out

    def np_concat(self):
        start = time.perf_counter()
        c = np.concatenate([a.ravel() for a in self.arrays])
        np.abs(c, out=c)
        c.partition(self.kth)
        t = c[self.kth]
        return time.perf_counter() - start, t

    def np_part(self):
        np.copyto(self.scratch, self.concat_abs)
        start = time.perf_counter()
        self.scratch.partition(self.kth)
        t = self.scratch[self.kth]
        return time.perf_counter() - start, t

    def np_masks(self):
        start = time.perf_counter()
        c = np.concatenate([a.ravel() for a in self.arrays])
        np.abs(c, out=c)
        c.partition(self.kth)
        t = c[self.kth]
        del c
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
            wrappers = prune.collect_wrappers(self.wrapped)

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
        start = time.perf_counter()
        result = self.pruner.prune_to(self.sparsity)
        elapsed = time.perf_counter() - start
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
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    section = "\n".join([BEGIN, *section_lines, END])
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    # Summary table: the first Markdown table of the file; rows whose last cell
    # names this section are ours and are replaced.
    lines = text.split("\n")
    start = next((i for i, l in enumerate(lines) if l.startswith("| result |")), None)
    if start is None:
        first_section = next((i for i, l in enumerate(lines) if l.startswith("## ")), len(lines))
        lines[first_section:first_section] = [
            "| result | value | section |", "|---|---|---|", ""
        ]
        start = first_section
    end = start + 2
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    kept = [l for l in lines[start + 2:end] if SECTION_SHORT not in l.rsplit("|", 2)[-2]]
    lines[start + 2:end] = kept + summary_rows
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip("\n") + "\n")


def main(argv):
    del argv
    if _CHILD.value:
        _memory_child(_CHILD.value)
        return
    command = "python benchmarks/threshold.py " + " ".join(sys.argv[1:])
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
    text = "\n".join(lines)
    print(text)
    if _OUT.value:
        write_out(_OUT.value, lines, summary_rows)
        print(f"wrote {_OUT.value}")


if __name__ == "__main__":
    app.run(main)
