"""export/inputs.py: what the exported file takes, from Input layers, the inputs a
model recorded when it was called, or `input_signature=`; exports that use them."""

import numpy as np
import pytest

import tf_globalmp
from tf_globalmp import _compat
from tf_globalmp import export
from tf_globalmp.export import inputs

keras = _compat.keras
tf = _compat.tf


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(32, activation="tanh")
        self.head = keras.layers.Dense(3)

    def call(self, x):
        return self.head(self.hidden(x))


class _DictInputs(keras.Model):
    def __init__(self):
        super().__init__()
        self.head = keras.layers.Dense(2)

    def call(self, features):
        return {"score": self.head(tf.concat([features["a"], features["bee"]], -1))}


def _called_subclassed():
    keras.utils.set_random_seed(0)
    model = _Subclassed()
    model(np.zeros((2, 5), "float32"))
    return model


def _pruned(model, sparsity=0.5):
    wrapped = tf_globalmp.prune_low_magnitude_global(
        model, tf_globalmp.GlobalConstantSparsity(sparsity))
    tf_globalmp.GlobalPruner(wrapped).prune_to(sparsity)
    return wrapped


# ------------------------------------------------------------------ signatures
def test_input_layers_give_their_declared_shape_and_fixed_batch():
    model = keras.Sequential([keras.Input((4,), batch_size=1, name="x"), keras.layers.Dense(2)])
    signature = inputs.model_signature(model)
    assert signature.source == "inputs" and signature.batch == 1
    assert signature.specs == [("x", (4,), np.dtype("float32"))]


def test_sequential_built_by_a_call_has_any_batch_not_the_first_batch_size():
    model = keras.Sequential([keras.layers.Dense(2)])
    model(np.zeros((2, 5), "float32"))
    assert tuple(model.inputs[0].shape) == (2, 5)  # what tf-keras records
    signature = inputs.model_signature(model)
    assert signature.source == "recorded" and signature.batch is None
    assert signature.specs[0][1:] == ((5,), np.dtype("float32"))


def test_subclassed_model_called_on_a_dict_records_named_inputs():
    model = _DictInputs()
    model({"a": np.zeros((1, 2), "float32"), "bee": np.zeros((1, 3), "float32")})
    signature = inputs.model_signature(model)
    assert signature.source == "recorded" and signature.batch is None
    assert sorted(n for n, _, _ in signature.specs) == ["a", "bee"]
    packed = signature.pack([np.zeros((1, s[0]), "float32") for _, s, _ in signature.specs])
    assert sorted(packed) == ["a", "bee"]


def test_never_called_subclassed_model_error_names_input_signature():
    with pytest.raises(ValueError, match="has no defined inputs.*input_signature="):
        inputs.model_signature(_Subclassed())


@pytest.mark.parametrize("given, names, batch", [
    (tf.TensorSpec((None, 5), tf.float32, name="x"), ["x"], None),
    ([tf.TensorSpec((1, 5), tf.float32)], ["input_1"], 1),
    ([tf.TensorSpec((3, 5), tf.float32, "a"), tf.TensorSpec((3, 2), tf.int32, "b")],
     ["a", "b"], 3),
    ({"a": tf.TensorSpec((None, 2)), "bee": tf.TensorSpec((None, 3))}, ["a", "bee"], None),
])
def test_input_signature_forms(given, names, batch):
    signature = inputs.model_signature(_Subclassed(), given)
    assert signature.source == "input_signature"
    assert [n for n, _, _ in signature.specs] == names and signature.batch == batch


def test_input_signature_of_the_wrong_type_names_the_argument():
    with pytest.raises(TypeError, match=r"input_signature must be .*got \(None, 5\)"):
        inputs.model_signature(_Subclassed(), (None, 5))


def test_input_signature_with_different_batch_dimensions_raises():
    given = [tf.TensorSpec((1, 2)), tf.TensorSpec((None, 3))]
    with pytest.raises(ValueError, match="different batch dimensions"):
        inputs.model_signature(_Subclassed(), given)


