"""Strip, re-mask, convert to TFLite (sparse / quantized), verify, report sizes.

`export_tflite(model, path)` is the one call: it strips the pruning wrappers (which
re-applies the final masks, so pruned weights are exactly zero), asks the TFLite
converter for its sparse weight encoding (`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`),
optionally quantizes, runs the file in the LiteRT interpreter next to the Keras
model, and returns an `ExportReport` (also written as JSON beside the file).

What the converter does with sparse weights (TF 2.21, `dense_to_sparse_pass.cc`):
only constant rank-2/4 weights of Conv2D, DepthwiseConv2D, TransposeConv and
FullyConnected are encoded, and only if at least 30% of a tensor is zero. A
randomly (unstructured) sparse tensor is stored compressed (CSR values + uint8/16
indices) and expanded back to dense by a `Densify` op when the model is prepared, so
the *file* shrinks while inference runs dense kernels (every sparse tensor of a
Global MP model gets a Densify op); only FullyConnected weights with a 1x4 (float) or
1x16 (int8) block pattern skip it and keep a sparse kernel at run time.

With `minify` (the default) the converter's file is rewritten without tensor
names and without the quantization parameters it duplicates on sparse constants
(`tf_globalmp.export.flatbuffer.minify`); the verified file is the written one.

Command line: ``python -m tf_globalmp.export --help`` (`__main__.py`).
"""

import dataclasses
import gzip
import json
import os

from absl import logging
import numpy as np

from tf_globalmp import _compat
from tf_globalmp import prune
from tf_globalmp import report
from tf_globalmp.export import flatbuffer

import tensorflow as tf  # noqa: E402  (after tf_globalmp selected tf-keras)

keras = _compat.keras

QUANTIZE_MODES = (None, "float16", "dynamic", "int8")
# Float32 exports must match Keras within this relative difference (see `_diff`).
FLOAT32_RTOL = 1e-5
# Inputs of the verification batch.
VERIFY_BATCH = 8
# The converter leaves a weight tensor dense below this fraction of zeros.
CONVERTER_MIN_SPARSITY = 0.3


class ExportError(RuntimeError):
    """The converter could not convert the model, or its outputs do not match."""


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """Sizes, sparsity and verification of one exported `.tflite` file.

    `max_rel_diff` is `max_abs_diff` divided by the largest |output| of the Keras
    model on the verification batch. `rtol` is the limit that was asserted (float32
    only) or None when the difference is only reported (quantized modes) or not
    measured (`verify=False`).
    """

    path: str
    quantize: str | None
    sparse: bool
    minified: bool
    bytes: int
    converted_bytes: int  # the converter's file, before `minify`
    gzip_bytes: int
    dense_bytes: int
    dense_gzip_bytes: int
    sparsity: float
    prunable_weights: int
    nonzero_weights: int
    prunable_tensors: int
    sparse_tensors: int
    max_abs_diff: float | None = None
    max_rel_diff: float | None = None
    rtol: float | None = None
    verified_with: str | None = None
    verify_batch: int = 0
    warnings: tuple = ()

    @property
    def ratio(self):
        """File bytes / dense float32 file bytes."""
        return self.bytes / self.dense_bytes

    @property
    def gzip_ratio(self):
        """Gzipped file bytes / gzipped dense float32 file bytes."""
        return self.gzip_bytes / self.dense_gzip_bytes

    @property
    def mode(self):
        kind = "float32" if self.quantize is None else self.quantize
        return (f"{kind}{' + sparse' if self.sparse else ''}"
                f"{', minified' if self.minified else ''}")

    def to_dict(self):
        data = dataclasses.asdict(self)
        data["warnings"] = list(self.warnings)
        data["ratio"] = self.ratio
        data["gzip_ratio"] = self.gzip_ratio
        return data

    def to_json(self, indent=2):
        return json.dumps(self.to_dict(), indent=indent)

    def to_table(self):
        lines = [
            f"TFLite export: {self.path} ({self.mode})",
            f"{'':<16} {'bytes':>12} {'gzip bytes':>12} {'vs dense':>9} {'gzip vs dense':>14}",
            f"{'this file':<16} {self.bytes:>12,} {self.gzip_bytes:>12,} "
            f"{self.ratio:>8.3f}x {self.gzip_ratio:>13.3f}x",
            f"{'dense float32':<16} {self.dense_bytes:>12,} {self.dense_gzip_bytes:>12,} "
            f"{1:>8.3f}x {1:>13.3f}x",
            f"minify           {self.converted_bytes:,} converter bytes -> {self.bytes:,}"
            if self.minified else "minify           off (the converter's file as is)",
            f"global sparsity  {100 * self.sparsity:.2f}% ({self.nonzero_weights:,} of "
            f"{self.prunable_weights:,} prunable weights nonzero); {self.sparse_tensors} "
            f"weight tensor(s) sparse-encoded, {self.prunable_tensors} prunable",
        ]
        if self.max_abs_diff is None:
            lines.append("verification     skipped")
        else:
            limit = f"limit {self.rtol:g}" if self.rtol is not None else "reported only"
            lines.append(
                f"max |keras - litert| {self.max_abs_diff:.3g} ({self.max_rel_diff:.3g} "
                f"relative, {limit}; {self.verified_with}, batch of {self.verify_batch})"
            )
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def __str__(self):
        return self.to_table()


