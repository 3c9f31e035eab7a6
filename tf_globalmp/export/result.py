"""What an export wrote and measured: `ExportReport`, its limits and size/difference helpers."""

import dataclasses
import gzip
import json

import numpy as np





QUANTIZE_MODES = (None, "float16", "dynamic", "int8")


# Float32 exports must match Keras within this relative difference (see `_diff`).
FLOAT32_RTOL = 1e-5


# Inputs of the verification batch.
VERIFY_BATCH = 8


# The converter leaves a weight tensor dense below this fraction of zeros.
CONVERTER_MIN_SPARSITY = 0.3


# The batch of the "fixed_batch" route (a dynamic-batch model with a rolled RNN, or
# whose dynamic-batch graph does not convert).
FIXED_BATCH = 1


class ExportError(RuntimeError):
    """The converter could not convert the model, or its outputs do not match."""


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """Sizes, sparsity and verification of one exported `.tflite` file.

    `max_rel_diff` is `max_abs_diff` divided by the largest |output| of the Keras
    model on the verification batch. `rtol` is the limit that was asserted (float32
    only) or None when the difference is only reported (quantized modes) or not
    measured (`verify=False`).

    `dense_bytes` / `dense_gzip_bytes` (and `ratio`, `gzip_ratio`) are None unless
    the dense float32 baseline was converted (`compare_dense=True`, or free when the
    export itself is dense float32). `route` is how the model reached the converter
    (module docstring) and `input_batch` the batch the file takes (None: any).
    `constant_outputs` names the outputs that did not change across the
    verification inputs: comparing them proves nothing about the conversion.
    `mixed_precision` names the mixed policies exported as float32.

    `file_weights` / `file_nonzero_weights` count the entries of the Conv /
    DepthwiseConv / FullyConnected / TransposeConv weight tensors as the file stores
    them (int8 after quantization, BatchNorm folded in; a sparse-encoded tensor's
    dropped entries are zeros); `sparsity` and `nonzero_weights` count the Keras
    model's prunable (for a quantization-aware model: quantized) weights.
    `top1_agreement` is the fraction of verification inputs whose arg max of the
    first 2-D output (classifier scores) is the same in the file and in Keras.
    """

    path: str
    quantize: str | None
    sparse: bool
    minified: bool
    bytes: int
    converted_bytes: int  # the converter's file, before `minify`
    gzip_bytes: int
    dense_bytes: int | None
    dense_gzip_bytes: int | None
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
    route: str = "keras_model"
    input_batch: int | None = None
    constant_outputs: tuple = ()
    mixed_precision: str | None = None
    file_weights: int | None = None
    file_nonzero_weights: int | None = None
    top1_agreement: float | None = None
    quantization_aware: bool = False

    @property
    def file_sparsity(self):
        """Fraction of zeros among the weights stored in the file (None if none)."""
        if not self.file_weights:
            return None
        return 1.0 - self.file_nonzero_weights / self.file_weights

    @property
    def ratio(self):
        """File bytes / dense float32 file bytes (None without the baseline)."""
        return None if self.dense_bytes is None else self.bytes / self.dense_bytes

    @property
    def gzip_ratio(self):
        """Gzipped file bytes / gzipped dense float32 file bytes (None without it)."""
        if self.dense_gzip_bytes is None:
            return None
        return self.gzip_bytes / self.dense_gzip_bytes

    @property
    def mode(self):
        kind = "float32" if self.quantize is None else self.quantize
        if self.quantization_aware:
            kind += " (quantization-aware)"
        return (f"{kind}{' + sparse' if self.sparse else ''}"
                f"{', minified' if self.minified else ''}")

    def to_dict(self):
        data = dataclasses.asdict(self)
        data["warnings"] = list(self.warnings)
        data["constant_outputs"] = list(self.constant_outputs)
        data["ratio"] = self.ratio
        data["gzip_ratio"] = self.gzip_ratio
        data["file_sparsity"] = self.file_sparsity
        return data

    def to_json(self, indent=2):
        return json.dumps(self.to_dict(), indent=indent)

    def to_table(self):
        lines = [
            f"TFLite export: {self.path} ({self.mode})",
            f"{'':<16} {'bytes':>12} {'gzip bytes':>12} {'vs dense':>9} {'gzip vs dense':>14}",
        ]
        if self.dense_bytes is None:
            lines += [
                f"{'this file':<16} {self.bytes:>12,} {self.gzip_bytes:>12,}",
                f"{'dense float32':<16} not converted (compare_dense=False)",
            ]
        else:
            lines += [
                f"{'this file':<16} {self.bytes:>12,} {self.gzip_bytes:>12,} "
                f"{self.ratio:>8.3f}x {self.gzip_ratio:>13.3f}x",
                f"{'dense float32':<16} {self.dense_bytes:>12,} "
                f"{self.dense_gzip_bytes:>12,} {1:>8.3f}x {1:>13.3f}x",
            ]
        batch = "any batch" if self.input_batch is None else f"batch {self.input_batch}"
        lines += [
            f"converted from   {self.route} ({batch})"
            + (f", {self.mixed_precision} run as float32" if self.mixed_precision else ""),
            f"minify           {self.converted_bytes:,} converter bytes -> {self.bytes:,}"
            if self.minified else "minify           off (the converter's file as is)",
            f"global sparsity  {100 * self.sparsity:.2f}% ({self.nonzero_weights:,} of "
            f"{self.prunable_weights:,} prunable weights nonzero); {self.sparse_tensors} "
            f"weight tensor(s) sparse-encoded, {self.prunable_tensors} prunable",
        ]
        if self.file_sparsity is not None:
            lines.append(f"file weights     {100 * self.file_sparsity:.2f}% zero "
                         f"({self.file_nonzero_weights:,} of {self.file_weights:,} stored "
                         "conv/dense weights nonzero)")
        if self.max_abs_diff is None:
            lines.append("verification     skipped")
        else:
            limit = f"limit {self.rtol:g}" if self.rtol is not None else "reported only"
            batches = (f"batch of {self.verify_batch}"
                       if self.input_batch in (None, self.verify_batch) else
                       f"{self.verify_batch} inputs in batches of {self.input_batch}")
            lines.append(
                f"max |keras - litert| {self.max_abs_diff:.3g} ({self.max_rel_diff:.3g} "
                f"relative, {limit}; {self.verified_with}, {batches})"
            )
            if self.top1_agreement is not None:
                lines.append(f"top-1 agreement  {100 * self.top1_agreement:.1f}% of the "
                             f"{self.verify_batch} verification inputs")
            if self.constant_outputs:
                lines.append(f"constant outputs {', '.join(self.constant_outputs)} (the "
                             "comparison proves nothing for them)")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def __str__(self):
        return self.to_table()


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


def top1_agreement(reference, candidate):
    """Fraction of rows whose arg max agrees, over the first output that is 2-D with
    at least two columns (classifier scores); None without one."""
    for r, c in zip(reference, candidate):
        r, c = np.asarray(r), np.asarray(c)
        if r.ndim == 2 and r.shape[1] > 1 and len(r):
            return float(np.mean(np.argmax(r, axis=1) == np.argmax(c, axis=1)))
    return None


def constant_outputs(outputs, names, rtol=FLOAT32_RTOL):
    """Names of the outputs that are the same for every input of the batch (within
    `rtol` of their largest magnitude; one input never shows a change): comparing
    such an output cannot tell a correct conversion from any constant."""
    constant = []
    for name, out in zip(names, outputs):
        out = np.asarray(out, np.float64)
        if out.size:
            out = out.reshape(len(out), -1) if out.ndim else out.reshape(1, 1)
            spread = float(np.max(np.abs(out - out[:1])))
            scale = float(np.max(np.abs(out)))
        else:
            spread = scale = 0.0
        if spread <= rtol * scale:
            constant.append(name)
    return tuple(constant)
