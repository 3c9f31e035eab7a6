"""export_tflite: sparse / quantized TFLite export, LiteRT verification, report, CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tf_globalmp
from tf_globalmp import _compat
from tf_globalmp import export
from tf_globalmp import registry
from tf_globalmp.export import flatbuffer
from tf_globalmp.models import small_cnn

keras = _compat.keras
tf = _compat.tf


def _prune(model, sparsity=0.9):
    wrapped = tf_globalmp.prune_low_magnitude_global(
        model, tf_globalmp.GlobalConstantSparsity(sparsity)
    )
    tf_globalmp.GlobalPruner(wrapped).prune_to(sparsity)
    return wrapped


def _pruned_small_cnn():
    keras.utils.set_random_seed(0)
    return _prune(small_cnn.build())


def _he_normal_kernels(model, seed=0):
    """Kernels ~ N(0, 2 / fan_in), fan-in per output (9 for a 3x3 depthwise)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for weight in registry.prunable_weights(layer):
            shape = tuple(weight.shape)
            depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
            fan_in = int(np.prod(shape[:2] if depthwise else shape[:-1]))
            weight.assign(rng.standard_normal(shape).astype("float32") * np.sqrt(2 / fan_in))


def _unit_output_scale(model, x):
    """Scales each prunable kernel (zeros stay zero) so its layer's output RMS is 1."""
    for layer in model.layers:
        weights = registry.prunable_weights(layer)
        if weights:
            out = keras.Model(model.inputs, layer.output)(x, training=False).numpy()
            rms = float(np.sqrt(np.mean(out**2)))
            for weight in weights:
                weight.assign(weight / rms)


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    """MobileNet-V1 (alpha 0.25, 96x96, the published 1000-class head) pruned
    globally to 90%, no training; exported float32 + sparse, and dynamic-range int8
    + sparse with and without `minify`.

    Keras's Glorot init makes the depthwise kernels so small that one global
    threshold on an *untrained* MobileNet removes every depthwise layer and the last
    pointwise ones, and the outputs become constant (a vacuous comparison). He-normal
    kernels (per true fan-in) keep every layer alive, as in a trained network; after
    pruning each layer is rescaled to unit output RMS so outputs are O(1).
    """
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNet(
        alpha=0.25, input_shape=(96, 96, 3), weights=None, classes=1000,
        classifier_activation=None,
    )
    _he_normal_kernels(model)
    wrapped = _prune(model)
    x = np.random.default_rng(1).uniform(-1, 1, (8, 96, 96, 3)).astype("float32")
    _unit_output_scale(model, x)
    out = tmp_path_factory.mktemp("mobilenet")
    return {
        "wrapped": wrapped,
        "x": x,
        "float32": tf_globalmp.export_tflite(wrapped, str(out / "sparse.tflite"),
                                             compare_dense=True),
        "dynamic": tf_globalmp.export_tflite(
            wrapped, str(out / "dynamic.tflite"), quantize="dynamic", compare_dense=True
        ),
        "dynamic_unminified": tf_globalmp.export_tflite(
            wrapped, str(out / "dynamic_converter.tflite"), quantize="dynamic", minify=False,
            compare_dense=True,
        ),
    }


# ------------------------------------------------------------------ small CNN
def test_small_cnn_float32_round_trip_matches_and_shrinks(tmp_path):
    path = str(tmp_path / "model.tflite")
    report = tf_globalmp.export_tflite(_pruned_small_cnn(), path, compare_dense=True)
    assert os.path.getsize(path) == report.bytes
    assert report.sparsity == pytest.approx(0.9)
    assert report.rtol == 1e-5 and report.max_rel_diff <= 1e-5
    assert report.max_abs_diff > 0 or report.max_rel_diff == 0  # it did compare
    assert report.bytes <= 0.25 * report.dense_bytes
    assert report.sparse_tensors >= 1