# ------------------------------------------------------------------ pure pieces
def validate_quantize(quantize, representative_dataset):
    """Raises ValueError for an unknown mode or int8 without representative data."""
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"quantize must be one of None, 'float16', 'dynamic', 'int8', got {quantize!r}"
        )
    if quantize == "int8" and representative_dataset is None:
        raise ValueError(
            "quantize='int8' (full integer) needs representative_dataset: a callable "
            "yielding lists of input arrays (as for tf.lite.TFLiteConverter), or an "
            "array of input samples (one array per model input)"
        )


def converter_options(sparse, quantize):
    """(optimizations, supported_types, supported_ops) for a mode; pure."""
    optimizations = [] if quantize is None else [tf.lite.Optimize.DEFAULT]
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    supported_types = [tf.float16] if quantize == "float16" else []
    supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] if quantize == "int8" else None
    return optimizations, supported_types, supported_ops


def gzip_size(content):
    """Bytes of `content` gzipped at level 9 (deterministic: mtime 0)."""
    return len(gzip.compress(content, compresslevel=9, mtime=0))


def max_diff(reference, candidate):
    """(max abs diff, max abs diff / max |reference|) over lists of arrays."""
    abs_diff = max(
        float(np.max(np.abs(np.asarray(r, np.float64) - np.asarray(c, np.float64))))
        if np.size(r) else 0.0
        for r, c in zip(reference, candidate)
    )
    scale = max(float(np.max(np.abs(r))) if np.size(r) else 0.0 for r in reference)
    # float(): with an all-zero reference, NumPy 2 would return a np.float32 (not JSON).
    return abs_diff, float(abs_diff / max(scale, float(np.finfo(np.float32).tiny)))


# ---------------------------------------------------------------- model inputs
def _input_specs(model):
    """[(name, shape without batch, dtype)] of the model's inputs."""
    names = list(getattr(model, "input_names", None) or [])
    inputs = model.inputs or []
    if not inputs:
        raise ValueError(
            f"model {model.name!r} has no defined inputs: call it on a batch or build "
            "it with an Input before exporting"
        )
    if len(names) != len(inputs):
        names = [t.name.split(":")[0] for t in inputs]
    return [
        (name, tuple(t.shape[1:]), np.dtype(t.dtype.as_numpy_dtype))
        for name, t in zip(names, inputs)
    ]


def _as_input_list(sample, specs):
    if isinstance(sample, dict):
        return [np.asarray(sample[name]) for name, _, _ in specs]
    if isinstance(sample, (list, tuple)):
        return [np.asarray(s) for s in sample]
    return [np.asarray(sample)]


def representative_fn(data, specs):
    """A TF-converter representative_dataset callable from a callable or arrays."""
    if data is None or callable(data):
        return data
    arrays = _as_input_list(data, specs)
    arrays = [a.astype(np.float32) if a.dtype.kind == "f" else a for a in arrays]

    def generate():
        for i in range(len(arrays[0])):
            yield [a[i : i + 1] for a in arrays]

    return generate


def verification_batch(specs, representative_dataset, batch=VERIFY_BATCH, seed=0):
    """Up to `batch` inputs from the representative data, else generated (seeded)."""
    if representative_dataset is not None:
        parts, count = [], 0
        for sample in representative_fn(representative_dataset, specs)():
            arrays = _as_input_list(sample, specs)
            parts.append(arrays)
            count += len(arrays[0])
            if count >= batch:
                break
        if parts:
            return [
                np.concatenate([p[i] for p in parts])[:batch].astype(dtype)
                for i, (_, _, dtype) in enumerate(specs)
            ]
    rng = np.random.default_rng(seed)
    out = []
    for name, shape, dtype in specs:
        if any(d is None for d in shape):
            raise ValueError(
                f"input {name!r} has an unknown dimension {shape}: pass "
                "representative_dataset so verification has real inputs, or verify=False"
            )
        if dtype.kind == "f":
            out.append(rng.standard_normal((batch,) + shape).astype(dtype))
        else:
            out.append(rng.integers(0, 2, (batch,) + shape).astype(dtype))
    return out


