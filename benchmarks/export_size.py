"""TFLite file size and LiteRT latency: dense float32 vs sparse float32 vs int8 + sparse.

    python benchmarks/export_size.py --repeats 15 --out BENCHMARKS.md

For each model and global sparsity, `tf_globalmp.export_tflite` writes the sparse
float32 file and the dynamic-range int8 + sparse file (and measures the dense float32
file of the same pruned model). All files are then timed in the LiteRT interpreter
(1 thread, batch 1) round-robin in one process, medians reported, once with the
default XNNPACK delegate and once with the builtin kernels.

Weights are not trained: kernels are He-normal per true fan-in (Keras's Glorot init
of MobileNet makes the depthwise kernels tiny, so a global threshold on an untrained
model would delete whole layers), pruned by one global threshold, then each layer is
rescaled to unit output RMS (zeros stay zero) so the float32 check is meaningful.
File sizes depend on the number and layout of the nonzeros, latency on the shapes.
"""

import tf_globalmp  # noqa: F401  (selects tf-keras first)

import os
import platform
import time

from absl import app
from absl import flags
import numpy as np

from tf_globalmp import _compat
from tf_globalmp import controller
from tf_globalmp import export
from tf_globalmp.export import flatbuffer
from tf_globalmp import prune
from tf_globalmp import registry
from tf_globalmp import schedules
from tf_globalmp.models import resnet_cifar

import latency  # benchmarks/latency.py, beside this script
import sections  # benchmarks/sections.py, beside this script

keras = _compat.keras

_MODELS = flags.DEFINE_list("models", ["mobilenet_v1", "mobilenet_v1_025", "resnet20",
                                       "resnet32"],
                            "mobilenet_v1 (alpha 1.0, 224), mobilenet_v1_025 (alpha 0.25, "
                            "96), mobilenet_v1_025_10 (the same, 10 classes), resnet20, "
                            "resnet32 (CIFAR).")
_SPARSITIES = flags.DEFINE_list("sparsities", ["0.8", "0.9", "0.95", "0.98"],
                                "Global sparsities.")
_REPEATS = flags.DEFINE_integer("repeats", 15, "Timed invocations per file (interleaved).")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/tf_globalmp_export_size", "Where files go.")
_OUT = flags.DEFINE_string("out", None, "Append the Markdown section to this file.")

def _mobilenet_v1(alpha, size, classes):
    return lambda: keras.applications.MobileNet(
        alpha=alpha, input_shape=(size, size, 3), weights=None, classes=classes,
        classifier_activation=None)


_BUILDERS = {
    "mobilenet_v1": _mobilenet_v1(1.0, 224, 1000),
    "mobilenet_v1_025": _mobilenet_v1(0.25, 96, 1000),
    "mobilenet_v1_025_10": _mobilenet_v1(0.25, 96, 10),
    "resnet20": lambda: resnet_cifar.resnet(20),
    "resnet32": lambda: resnet_cifar.resnet(32),
}
_TITLES = {
    "mobilenet_v1": "MobileNet-V1 (alpha 1.0, 224x224, 1000 classes)",
    "mobilenet_v1_025": "MobileNet-V1 (alpha 0.25, 96x96, 1000 classes)",
    "mobilenet_v1_025_10": "MobileNet-V1 (alpha 0.25, 96x96, 10 classes)",
    "resnet20": "ResNet-20 CIFAR (option A shortcuts)",
    "resnet32": "ResNet-32 CIFAR (option A shortcuts)",
}


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _pruned_model(name, sparsity, seed=0):
    """He-normal kernels, one global threshold, unit output RMS per layer."""
    keras.utils.set_random_seed(seed)
    model = _BUILDERS[name]()
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for weight in registry.prunable_weights(layer):
            shape = tuple(weight.shape)
            depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
            fan_in = int(np.prod(shape[:2] if depthwise else shape[:-1]))
            weight.assign(rng.standard_normal(shape).astype("float32") * np.sqrt(2 / fan_in))
    wrapped = prune.prune_low_magnitude_global(model, schedules.GlobalConstantSparsity(sparsity))
    controller.GlobalPruner(wrapped).prune_to(sparsity)
    x = rng.uniform(-1, 1, (2,) + tuple(model.input_shape[1:])).astype("float32")
    for layer in model.layers:
        weights = registry.prunable_weights(layer)
        if weights:
            out = keras.Model(model.inputs, layer.output)(x, training=False).numpy()
            rms = float(np.sqrt(np.mean(out**2))) or 1.0
            for weight in weights:
                weight.assign(weight / rms)
    return wrapped


def _metadata_of(path):
    with open(path, "rb") as f:
        return flatbuffer.metadata_bytes(f.read())


def _latencies(paths, repeats):
    """{(path, builtin): median ms (None: the interpreter rejects the file, e.g. XNNPACK
    and int8 weights behind Densify)}, all runners interleaved round-robin."""
    return latency.interleaved({(path, builtin): latency.runner(path, builtin)
                                for path in paths for builtin in (False, True)}, repeats)


def _ms(latencies, path, builtin):
    value = latencies.get((path, builtin))
    return "n/a" if value is None else f"{value:.1f}"