def test_small_cnn_dynamic_range_int8_sparse_is_at_most_a_tenth(tmp_path):
    report = tf_globalmp.export_tflite(
        _pruned_small_cnn(), str(tmp_path / "m.tflite"), quantize="dynamic", compare_dense=True
    )
    assert report.bytes <= 0.10 * report.dense_bytes
    assert report.rtol is None and report.max_rel_diff < 0.1  # reported, not asserted


def test_json_report_is_written_beside_the_file_and_valid(tmp_path):
    path = str(tmp_path / "m.tflite")
    report = tf_globalmp.export_tflite(_pruned_small_cnn(), path, compare_dense=True)
    with open(path + ".json") as f:
        data = json.load(f)
    assert data == json.loads(report.to_json())
    assert data["bytes"] == os.path.getsize(path) and data["quantize"] is None
    assert data["ratio"] == pytest.approx(report.bytes / report.dense_bytes)
    table = report.to_table()
    assert "dense float32" in table and "90.00%" in table and "limit 1e-05" in table


def test_stripped_and_wrapped_models_export_the_same_file(tmp_path):
    wrapped = _pruned_small_cnn()
    a = tf_globalmp.export_tflite(wrapped, str(tmp_path / "a.tflite"), verify=False)
    b = tf_globalmp.export_tflite(
        tf_globalmp.strip_pruning(wrapped), str(tmp_path / "b.tflite"), verify=False
    )
    assert a.bytes == b.bytes and a.sparsity == b.sparsity
    assert a.max_abs_diff is None and a.verify_batch == 0
    assert "skipped" in a.to_table()


def test_int8_with_representative_data_reports_the_difference(tmp_path):
    x = np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)).astype("float32")
    report = tf_globalmp.export_tflite(
        _pruned_small_cnn(), str(tmp_path / "m.tflite"), quantize="int8",
        representative_dataset=x, compare_dense=True,
    )
    assert report.quantize == "int8" and report.rtol is None
    assert report.verify_batch == 8 and np.isfinite(report.max_abs_diff)
    assert report.bytes < report.dense_bytes


def test_int8_without_representative_dataset_raises(tmp_path):
    with pytest.raises(ValueError, match="representative_dataset"):
        tf_globalmp.export_tflite(_pruned_small_cnn(), str(tmp_path / "m.tflite"), quantize="int8")
    assert not os.path.exists(tmp_path / "m.tflite")


@pytest.mark.parametrize("quantize", ["int4", "INT8", "float32", ""])
def test_unknown_quantize_mode_raises(tmp_path, quantize):
    with pytest.raises(ValueError, match=f"got {quantize!r}"):
        tf_globalmp.export_tflite(
            _pruned_small_cnn(), str(tmp_path / "m.tflite"), quantize=quantize
        )


def test_float32_mismatch_raises_and_writes_nothing(tmp_path, monkeypatch):
    run = export.verify.run_litert

    def off_by_a_bit(*args):
        outputs, label, failures = run(*args)
        return [o + 1e-3 * np.abs(o).max() for o in outputs], label, failures

    monkeypatch.setattr(export.verify, "run_litert", off_by_a_bit)
    with pytest.raises(export.ExportError, match="relative .* > 1e-05.*nothing was written"):
        tf_globalmp.export_tflite(_pruned_small_cnn(), str(tmp_path / "m.tflite"))
    assert not os.listdir(tmp_path)


def test_unpruned_model_exports_with_a_warning(tmp_path):
    keras.utils.set_random_seed(0)
    report = tf_globalmp.export_tflite(small_cnn.build(), str(tmp_path / "m.tflite"))
    assert report.sparsity == 0 and report.sparse_tensors == 0
    assert any("not pruned" in w for w in report.warnings)