# ------------------------------------------------------------------ conversion
def _convert(model, sparse, quantize, representative):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    optimizations, types, ops = converter_options(sparse, quantize)
    converter.optimizations = optimizations
    if types:
        converter.target_spec.supported_types = types
    if ops:
        converter.target_spec.supported_ops = ops
    if quantize == "int8":
        converter.representative_dataset = representative
    try:
        return converter.convert()
    except Exception as e:  # the converter raises several unrelated types
        first = next((l for l in str(e).splitlines() if l.strip()), type(e).__name__)
        mode = "float32" if quantize is None else quantize
        raise ExportError(
            f"the TFLite converter cannot handle model {model.name!r} ({mode}"
            f"{', sparse' if sparse else ''}): {first[:300]}"
        ) from e


def _run_litert(content, specs, inputs, output_names):
    """Outputs of the LiteRT interpreter (XNNPACK, else builtin kernels) and its name."""
    from ai_edge_litert import interpreter as litert

    attempts = (
        ("XNNPACK", {}),
        ("builtin kernels", {"experimental_op_resolver_type":
                             litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}),
    )
    errors = []
    for label, kwargs in attempts:
        runner = litert.Interpreter(model_content=content, **kwargs).get_signature_runner()
        signature_inputs = list(runner.get_input_details())
        if sorted(signature_inputs) == sorted(n for n, _, _ in specs):
            feed = {name: x for (name, _, _), x in zip(specs, inputs)}
        elif len(signature_inputs) == len(inputs) == 1:
            feed = {signature_inputs[0]: inputs[0]}
        else:
            raise ExportError(
                f"cannot match the model inputs {[n for n, _, _ in specs]} to the "
                f"TFLite signature inputs {signature_inputs}"
            )
        try:
            result = runner(**feed)
        except RuntimeError as e:
            errors.append(f"{label}: {str(e).splitlines()[0][:200]}")
            continue
        if sorted(result) == sorted(output_names):
            return [result[n] for n in output_names], label, errors
        if len(result) == len(output_names) == 1:
            return list(result.values()), label, errors
        raise ExportError(
            f"cannot match the model outputs {output_names} to the TFLite signature "
            f"outputs {sorted(result)}"
        )
    raise ExportError(f"the LiteRT interpreter cannot run the exported model: {errors}")


def _keras_outputs(model, inputs, output_names):
    outputs = model(inputs if len(inputs) > 1 else inputs[0], training=False)
    if isinstance(outputs, dict):
        outputs = [outputs[n] for n in output_names] if set(outputs) == set(output_names) \
            else list(outputs.values())
    elif not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [np.asarray(o) for o in outputs]


def _rtol(verify, quantize):
    if isinstance(verify, bool):
        return FLOAT32_RTOL if verify and quantize is None else None
    if isinstance(verify, (int, float)) and verify > 0:
        return float(verify) if quantize is None else None
    raise ValueError(
        f"verify must be True, False or a positive relative tolerance, got {verify!r}"
    )


