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

How the model reaches the converter (`ExportReport.route`):
- "keras_model": `TFLiteConverter.from_keras_model`, the shapes of its `Input`s;
- "concrete_function": the model's call traced with its inputs (`inputs.py`: an
  `input_signature=`, or what a subclassed model recorded when first called);
- "fixed_batch": the call traced with a batch of `FIXED_BATCH`, for a model with
  a dynamic batch and a rolled RNN layer (LSTM/GRU/SimpleRNN without `unroll`,
  also inside Bidirectional: its loop's TensorList ops become builtins only with
  static shapes, and LiteRT's Python interpreter has no Flex ops to run them as
  SELECT_TF_OPS), or when the dynamic-batch graph does not convert. LSTMs become
  the builtin UNIDIRECTIONAL_SEQUENCE_LSTM (its state is kept in variable tensors
  between invocations: the report warns), other loops builtin WHILE ops. The file
  then takes exactly that batch.
A mixed-precision model (`mixed_bfloat16`, `mixed_float16`) is converted and
verified as its float32 network (`precision.py`).

A quantization-aware model (tfmot `QuantizeWrapper`s, e.g. from
`tf_globalmp.sparsity_preserving_qat`) is converted with `quantize="int8"` only and
without calibration: its fake-quant ranges give every int8 scale (the converter gets
no `TFLITE_BUILTINS_INT8` op set, see `convert.converter_options`). The report then
counts its quantized kernels (kernel * sparsity mask), and for every export the
weights the file stores (`file_sparsity`) and the top-1 agreement with Keras.