def test_model_the_converter_cannot_handle_raises_export_error(tmp_path):
    class Igamma(keras.layers.Layer):  # no TFLite builtin kernel
        def call(self, x):
            return tf.math.igamma(tf.abs(x) + 1.0, tf.abs(x) + 1.0)

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3)(Igamma()(inputs)))
    with pytest.raises(export.ExportError, match="converter cannot handle") as raised:
        tf_globalmp.export_tflite(model, str(tmp_path / "m.tflite"))
    message = str(raised.value)
    # The converter's reason, once per route tried; not the export mode as a culprit.
    assert "'tf.Igamma' op is neither a custom op nor a flex op" in message
    assert "keras_model: " in message and "with the batch fixed to 1: " in message
    assert "(float32, sparse)" not in message and len(message.splitlines()) == 1


def test_converter_error_reason_keeps_the_error_lines_without_locations():
    message = (
        "Could not translate MLIR to FlatBuffer.<frozen runpy>:198:1: error: 'tf.Conv2D' "
        "op is neither a custom op nor a flex op\n"
        "loc(callsite(fused[...])): error: 'tf.Conv2D' op is neither a custom op nor a "
        "flex op\n\tnote: see current operation\nerror: failed while converting: 'main'"
    )
    assert export.converter_error_reason(message) == (
        "'tf.Conv2D' op is neither a custom op nor a flex op; failed while converting: "
        "'main'")
    assert export.converter_error_reason("\n  something else\nmore") == "something else"


# ------------------------------------------------------------------------ RNNs
def _text_classifier(recurrent, batch_size=None):
    keras.utils.set_random_seed(0)
    tokens = keras.Input((12,), batch_size=batch_size, dtype="int32", name="tokens")
    h = keras.layers.Embedding(50, 8)(tokens)
    h = recurrent(h)
    return keras.Model(tokens, keras.layers.Dense(3, name="logits")(h))


