"""export/precision.py: mixed-precision models export as their float32 network."""

import numpy as np
import pytest

import tf_globalmp
from tf_globalmp import _compat
from tf_globalmp.export import precision

keras = _compat.keras
mixed_precision = keras.mixed_precision


def _mixed_cnn(policy):
    """A tiny CNN built under `policy` (the global policy is restored), each kernel
    with its smaller half zeroed (no wrappers: this tests export alone); the final
    Dense in float32 as mixed-precision guides recommend."""
    previous = mixed_precision.global_policy()
    mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        x = keras.Input((8, 8, 3))
        h = keras.layers.Conv2D(8, 3, activation="relu")(x)
        h = keras.layers.DepthwiseConv2D(3, activation="relu")(h)
        h = keras.layers.GlobalAveragePooling2D()(h)
        out = keras.layers.Dense(4, dtype="float32")(keras.layers.Dense(16, "relu")(h))
        model = keras.Model(x, out)
    finally:
        mixed_precision.set_global_policy(previous)
    for layer in model.layers:
        if layer.weights:
            kernel = layer.weights[0]
            value = kernel.numpy()
            value[np.abs(value) < np.median(np.abs(value))] = 0
            kernel.assign(value)
    return model


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_float32_compute_switches_mixed_layers_and_restores_them(policy):
    model = _mixed_cnn(policy)
    assert precision.mixed_policies(model) == [policy]
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32")
    with precision.float32_compute(model) as switched:
        assert switched == [policy] and precision.mixed_policies(model) == []
        assert model.layers[1].compute_dtype == "float32"
        inside = model(x).numpy()
    assert model.layers[1].dtype_policy.name == policy
    assert model.layers[-1].dtype_policy.name == "float32"  # never mixed: untouched
    assert np.abs(inside - model(x).numpy()).max() > 0  # it did compute differently


def test_float32_model_has_no_mixed_policy():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert precision.mixed_policies(model) == []
    with precision.float32_compute(model) as switched:
        assert switched == []


@pytest.mark.parametrize("policy, quantize", [
    ("mixed_bfloat16", None), ("mixed_float16", None), ("mixed_bfloat16", "dynamic")])
def test_mixed_precision_model_exports_as_float32_and_matches(tmp_path, policy, quantize):
    """The bf16 ops used to reach the converter: "'tf.Conv2D' op is neither a custom
    op nor a flex op"."""
    from ai_edge_litert import schema_py_generated as schema

    model = _mixed_cnn(policy)
    path = str(tmp_path / "m.tflite")
    report = tf_globalmp.export_tflite(model, path, quantize=quantize)
    assert report.mixed_precision == policy and report.sparsity == pytest.approx(0.5)
    assert f"{policy} run as float32" in report.to_table()
    if quantize is None:
        assert report.max_rel_diff <= 1e-5  # against the float32 network
    with open(path, "rb") as f:
        graph = schema.ModelT.InitFromPackedBuf(bytearray(f.read()), 0).subgraphs[0]
    half = {schema.TensorType.BFLOAT16, schema.TensorType.FLOAT16}
    assert not [t for t in graph.tensors if t.type in half]
    assert precision.mixed_policies(model) == [policy]  # restored after the export
