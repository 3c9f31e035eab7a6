"""The Keras-backend adapter of `tf_globalmp.keras3`.

The pure math runs in TensorFlow. With the TensorFlow backend variables are read
directly (zero-copy); other backends go through numpy. Also: the tf.distribute
scope a model's variables live in, retracing a compiled train step, and the check
that a model is a Keras 3 model.
"""

import contextlib

import keras
import tensorflow as tf


def is_tf_backend():
    return keras.backend.backend() == "tensorflow"


def to_tf(value):
    """A backend value or Variable as a flat tf.Tensor (zero-copy on the TF backend)."""
    if is_tf_backend():
        return tf.reshape(tf.convert_to_tensor(value), [-1])
    return tf.reshape(tf.convert_to_tensor(keras.ops.convert_to_numpy(value)), [-1])


def from_tf(tensor):
    """A tf.Tensor as something `keras.Variable.assign` takes on this backend."""
    return tensor if is_tf_backend() else tensor.numpy()


def to_int(value):
    """A scalar backend value (e.g. ``optimizer.iterations``) as a Python int."""
    return int(keras.ops.convert_to_numpy(value))


def strategy_scope(model):
    """The tf.distribute strategy scope the model's variables were made in (TF backend);
    a no-op scope otherwise."""
    strategy = getattr(model, "distribute_strategy", None) if is_tf_backend() else None
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def retrace_train_function(model):
    """Rebuilds a train step traced before the kernels' constraints changed.

    A step not traced yet (first fit: traced on its first call) sees them anyway.
    """
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)


def check_keras3_model(model):
    if isinstance(model, keras.Model):
        return
    if (type(model).__module__ or "").startswith("tf_keras"):
        raise TypeError(
            "tf_globalmp.keras3 needs a Keras 3 model (`import keras`), got "
            f"{type(model).__module__}.{type(model).__name__}; for tf-keras models use "
            "tf_globalmp.prune_low_magnitude_global and tf_globalmp.UpdateGlobalPruningStep"
        )
    raise TypeError(f"model must be a keras.Model, got {type(model).__name__}: {model!r}")