def _builtin_only(path):
    """True if every op of the file is a TFLite builtin (no Flex / custom op)."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(_read(path)), 0)
    return all(code.customCode is None for code in model.operatorCodes)


@pytest.mark.parametrize("recurrent", [
    lambda: keras.layers.LSTM(16),
    lambda: keras.layers.GRU(16),
    lambda: keras.layers.Bidirectional(keras.layers.LSTM(8)),
], ids=["LSTM", "GRU", "Bidirectional-LSTM"])
def test_embedding_rnn_model_exports_with_a_fixed_batch_of_builtin_ops(tmp_path, recurrent):
    """The dynamic-batch graph needs TensorList ops (Flex only, which LiteRT's Python
    interpreter cannot run); with the batch fixed to 1 every op is a builtin."""
    path = str(tmp_path / "m.tflite")
    model = _text_classifier(recurrent())
    report = tf_globalmp.export_tflite(model, path)
    assert report.route == "fixed_batch" and report.input_batch == 1
    assert any("TensorList" in w and "batch fixed to 1" in w for w in report.warnings)
    assert report.verify_batch == 8 and report.max_rel_diff <= 1e-5
    assert report.constant_outputs == () and _builtin_only(path)
    assert "fixed_batch (batch 1)" in report.to_table()


def test_rolled_rnn_layers_are_found_nested_and_unrolled_ones_are_not():
    model = _text_classifier(keras.layers.Bidirectional(keras.layers.GRU(4, name="gru")))
    assert sorted(export.rolled_rnn_layers(model)) == ["backward_gru", "forward_gru"]
    assert export.rolled_rnn_layers(
        _text_classifier(keras.layers.LSTM(4, unroll=True))) == []


def test_dynamic_batch_conversion_failure_falls_back_to_a_fixed_batch(tmp_path, monkeypatch):
    """Without the RNN shortcut the dynamic-batch conversion is tried and fails on
    TensorList ops (the converter's message, not the export mode, in the warning)."""
    monkeypatch.setattr(export.convert, "rolled_rnn_layers", lambda model: [])
    path = str(tmp_path / "m.tflite")
    report = tf_globalmp.export_tflite(_text_classifier(keras.layers.GRU(16)), path)
    assert report.route == "fixed_batch" and report.max_rel_diff <= 1e-5
    (warning,) = [w for w in report.warnings if "batch fixed to 1" in w]
    assert "keras_model: 'tf.TensorListReserve' op requires element_shape to be static" in warning


def test_fused_lstm_state_is_reset_between_verification_batches_and_warned(tmp_path):
    """A converted LSTM keeps its state in variable tensors from one invocation to
    the next: verification resets them, and the report says so."""
    from ai_edge_litert import interpreter as litert

    path = str(tmp_path / "m.tflite")
    report = tf_globalmp.export_tflite(
        _text_classifier(keras.layers.LSTM(16), batch_size=1), path)
    assert report.route == "keras_model" and report.max_rel_diff <= 1e-5
    assert any("reset_all_variables" in w for w in report.warnings)
    assert flatbuffer.count_variable_tensors(_read(path)) > 0
    runner = litert.Interpreter(model_path=path).get_signature_runner()
    x = np.arange(12, dtype="int32")[None]
    first, second = (runner(tokens=x)["logits"] for _ in range(2))
    assert np.abs(first - second).max() > 0  # why the reset is needed


def test_pruned_embedding_gru_model_keeps_its_sparsity_in_the_report(tmp_path):
    wrapped = _prune(_text_classifier(keras.layers.GRU(16)), 0.8)
    report = tf_globalmp.export_tflite(wrapped, str(tmp_path / "m.tflite"))
    assert report.sparsity == pytest.approx(0.8) and report.max_rel_diff <= 1e-5


# ------------------------------------------------ the converter's block encoding
def _dense_on_features(features, units=24):
    """A Dense layer on `features` inputs, its smaller 60% of weights zeroed."""
    keras.utils.set_random_seed(0)
    x = keras.Input((features,))
    model = keras.Model(x, keras.layers.Dense(units)(x))
    kernel = model.layers[1].kernel
    value = kernel.numpy()
    value[np.abs(value) < np.quantile(np.abs(value), 0.6)] = 0
    kernel.assign(value)
    return model


@pytest.mark.parametrize("features, broken", [(3, True), (7, False), (5, False), (4, False)])
def test_broken_block_sparse_tensors_are_those_with_a_partial_block(features, broken):
    converter = tf.lite.TFLiteConverter.from_keras_model(_dense_on_features(features, 24))
    converter.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    found = flatbuffer.broken_block_sparse_tensors(converter.convert())
    assert bool(found) == broken
    if broken:
        assert found[0][1] == [24, features]  # FullyConnected weights: (units, features)


@pytest.mark.parametrize("quantize", [None, "dynamic"])
def test_dense_layer_on_three_features_exports_correct_outputs_without_sparse_blocks(
        tmp_path, quantize):
    """TF 2.21 encodes a (24, 3) FullyConnected weight as 1x4 blocks and drops values:
    the file computed wrong outputs (float32: ExportError; dynamic: written)."""
    report = tf_globalmp.export_tflite(_dense_on_features(3), str(tmp_path / "m.tflite"),
                                       quantize=quantize)
    assert report.sparse_tensors == 0 and report.max_rel_diff < 1e-2
    assert any("block-sparse encoding" in w for w in report.warnings)
    assert not any("sparse-encoded no weight tensor" in w for w in report.warnings)


# ----------------------------------------------------- constant outputs, baseline
def test_collapsed_model_outputs_are_reported_as_constant_with_a_warning(tmp_path, caplog):
    """All-zero kernels (a pruned-to-death model): outputs = bias for every input, so
    equal outputs say nothing about the conversion."""
    keras.utils.set_random_seed(0)
    x = keras.Input((5,))
    model = keras.Model(x, keras.layers.Dense(3, bias_initializer="ones", name="head")(
        keras.layers.Dense(8, activation="relu", name="hidden")(x)))
    model.get_layer("hidden").kernel.assign(tf.zeros((5, 8)))
    with caplog.at_level("WARNING"):
        report = tf_globalmp.export_tflite(model, str(tmp_path / "m.tflite"))
    assert report.constant_outputs == ("head",) and report.max_abs_diff == 0
    assert any("proves nothing" in w for w in report.warnings)
    assert any("proves nothing" in r.getMessage() for r in caplog.records)
    assert "constant outputs head" in report.to_table()
    with open(str(tmp_path / "m.tflite.json")) as f:
        assert json.load(f)["constant_outputs"] == ["head"]


def test_constant_outputs_names_only_outputs_that_do_not_vary():
    varying = np.array([[1.0, 2.0], [1.5, 2.0]])
    constant = np.array([[3.0, -1.0], [3.0, -1.0]])
    almost = constant + np.array([[0.0, 0.0], [0.0, 1e-7]])
    names = ["a", "b", "c", "z"]
    got = export.constant_outputs([varying, constant, almost, np.zeros((2, 2))], names)
    assert got == ("b", "c", "z")
    assert export.constant_outputs([varying[:1]], ["one"]) == ("one",)  # one input
    assert export.constant_outputs([np.array([0.0, 1.0])], ["scalar"]) == ()


def test_dense_baseline_is_converted_only_when_asked(tmp_path, monkeypatch):
    """The baseline is a second conversion (as long as the first): off by default."""
    convert, calls = export.convert.convert_function, []

    def counting(*args):
        calls.append(args[2:4])  # (sparse, quantize)
        return convert(*args)

    monkeypatch.setattr(export.convert, "convert_function", counting)
    wrapped = _pruned_small_cnn()
    default = tf_globalmp.export_tflite(wrapped, str(tmp_path / "a.tflite"), verify=False)
    assert calls == [(True, None)]
    assert default.dense_bytes is None and default.ratio is None and default.gzip_ratio is None
    assert "not converted (compare_dense=False)" in default.to_table()
    calls.clear()
    compared = tf_globalmp.export_tflite(wrapped, str(tmp_path / "b.tflite"), verify=False,
                                         compare_dense=True)
    assert calls == [(True, None), (False, None)]
    assert compared.bytes == default.bytes and compared.ratio < 0.5
    calls.clear()
    dense = tf_globalmp.export_tflite(wrapped, str(tmp_path / "c.tflite"), verify=False,
                                      sparse=False)
    assert calls == [(False, None)] and dense.dense_bytes == dense.converted_bytes


def test_several_inputs_and_outputs_are_matched_by_name(tmp_path):
    a, b = keras.Input((5,), name="a"), keras.Input((3,), name="bee")
    hidden = keras.layers.Dense(16, name="hidden")(keras.layers.Concatenate()([a, b]))
    zeta = keras.layers.Dense(2, name="zeta")(hidden)
    alpha = keras.layers.Dense(1, name="alpha")(hidden)
    model = keras.Model([a, b], [zeta, alpha])
    report = tf_globalmp.export_tflite(_prune(model, 0.5), str(tmp_path / "m.tflite"))
    assert report.max_rel_diff <= 1e-5 and report.prunable_tensors == 3


# ------------------------------------------------------------ MobileNet-V1 0.25
def test_mobilenet_float32_sparse_matches_and_is_at_most_a_quarter(mobilenet):
    report = mobilenet["float32"]
    assert report.sparsity == pytest.approx(0.9)
    assert report.max_rel_diff <= 1e-5
    assert report.bytes <= 0.25 * report.dense_bytes


def test_mobilenet_depthwise_convolutions_are_pruned_exported_and_verified(mobilenet):
    rows = tf_globalmp.sparsity_report(mobilenet["wrapped"]).rows
    depthwise = [r for r in rows if "depthwise_kernel" in r.name]
    assert len(depthwise) == 13 and all(0 < r.sparsity < 1 for r in depthwise)
    report = mobilenet["float32"]
    assert report.prunable_tensors == 28 and report.sparse_tensors >= 13
    assert report.max_rel_diff <= 1e-5


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def test_mobilenet_dynamic_int8_sparse_is_at_most_a_tenth(mobilenet):
    report = mobilenet["dynamic"]
    assert report.minified and report.bytes <= 0.10 * report.dense_bytes
    assert report.rtol is None and report.max_rel_diff < 0.2
    if report.verified_with != "XNNPACK":  # LiteRT 2.3's XNNPACK rejects this file
        assert any("XNNPACK" in w for w in report.warnings)


def test_mobilenet_converter_file_is_larger_by_its_names_and_duplicated_scales(mobilenet):
    """What minify removes, measured on the converter's own file."""
    report, converter = mobilenet["dynamic"], mobilenet["dynamic_unminified"]
    assert converter.bytes == converter.converted_bytes == report.converted_bytes
    quant, names = flatbuffer.metadata_bytes(_read(converter.path))
    small_quant, small_names = flatbuffer.metadata_bytes(_read(report.path))
    assert names > 0 and small_names == 0
    assert 0 < small_quant < quant  # the copy the weights' readers use stays
    assert report.bytes <= converter.bytes - names - (quant - small_quant) + 1024
    assert converter.bytes > 0.10 * converter.dense_bytes  # why minify is on by default


def test_mobilenet_minified_file_computes_exactly_what_the_converter_file_does(mobilenet):
    from ai_edge_litert import interpreter as litert

    outputs = []
    for key in ("dynamic", "dynamic_unminified"):
        runner = litert.Interpreter(
            model_path=mobilenet[key].path,
            experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        ).get_signature_runner()
        (name,) = runner.get_input_details()
        outputs.append(list(runner(**{name: mobilenet["x"]}).values()))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert mobilenet["dynamic"].max_abs_diff == mobilenet["dynamic_unminified"].max_abs_diff


# ------------------------------------------------------------------- pure pieces
def test_converter_options_per_mode():
    opt = tf.lite.Optimize
    assert export.converter_options(True, None) == ([opt.EXPERIMENTAL_SPARSITY], [], None)
    assert export.converter_options(False, None) == ([], [], None)
    assert export.converter_options(True, "dynamic")[0] == [opt.DEFAULT, opt.EXPERIMENTAL_SPARSITY]
    assert export.converter_options(False, "float16")[1] == [tf.float16]
    assert export.converter_options(True, "int8")[2] == [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]


def test_max_diff_is_relative_to_the_largest_reference_output():
    ref = [np.array([[2.0, -4.0]]), np.array([1.0])]
    got = [np.array([[2.0, -4.5]]), np.array([1.25])]
    assert export.max_diff(ref, got) == (0.5, 0.125)
    assert export.max_diff([np.zeros(3)], [np.zeros(3)]) == (0.0, 0.0)
    abs_diff, rel_diff = export.max_diff([np.zeros(3, np.float32)], [np.ones(3, np.float32)])
    assert abs_diff == 1.0 and type(rel_diff) is float  # JSON-serializable
    json.dumps(rel_diff)


def test_verification_batch_from_arrays_callables_or_seeded_noise():
    specs = [("x", (2, 3), np.dtype("float32"))]
    data = np.arange(60, dtype="float64").reshape(10, 2, 3)
    (batch,) = export.verification_batch(specs, data)
    assert batch.shape == (8, 2, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch, data[:8])

    def generator():
        for i in range(3):
            yield [data[i : i + 1]]

    assert export.verification_batch(specs, generator)[0].shape == (3, 2, 3)
    a, b = export.verification_batch(specs, None), export.verification_batch(specs, None)
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="unknown dimension"):
        export.verification_batch([("x", (None, 3), np.dtype("float32"))], None)


