"""Running the written file in LiteRT next to the Keras model (`ExportReport`'s
differences, constant-output detection, fixed-batch files batch by batch)."""

import dataclasses

import numpy as np

from tf_globalmp import _compat


from tf_globalmp.export.convert import as_input_list, named_outputs, representative_fn
from tf_globalmp.export.result import (
    FLOAT32_RTOL, VERIFY_BATCH, ExportError, constant_outputs, max_diff, top1_agreement)

keras = _compat.keras


def verify_count(batch):
    """Inputs to verify: VERIFY_BATCH, rounded up to whole batches of a fixed batch."""
    return VERIFY_BATCH if batch is None else batch * -(-VERIFY_BATCH // batch)


def verification_batch(specs, representative_dataset, batch=VERIFY_BATCH, seed=0):
    """Up to `batch` inputs from the representative data, else generated (seeded)."""
    if representative_dataset is not None:
        parts, count = [], 0
        for sample in representative_fn(representative_dataset, specs)():
            arrays = as_input_list(sample, specs)
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


def _whole_batches(inputs, batch):
    """`inputs` cut to whole batches of a fixed `batch` (None: unchanged)."""
    if batch is None:
        return inputs
    count = len(inputs[0]) // batch * batch
    if count == 0:
        raise ValueError(
            f"representative_dataset has {len(inputs[0])} sample(s), fewer than the "
            f"exported file's fixed batch of {batch}: give at least {batch}, or verify=False"
        )
    return [x[:count] for x in inputs]


# ------------------------------------------------------------------ conversion
def run_litert(content, specs, inputs, output_names, batch=None):
    """Outputs of the LiteRT interpreter (XNNPACK, else builtin kernels) and its name;
    a file with a fixed `batch` is run on the inputs batch by batch, its variables
    (e.g. LSTM state) reset before each batch."""
    from ai_edge_litert import interpreter as litert

    attempts = (
        ("XNNPACK", {}),
        ("builtin kernels", {"experimental_op_resolver_type":
                             litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}),
    )
    step = batch or len(inputs[0])
    errors = []
    for label, kwargs in attempts:
        interpreter = litert.Interpreter(model_content=content, **kwargs)
        runner = interpreter.get_signature_runner()
        signature_inputs = list(runner.get_input_details())
        if sorted(signature_inputs) == sorted(n for n, _, _ in specs):
            names = [n for n, _, _ in specs]
        elif len(signature_inputs) == len(inputs) == 1:
            names = signature_inputs
        else:
            raise ExportError(
                f"cannot match the model inputs {[n for n, _, _ in specs]} to the "
                f"TFLite signature inputs {signature_inputs}"
            )
        results = []
        try:
            for i in range(0, len(inputs[0]), step):
                if i:  # (before the first call, the tensors are not allocated yet)
                    interpreter.reset_all_variables()
                results.append(runner(**{n: x[i : i + step] for n, x in zip(names, inputs)}))
        except RuntimeError as e:
            errors.append(f"{label}: {str(e).splitlines()[0][:200]}")
            continue
        result = {k: np.concatenate([r[k] for r in results]) for k in results[0]}
        if sorted(result) == sorted(output_names):
            return [result[n] for n in output_names], label, errors
        if len(result) == len(output_names) == 1:
            return list(result.values()), label, errors
        raise ExportError(
            f"cannot match the model outputs {output_names} to the TFLite signature "
            f"outputs {sorted(result)}"
        )
    raise ExportError(f"the LiteRT interpreter cannot run the exported model: {errors}")


def tflite_outputs(content, batches, num_threads=1):
    """(The first output of the `.tflite` file `content` on each array of `batches`
    (one input per array, any batch size the file takes) concatenated, the kernels
    that ran it): LiteRT with XNNPACK, else its builtin kernels (XNNPACK cannot
    prepare some sparse int8 FullyConnected weights)."""
    from ai_edge_litert import interpreter as litert

    errors = []
    for label, kwargs in (
            ("XNNPACK", {}),
            ("builtin kernels", {"experimental_op_resolver_type":
                                 litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES})):
        runner = litert.Interpreter(model_content=content, num_threads=num_threads,
                                    **kwargs).get_signature_runner()
        (name,) = list(runner.get_input_details())
        try:
            parts = []
            for x in batches:
                result = runner(**{name: np.asarray(x, np.float32)})
                parts.append(result[sorted(result)[0]])
            return np.concatenate(parts), label
        except RuntimeError as e:
            errors.append(f"{label}: {str(e).splitlines()[0][:200]}")
    raise ExportError(f"the LiteRT interpreter cannot run the file: {errors}")


def _keras_outputs(model, signature, inputs, output_names, batch=None):
    """The model's outputs on `inputs` (batch by batch for a fixed batch), in the
    order of `output_names`."""
    step = batch or len(inputs[0])
    parts = [
        named_outputs(model, model(signature.pack([x[i : i + step] for x in inputs]),
                                    training=False))
        for i in range(0, len(inputs[0]), step)
    ]
    outputs = {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}
    if set(outputs) == set(output_names):
        return [outputs[n] for n in output_names]
    return list(outputs.values())


@dataclasses.dataclass(frozen=True)
class Verification:
    abs_diff: float | None = None
    rel_diff: float | None = None
    verified_with: str | None = None
    batch: int = 0
    constant: tuple = ()
    warnings: tuple = ()
    top1_agreement: float | None = None


def verify_file(model, signature, content, output_names, representative_dataset, rtol):
    """Runs `content` in LiteRT next to `model` (float32 compute already set up);
    ExportError beyond `rtol`. Returns a `Verification`."""
    inputs = _whole_batches(
        verification_batch(signature.specs, representative_dataset,
                           verify_count(signature.batch)),
        signature.batch)
    batch = len(inputs[0])
    reference = _keras_outputs(model, signature, inputs, output_names, signature.batch)
    lite, verified_with, failures = run_litert(
        content, signature.specs, inputs, output_names, signature.batch)
    warnings = []
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
    constant = constant_outputs(reference, output_names)
    if constant:
        warnings.append(
            f"the Keras output(s) {list(constant)} are the same for all {batch} "
            "verification inputs (a collapsed or untrained model?): comparing "
            "them with the file proves nothing about the conversion"
        )
    return Verification(abs_diff, rel_diff, verified_with, batch, constant,
                         tuple(warnings), top1_agreement(reference, lite))


def rtol_for(verify, quantize):
    if isinstance(verify, bool):
        return FLOAT32_RTOL if verify and quantize is None else None
    if isinstance(verify, (int, float)) and verify > 0:
        return float(verify) if quantize is None else None
    raise ValueError(
        f"verify must be True, False or a positive relative tolerance, got {verify!r}"
    )