def export_tflite(
    model, path, *, sparse=True, quantize=None, representative_dataset=None, minify=True,
    verify=True,
):
    """Writes `model` as a `.tflite` file and returns its `ExportReport`.

    Args:
      model: a tf-keras model, wrapped for pruning or already stripped. It is
        stripped here (`tf_globalmp.strip_pruning`), which re-applies the final
        masks, so pruned weights are exactly zero in the file.
      path: the `.tflite` file to write; the report goes to `path + ".json"`.
      sparse: ask the converter for its sparse weight encoding
        (`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`; with `DEFAULT` when quantizing).
      quantize: None (float32), "float16" (float16 weights), "dynamic" (int8
        weights, float activations) or "int8" (full integer ops; inputs and
        outputs stay float32; needs `representative_dataset`).
      representative_dataset: a callable yielding lists of input arrays (the TF
        converter's convention) or an array (a list/tuple/dict of arrays for
        several inputs) of samples. Used for int8 calibration and as the
        verification batch (its first 8 samples); without it the batch is drawn
        from a standard normal with a fixed seed.
      minify: drop tensor names and the quantization parameters the converter
        writes twice for sparse weights (`flatbuffer.minify`); weights, ops and
        signatures are unchanged, and the minified file is the one verified.
      verify: run the file in the LiteRT interpreter and compare with the Keras
        model. Float32 exports must agree within 1e-5 relative to the largest
        output magnitude (a float sets another limit), else `ExportError` and no
        file is written; quantized exports only report the difference.

    Returns:
      `ExportReport` (path, bytes, gzip bytes, the dense float32 export's bytes and
      gzip bytes, global sparsity, sparse-encoded tensors, max abs/rel difference).
    """
    _compat.check_tf_keras_model(model)
    validate_quantize(quantize, representative_dataset)
    rtol = _rtol(verify, quantize)
    stripped = prune.strip_pruning(model)
    specs = _input_specs(stripped)
    # Counted on the given model: a wrapped one reports weight * mask (what was just
    # written into the stripped layers) and knows every pruned kernel, including a
    # DepthwiseConv2D loaded under prune_scope, whose stripped layer keeps tfmot's
    # empty get_prunable_weights after the scope exits.
    weights = report.sparsity_report(model)
    warnings = []
    if weights.total.nonzero == weights.total.weights:
        warnings.append(
            f"model {model.name!r} is not pruned (no prunable weight is zero): the "
            "sparse encoding cannot make it smaller"
        )

    content = _convert(stripped, sparse, quantize, representative_fn(representative_dataset, specs))
    # The baseline: the converter's dense float32 file, as users get it without us.
    dense = content if not sparse and quantize is None else _convert(stripped, False, None, None)
    converted_bytes = len(content)
    if minify:
        content = flatbuffer.minify(content)
    sparse_tensors = flatbuffer.count_sparse_tensors(content)
    if sparse and sparse_tensors == 0 and weights.total.nonzero < weights.total.weights:
        warnings.append(
            "the converter sparse-encoded no weight tensor (it needs at least "
            f"{CONVERTER_MIN_SPARSITY:.0%} zeros in a Conv/Depthwise/Dense kernel)"
        )

    abs_diff = rel_diff = verified_with = None
    batch = 0
    if verify is not False:
        inputs = verification_batch(specs, representative_dataset)
        batch = len(inputs[0])
        output_names = list(stripped.output_names)
        reference = _keras_outputs(stripped, inputs, output_names)
        lite, verified_with, failures = _run_litert(content, specs, inputs, output_names)
        if failures:
            warnings.append(
                f"XNNPACK could not run this file ({failures[0]}); verified with the "
                "builtin LiteRT kernels instead"
            )
        abs_diff, rel_diff = max_diff(reference, lite)
        if rtol is not None and not rel_diff <= rtol:
            raise ExportError(
                f"the TFLite model's outputs differ from the Keras model's by "
                f"{abs_diff:.3g} (relative {rel_diff:.3g} > {rtol:g}) on a batch of "
                f"{batch}; nothing was written. Pass verify=<larger tolerance> if this "
                "network is numerically sensitive, or verify=False to skip the check"
            )

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:
        f.write(content)
    result = ExportReport(
        path=str(path),
        quantize=quantize,
        sparse=bool(sparse),
        minified=bool(minify),
        bytes=len(content),
        converted_bytes=converted_bytes,
        gzip_bytes=gzip_size(content),
        dense_bytes=len(dense),
        dense_gzip_bytes=gzip_size(dense),
        sparsity=weights.total.sparsity,
        prunable_weights=weights.total.weights,
        nonzero_weights=weights.total.nonzero,
        prunable_tensors=len(weights.rows),
        sparse_tensors=sparse_tensors,
        max_abs_diff=abs_diff,
        max_rel_diff=rel_diff,
        rtol=rtol,
        verified_with=verified_with,
        verify_batch=batch,
        warnings=tuple(warnings),
    )
    with open(f"{path}.json", "w") as f:
        f.write(result.to_json())
    for warning in warnings:
        logging.warning("export_tflite: %s", warning)
    logging.info(
        "Exported %s (%s): %d bytes, %.3fx the dense float32 file", path, result.mode,
        result.bytes, result.ratio,
    )
    return result


# ------------------------------------------------------------------------- CLI
def load_model(path):
    """Loads a tf-keras model (wrapped or not) from a SavedModel dir, .keras or .h5.

    A run directory (``saved_models/<run>/``) holding ``model.keras`` also works.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model at {path!r}")
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "saved_model.pb")):
        candidates = [os.path.join(path, n) for n in ("model.keras", "model.h5", "model")]
        found = [c for c in candidates if os.path.exists(c)]
        if not found:
            raise FileNotFoundError(
                f"{path!r} is a directory without saved_model.pb, model.keras or model.h5"
            )
        path = found[0]
    from tf_globalmp import models  # registers the package's custom layers

    models.register_custom_layers()
    with prune.prune_scope():
        try:
            return keras.models.load_model(path, compile=False)
        except Exception as e:
            first = next((l for l in str(e).splitlines() if l.strip()), type(e).__name__)
            raise ValueError(f"cannot load a tf-keras model from {path!r}: {first[:300]}") from e