# --------------------------------------------------------------------------- CLI
def _cli(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "tf_globalmp.export", *args],
        capture_output=True, text=True, timeout=300,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    _pruned_small_cnn().save(str(out / "pruned.keras"))
    keras.utils.set_random_seed(0)
    small_cnn.build().save(str(out / "dense.keras"))
    return out


def test_cli_exports_a_saved_wrapped_model(saved):
    out = str(saved / "cli.tflite")
    code, stdout, stderr = _cli("--model", str(saved / "pruned.keras"), "--out", out,
                                "--quantize", "dynamic")
    assert code == 0, stderr[-2000:]
    assert "TFLite export:" in stdout and "dynamic + sparse" in stdout
    with open(out + ".json") as f:
        data = json.load(f)
    assert data["quantize"] == "dynamic" and data["bytes"] == os.path.getsize(out)
    # The depthwise kernel of the loaded wrapped model is counted too.
    assert data["prunable_tensors"] == 5 and data["sparsity"] == pytest.approx(0.9)


def test_cli_bad_path_exits_non_zero_with_one_clear_line(saved):
    code, stdout, stderr = _cli("--model", str(saved / "missing.keras"), "--out",
                                str(saved / "x.tflite"))
    assert code != 0
    errors = [l for l in stderr.splitlines() if l.startswith("error:")]
    assert errors == [f"error: no model at {str(saved / 'missing.keras')!r}"]
    assert not os.path.exists(saved / "x.tflite")


