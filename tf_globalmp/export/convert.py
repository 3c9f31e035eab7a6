"""Getting a model through the TFLite converter: options, routes (keras_model,
concrete_function, fixed_batch), calibration data, readable converter errors."""

import re

import numpy as np

from tf_globalmp import _compat

import tensorflow as tf  # noqa: E402  (after tf_globalmp selected tf-keras)

from tf_globalmp.export.result import FIXED_BATCH, ExportError

keras = _compat.keras


def converter_options(sparse, quantize, quantization_aware=False):
    """(optimizations, supported_types, supported_ops) for a mode; pure.

    A quantization-aware model (int8) gets no supported_ops: its fake-quant ranges
    make it integer already. (TF 2.21's converter asks such a model for a
    representative_dataset when TFLITE_BUILTINS_INT8 is set -- its metrics wrapper
    checks the options without the graph -- and with one it calibrates the model
    again on top of the trained ranges.)"""
    optimizations = [] if quantize is None else [tf.lite.Optimize.DEFAULT]
    if sparse:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    supported_types = [tf.float16] if quantize == "float16" else []
    int8_ops = quantize == "int8" and not quantization_aware
    supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8] if int8_ops else None
    return optimizations, supported_types, supported_ops


_ERROR_LINE = re.compile(r"\berror: (.+)")


def converter_error_reason(message, limit=300):
    """The converter's own error lines ("error: ..."), without MLIR locations;
    else the first non-empty line."""
    reasons = []
    for line in str(message).splitlines():
        found = _ERROR_LINE.search(line)
        reason = found.group(1).strip() if found else ""
        if reason and reason not in reasons:
            reasons.append(reason)
    if not reasons:
        reasons = [next((l.strip() for l in str(message).splitlines() if l.strip()), "")]
    return "; ".join(reasons[:2])[:limit]


# ---------------------------------------------------------------- model inputs
def as_input_list(sample, specs):
    if isinstance(sample, dict):
        return [np.asarray(sample[name]) for name, _, _ in specs]
    if isinstance(sample, (list, tuple)):
        return [np.asarray(s) for s in sample]
    return [np.asarray(sample)]


def representative_fn(data, specs, batch=1):
    """A TF-converter representative_dataset callable from a callable or arrays
    (arrays: `batch` samples per step, for a file with a fixed batch)."""
    if data is None or callable(data):
        return data
    arrays = as_input_list(data, specs)
    arrays = [a.astype(np.float32) if a.dtype.kind == "f" else a for a in arrays]

    def generate():
        for i in range(0, len(arrays[0]) - batch + 1, batch):
            yield [a[i : i + batch] for a in arrays]

    return generate


def named_outputs(model, outputs):
    """{name: tensor} of a model's outputs: a dict's keys, else `model.output_names`
    (when they fit), else output_0, output_1, ..."""
    if isinstance(outputs, dict):
        return dict(outputs)
    flat = tf.nest.flatten(outputs)
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(flat) or len(set(names)) != len(names):
        names = [f"output_{i}" for i in range(len(flat))]
    return dict(zip(names, flat))


def _traced_call(model, signature):
    """(the model's inference call traced on `signature`, its output names)."""

    @tf.function(input_signature=signature.flat)
    def serve(*args):
        return named_outputs(model, model(signature.pack(args), training=False))

    function = serve.get_concrete_function()
    return function, list(function.structured_outputs)


class _ConversionFailed(Exception):
    """One route did not convert; `reason` is the converter's own error text."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def convert_function(model, function, sparse, quantize, representative,
                     quantization_aware=False):
    """The converter's bytes from the Keras model (`function` None) or a traced call
    (a quantization-aware model: no calibration, `representative` is not used)."""
    if function is None:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    else:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    optimizations, types, ops = converter_options(sparse, quantize, quantization_aware)
    converter.optimizations = optimizations
    if types:
        converter.target_spec.supported_types = types
    if ops:
        converter.target_spec.supported_ops = ops
    if quantize == "int8" and not quantization_aware:
        converter.representative_dataset = representative
    try:
        return converter.convert()
    except Exception as e:  # the converter raises several unrelated types
        raise _ConversionFailed(converter_error_reason(e) or type(e).__name__) from e


def rolled_rnn_layers(model):
    """Names of the RNN layers of `model` (nested too) that run a loop (no `unroll`)."""
    return [layer.name for layer in model._flatten_layers(include_self=False)  # noqa: SLF001
            if isinstance(layer, keras.layers.RNN) and not layer.unroll]


def convert_by_route(model, signature, sparse, quantize, representative_dataset,
                     quantization_aware=False):
    """Converts by the first route that works (module docstring).

    Returns (route, signature of the file, traced function or None, output names,
    converter bytes, [(route, reason)] of the routes not taken or failed before).
    """
    first = "keras_model" if signature.source == "inputs" else "concrete_function"
    attempts = [(first, signature)]
    failed = []
    if signature.batch is None:
        attempts.append(("fixed_batch", signature.with_batch(FIXED_BATCH)))
        rnns = rolled_rnn_layers(model)
        if rnns:  # would fail (TensorList ops need static shapes): save that conversion
            attempts = attempts[1:]
            failed.append((first, f"the loop of RNN layer(s) {rnns} needs TensorList ops "
                                  "with static shapes"))
    for route, sig in attempts:
        try:
            if route == "keras_model":
                function, names = None, list(model.output_names)
            else:
                function, names = _traced_call(model, sig)
            representative = representative_fn(representative_dataset, sig.specs,
                                                sig.batch or 1)
            content = convert_function(model, function, sparse, quantize, representative,
                                       quantization_aware)
            return route, sig, function, names, content, failed
        except _ConversionFailed as e:
            failed.append((route, e.reason))
        except Exception as e:  # tracing the call failed
            first_line = next((l for l in str(e).splitlines() if l.strip()), type(e).__name__)
            failed.append((route, f"tracing the call failed: {first_line[:300]}"))
    tried = "; ".join(
        f"{'with the batch fixed to %d' % FIXED_BATCH if route == 'fixed_batch' else route}"
        f": {reason}" for route, reason in failed)
    raise ExportError(f"the TFLite converter cannot handle model {model.name!r}: {tried}")