def _model_section(name, sparsities, repeats):
    rows, paths = [], []
    workdir = os.path.join(_WORKDIR.value, name)
    for sparsity in sparsities:
        wrapped = _pruned_model(name, sparsity)
        base = os.path.join(workdir, f"s{round(1000 * sparsity)}")
        dense = export.export_tflite(wrapped, f"{base}_dense.tflite", sparse=False,
                                      minify=False)  # the baseline: as converted
        sparse = export.export_tflite(wrapped, f"{base}_sparse.tflite")
        dynamic = export.export_tflite(wrapped, f"{base}_dynamic_sparse.tflite",
                                       quantize="dynamic")
        rows.append((sparsity, dense, sparse, dynamic))
        paths += [dense.path, sparse.path, dynamic.path]
        keras.backend.clear_session()
    latencies = _latencies(paths, repeats)
    lines = [
        f"### {_TITLES[name]}",
        "",
        f"{rows[0][1].prunable_weights:,} prunable weights in "
        f"{rows[0][1].prunable_tensors} kernels.",
        "",
        "| sparsity | file | bytes | vs dense | converter bytes (vs dense) | gzip bytes "
        "| gzip vs dense gzip | quant params + names (bytes) | sparse tensors "
        "| max rel diff | ms XNNPACK | ms builtin |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for sparsity, dense, sparse, dynamic in rows:
        for label, r in (("dense float32", dense), ("sparse float32", sparse),
                         ("int8 (dynamic) + sparse", dynamic)):
            quant, names = _metadata_of(r.path)
            lines.append(
                f"| {100 * sparsity:g}% | {label} | {r.bytes:,} | {r.bytes / dense.bytes:.3f}x "
                f"| {r.converted_bytes:,} ({r.converted_bytes / dense.bytes:.3f}x) "
                f"| {r.gzip_bytes:,} | {r.gzip_bytes / dense.gzip_bytes:.3f}x "
                f"| {quant:,} + {names:,} | {r.sparse_tensors} | {r.max_rel_diff:.1e} "
                f"| {_ms(latencies, r.path, False)} | {_ms(latencies, r.path, True)} |"
            )
    return lines, rows


def main(argv):
    del argv
    import tensorflow as tf

    sparsities = [float(s) for s in _SPARSITIES.value]
    start = time.time()
    sections, summary = [], []
    for name in _MODELS.value:
        lines, rows = _model_section(name, sparsities, _REPEATS.value)
        sections += lines + [""]
        for sparsity, dense, sparse, dynamic in rows:
            if sparsity == 0.9:
                summary.append((name, dense, sparse, dynamic))
        print("\n".join(lines), flush=True)
    text = [
        "## TFLite export size and latency",
        "",
        f"Machine: {os.cpu_count()} CPU cores, {_cpu_model()}; TensorFlow {tf.__version__}, "
        f"ai-edge-litert {_litert_version()}. LiteRT interpreter, 1 thread, batch 1, "
        f"median of {_REPEATS.value} interleaved invocations per file (all files of a "
        f"model timed round-robin in one run). Total run {time.time() - start:.0f} s.",
        "",
        "Command: `python benchmarks/export_size.py --models "
        f"{','.join(_MODELS.value)} --sparsities {','.join(_SPARSITIES.value)} "
        f"--repeats {_REPEATS.value} --out BENCHMARKS.md`",
        "",
        "Models are untrained (He-normal kernels, one global threshold, each layer "
        "rescaled to unit output RMS; see the script): sizes depend on how many weights "
        "are nonzero and where, latency on the shapes. \"dense float32\" is the pruned "
        "model converted without sparse encoding (zeros stored); \"vs dense\" divides by "
        "it. Sparse files are minified (the default: no tensor names, no duplicated "
        "quantization parameters on sparse constants); \"converter bytes\" is the "
        "converter's own file. int8 is dynamic-range quantization (int8 weights, float "
        "activations). "
        "\"max rel diff\" is max |Keras - LiteRT| / max |Keras output| on 8 generated "
        "inputs (asserted <= 1e-5 for float32).",
        "",
        "**Latency: x86 XNNPACK does not use sparse kernels, so latency gains are "
        "expected only on ARM.** More precisely, the TF 2.21 converter stores an "
        "unstructured-sparse Conv/DepthwiseConv/FullyConnected weight compressed and "
        "inserts a `DENSIFY` op that restores the dense tensor when the interpreter is "
        "prepared, so every runtime then runs dense kernels; the sparse files save "
        "storage and download size, not compute. LiteRT 2.3's XNNPACK delegate refuses "
        "int8 weights that come out of `DENSIFY` (\"failed to delegate CONV_2D / "
        "FULLY_CONNECTED node\"), so int8 + sparse files run on the builtin kernels "
        "only (\"n/a\" under XNNPACK).",
        "",
    ] + sections
    if _OUT.value:
        sections.append(_OUT.value, "\n".join(text) + "\n")
    print("\n".join(text[:8]))


def _litert_version():
    try:
        from importlib import metadata

        return metadata.version("ai-edge-litert")
    except Exception:  # noqa: BLE001
        return "unknown"


if __name__ == "__main__":
    app.run(main)