def test_cli_unpruned_model_warns_and_exports(saved):
    out = str(saved / "dense.tflite")
    code, stdout, stderr = _cli("--model", str(saved / "dense.keras"), "--out", out,
                                "--no-sparse", "--no-minify")
    assert code == 0, stderr[-2000:]
    assert "warning: model 'small_cnn' is not pruned" in stderr
    assert "minify           off" in stdout
    with open(out + ".json") as f:
        data = json.load(f)
    assert data["sparse"] is False and data["minified"] is False
    assert data["bytes"] == data["converted_bytes"] == data["dense_bytes"]


def test_minify_changes_only_names_and_quantization_read_by_densify_alone(tmp_path):
    from ai_edge_litert import schema_py_generated as schema

    path = str(tmp_path / "m.tflite")
    tf_globalmp.export_tflite(_pruned_small_cnn(), path, quantize="dynamic", minify=False)
    before = schema.ModelT.InitFromPackedBuf(bytearray(_read(path)), 0)
    after = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer.minify(_read(path))), 0)
    assert [b.data.tobytes() if b.data is not None else b"" for b in before.buffers] == [
        b.data.tobytes() if b.data is not None else b"" for b in after.buffers]
    (g0,), (g1,) = before.subgraphs, after.subgraphs
    names = [before.operatorCodes[op.opcodeIndex].builtinCode for op in g0.operators]
    assert [(op.opcodeIndex, list(op.inputs), list(op.outputs)) for op in g0.operators] == [
        (op.opcodeIndex, list(op.inputs), list(op.outputs)) for op in g1.operators]
    assert names.count(schema.BuiltinOperator.DENSIFY) >= 1
    dropped = 0
    for i, (t0, t1) in enumerate(zip(g0.tensors, g1.tensors, strict=True)):
        assert t0.name and t1.name is None
        assert (list(t0.shape), t0.type, t0.buffer) == (list(t1.shape), t1.type, t1.buffer)
        assert (t0.sparsity is None) == (t1.sparsity is None)
        readers = {n for op, n in zip(g0.operators, names) if i in list(op.inputs)}
        if readers == {schema.BuiltinOperator.DENSIFY} and t0.quantization is not None:
            assert t1.quantization is None
            dropped += 1
        elif t0.quantization is not None:
            np.testing.assert_array_equal(t0.quantization.scale, t1.quantization.scale)
    assert dropped >= 1
    assert (list(g1.inputs), list(g1.outputs)) == (list(g0.inputs), list(g0.outputs))
    assert [s.signatureKey for s in after.signatureDefs] == [
        s.signatureKey for s in before.signatureDefs]