Command line: ``python -m tf_globalmp.export --help`` (`__main__.py`).
"""

import os

from absl import logging

from tf_globalmp import _compat
from tf_globalmp import prune
from tf_globalmp import qat
from tf_globalmp import report
from tf_globalmp.export import flatbuffer
from tf_globalmp.export import inputs as inputs_lib
from tf_globalmp.export import precision
from tf_globalmp.export import convert
from tf_globalmp.export import verify as verify_lib
from tf_globalmp.export.convert import (  # noqa: F401  (the package's public names)
    converter_error_reason, converter_options, representative_fn, rolled_rnn_layers)
from tf_globalmp.export.result import (  # noqa: F401
    CONVERTER_MIN_SPARSITY, FIXED_BATCH, FLOAT32_RTOL, QUANTIZE_MODES, VERIFY_BATCH,
    ExportError, ExportReport, constant_outputs, gzip_size, max_diff)
from tf_globalmp.export.verify import (  # noqa: F401
    tflite_outputs, verification_batch, verify_count)

# ------------------------------------------------------------------ pure pieces
def validate_quantize(quantize, representative_dataset, quantization_aware=False):
    """Raises ValueError for an unknown mode, int8 without representative data (a
    post-training quantization), or a quantization-aware model not exported as int8."""
    if quantize not in QUANTIZE_MODES:
        raise ValueError(
            f"quantize must be one of None, 'float16', 'dynamic', 'int8', got {quantize!r}"
        )
    if quantization_aware:
        if quantize != "int8":
            raise ValueError(
                "a quantization-aware model (tf_globalmp.sparsity_preserving_qat) is "
                f"exported with quantize='int8', got quantize={quantize!r}")
        return
    if quantize == "int8" and representative_dataset is None:
        raise ValueError(
            "quantize='int8' (full integer) needs representative_dataset: a callable "
            "yielding lists of input arrays (as for tf.lite.TFLiteConverter), or an "
            "array of input samples (one array per model input)"
        )


def export_tflite(
    model, path, *, sparse=True, quantize=None, representative_dataset=None, minify=True,
    verify=True, compare_dense=False, input_signature=None,
):
    """Writes `model` as a `.tflite` file and returns its `ExportReport`.

    Args:
      model: a tf-keras model, wrapped for pruning or already stripped. It is
        stripped here (`tf_globalmp.strip_pruning`), which re-applies the final
        masks, so pruned weights are exactly zero in the file. A quantization-aware
        model (`tf_globalmp.sparsity_preserving_qat`, or any tfmot QAT model) is
        exported as it is, with `quantize="int8"`: the converter takes the int8
        ranges its fake-quant ops learned and folds BatchNorm into the int8
        kernels. Functional and Sequential models, and subclassed models that have
        been called on data (their recorded input shapes, any batch), need no input
        description. A mixed-precision model is exported (and verified) as its
        float32 network.
      path: the `.tflite` file to write; the report goes to `path + ".json"`.
      sparse: ask the converter for its sparse weight encoding
        (`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`; with `DEFAULT` when quantizing).
      quantize: None (float32), "float16" (float16 weights), "dynamic" (int8
        weights, float activations) or "int8" (full integer ops; inputs and
        outputs stay float32; needs `representative_dataset`, except for a
        quantization-aware model).
      representative_dataset: a callable yielding lists of input arrays (the TF
        converter's convention) or an array (a list/tuple/dict of arrays for
        several inputs) of samples. Used for int8 calibration (post-training) and
        as the verification batch (its first 8 samples; pass it for a
        quantization-aware model too, so the top-1 agreement is measured on real
        inputs); without it the batch is drawn from a standard normal with a fixed
        seed.
      minify: drop tensor names and the quantization parameters the converter
        writes twice for sparse weights (`flatbuffer.minify`); weights, ops and
        signatures are unchanged, and the minified file is the one verified.
      verify: run the file in the LiteRT interpreter and compare with the Keras
        model. Float32 exports must agree within 1e-5 relative to the largest
        output magnitude (a float sets another limit), else `ExportError` and no
        file is written; quantized exports only report the difference. A file
        with a fixed batch is run batch by batch. Outputs that are the same for
        every verification input are named in `constant_outputs` with a warning
        (the comparison proves nothing for them).
      compare_dense: also convert the dense float32 model, for the report's
        `dense_bytes` and ratios. Off by default: it is a second conversion (as
        long as the first; minutes on large networks). A dense float32 export
        is its own baseline at no cost.
      input_signature: the model's inputs as a `tf.TensorSpec` (a list of them for
        several inputs, or a dict for a model called on a dict), overriding the
        shapes the model declares or recorded; a fixed first dimension fixes the
        batch of the file.

    Returns:
      `ExportReport` (path, bytes, gzip bytes, the dense float32 export's bytes and
      gzip bytes when converted, global sparsity of the Keras weights and of the
      weights stored in the file, sparse-encoded tensors, max abs/rel difference
      and top-1 agreement, route, constant outputs).
    """
    _compat.check_tf_keras_model(model)
    quantization_aware = qat.is_qat_model(model)
    validate_quantize(quantize, representative_dataset, quantization_aware)
    rtol = verify_lib.rtol_for(verify, quantize)
    # Read before stripping: the clone of a Sequential that inferred its inputs from
    # a first batch declares that batch's size as a fixed batch.
    signature = inputs_lib.model_signature(model, input_signature)
    if quantization_aware:  # its quantized kernels (kernel * sparsity mask)
        stripped, weights = model, qat.sparsity_report(model)
    else:
        stripped = prune.strip_pruning(model)
        # Counted on the given model: a wrapped one reports weight * mask (what was
        # just written into the stripped layers) and knows every pruned kernel,
        # including a DepthwiseConv2D loaded under prune_scope, whose stripped layer
        # keeps tfmot's empty get_prunable_weights after the scope exits.
        weights = report.sparsity_report(model)
    warnings = []
    if weights.total.nonzero == weights.total.weights:
        warnings.append(
            f"model {model.name!r} is not pruned (no prunable weight is zero): the "
            "sparse encoding cannot make it smaller"
        )

    with precision.float32_compute(stripped) as mixed:
        if mixed:
            logging.info("export_tflite: model %r computes in %s; exporting its float32 "
                         "network", model.name, ", ".join(mixed))
        route, signature, function, output_names, content, failed = convert.convert_by_route(
            stripped, signature, sparse, quantize, representative_dataset, quantization_aware)
        if failed:
            warnings.append(
                f"no dynamic-batch file ({failed[0][0]}: {failed[0][1][:200]}); converted "
                f"with the batch fixed to {signature.batch} instead: the file takes "
                f"batches of exactly {signature.batch}"
            )
        broken = flatbuffer.broken_block_sparse_tensors(content) if sparse else []
        if broken:
            content = convert.convert_function(stripped, function, False, quantize,
                               representative_fn(representative_dataset, signature.specs,
                                                 signature.batch or 1), quantization_aware)
            warnings.append(
                f"the converter's 1x4 block-sparse encoding of {broken[:3]} (a blocked "
                "dimension not a multiple of 4) loses weights and computes wrong "
                "outputs: exported without the sparse encoding"
            )
        # The baseline: the converter's dense float32 file, as users get it without us.
        if not sparse and quantize is None:
            dense = content
        elif compare_dense:
            dense = convert.convert_function(stripped, function, False, None, None)
        else:
            dense = None
        converted_bytes = len(content)
        if minify:
            content = flatbuffer.minify(content)
        sparse_tensors = flatbuffer.count_sparse_tensors(content)
        stored = flatbuffer.weight_tensors(content)
        unquantized = [t.shape for t in stored if t.dtype != "int8"]
        if quantization_aware and unquantized:
            warnings.append(
                f"{len(unquantized)} weight tensor(s) {unquantized[:3]} stayed float in "
                "the quantization-aware file (their layers had no fake-quant ranges)")
        if flatbuffer.count_variable_tensors(content):
            warnings.append(
                "the file keeps state between invocations (variable tensors, e.g. the "
                "state of a fused LSTM): call Interpreter.reset_all_variables() before "
                "each invocation to get the Keras model's outputs"
            )
        if (sparse and not broken and sparse_tensors == 0
                and weights.total.nonzero < weights.total.weights):
            warnings.append(
                "the converter sparse-encoded no weight tensor (it needs at least "
                f"{CONVERTER_MIN_SPARSITY:.0%} zeros in a Conv/Depthwise/Dense kernel)"
            )

        checked = verify_lib.Verification()
        if verify is not False:
            checked = verify_lib.verify_file(stripped, signature, content, output_names,
                              representative_dataset, rtol)
            warnings.extend(checked.warnings)

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
        dense_bytes=None if dense is None else len(dense),
        dense_gzip_bytes=None if dense is None else gzip_size(dense),
        sparsity=weights.total.sparsity,
        prunable_weights=weights.total.weights,
        nonzero_weights=weights.total.nonzero,
        prunable_tensors=len(weights.rows),
        sparse_tensors=sparse_tensors,
        max_abs_diff=checked.abs_diff,
        max_rel_diff=checked.rel_diff,
        rtol=rtol,
        verified_with=checked.verified_with,
        verify_batch=checked.batch,
        warnings=tuple(warnings),
        file_weights=sum(t.size for t in stored),
        file_nonzero_weights=sum(t.nonzero for t in stored),
        top1_agreement=checked.top1_agreement,
        quantization_aware=quantization_aware,
        route=route,
        input_batch=signature.batch,
        constant_outputs=checked.constant,
        mixed_precision=", ".join(mixed) or None,
    )
    with open(f"{path}.json", "w") as f:
        f.write(result.to_json())
    for warning in warnings:
        logging.warning("export_tflite: %s", warning)
    if result.ratio is None:
        logging.info("Exported %s (%s, %s): %d bytes", path, result.mode, route,
                     result.bytes)
    else:
        logging.info("Exported %s (%s, %s): %d bytes, %.3fx the dense float32 file", path,
                     result.mode, route, result.bytes, result.ratio)
    return result