def test_with_batch_fixes_every_input():
    signature = inputs.from_input_signature(
        [tf.TensorSpec((None, 2), name="a"), tf.TensorSpec((None, 3), name="b")])
    fixed = signature.with_batch(1)
    assert fixed.batch == 1 and [tuple(s.shape) for s in fixed.flat] == [(1, 2), (1, 3)]
    assert [s.name for s in fixed.flat] == ["a", "b"]


@pytest.mark.parametrize("batch, count", [(None, 8), (1, 8), (3, 9), (8, 8), (20, 20)])
def test_verify_count_is_whole_batches_of_a_fixed_batch(batch, count):
    assert export.verify_count(batch) == count


# --------------------------------------------------------------------- exports
def test_fixed_batch_input_is_verified_in_batches_of_that_size(tmp_path):
    """Input(batch_size=1): the file takes batches of 1 (the GRU loop's shapes are
    static); it used to be fed 8 at once and fail."""
    keras.utils.set_random_seed(0)
    x = keras.Input((5, 3), batch_size=1, name="x")
    hidden = keras.layers.Dense(16, "relu")(keras.layers.GRU(8)(x))
    model = keras.Model(x, keras.layers.Dense(3)(hidden))
    report = tf_globalmp.export_tflite(_pruned(model), str(tmp_path / "m.tflite"))
    assert report.route == "keras_model" and report.input_batch == 1
    assert report.verify_batch == 8 and report.max_rel_diff <= 1e-5
    assert "8 inputs in batches of 1" in report.to_table()


def test_called_subclassed_model_exports_without_a_functional_wrapper(tmp_path):
    wrapped = _pruned(_called_subclassed())
    report = tf_globalmp.export_tflite(wrapped, str(tmp_path / "m.tflite"))
    assert report.route == "concrete_function" and report.input_batch is None
    assert report.sparsity == pytest.approx(0.5) and report.sparse_tensors == 2
    assert report.verify_batch == 8 and report.max_rel_diff <= 1e-5
    assert report.constant_outputs == ()


def test_sequential_built_by_a_call_on_two_samples_exports_with_any_batch(tmp_path):
    """(Wrapping clones it with an explicit Input of that batch: tf-keras's clone.)"""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)])
    model(np.zeros((2, 5), "float32"))
    report = tf_globalmp.export_tflite(model, str(tmp_path / "m.tflite"))
    assert report.input_batch is None and report.verify_batch == 8
    assert report.max_rel_diff <= 1e-5


def test_input_signature_fixes_the_batch_of_the_file(tmp_path):
    from ai_edge_litert import interpreter as litert

    path = str(tmp_path / "m.tflite")
    report = tf_globalmp.export_tflite(
        _called_subclassed(), path, input_signature=tf.TensorSpec((2, 5), tf.float32, "x"))
    assert report.route == "concrete_function" and report.input_batch == 2
    assert report.max_rel_diff <= 1e-5
    runner = litert.Interpreter(model_path=path).get_signature_runner()
    assert list(runner.get_input_details()) == ["x"]
    assert list(runner.get_input_details()["x"]["shape"]) == [2, 5]


def test_dict_input_subclassed_model_exports_with_named_inputs_and_outputs(tmp_path):
    model = _DictInputs()
    model({"a": np.zeros((1, 2), "float32"), "bee": np.zeros((1, 3), "float32")})
    report = tf_globalmp.export_tflite(model, str(tmp_path / "m.tflite"))
    assert report.route == "concrete_function" and report.max_rel_diff <= 1e-5


def test_never_called_subclassed_model_export_names_input_signature(tmp_path):
    with pytest.raises(ValueError, match="input_signature="):
        tf_globalmp.export_tflite(_Subclassed(), str(tmp_path / "m.tflite"))
