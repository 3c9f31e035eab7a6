"""The only importer of tf-keras and tfmot internals.

tfmot's pruning wrappers work only with tf-keras (Keras 2). TensorFlow 2.16+
ships Keras 3 as ``tf.keras`` unless ``TF_USE_LEGACY_KERAS=1`` is set *before*
TensorFlow is first imported; the package's ``__init__`` sets it (the one place),
and every import of this module goes through that ``__init__`` first.
"""

import tf_globalmp  # noqa: E402,F401  (its __init__ selects legacy Keras first)

import tensorflow as tf  # noqa: E402  (must follow the environment variable)
import tf_keras as keras  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
from tensorflow_model_optimization.python.core.sparsity.keras import (  # noqa: E402
    prunable_layer,
    prune_registry,
    pruning_schedule,
    pruning_wrapper,
)

from tf_globalmp import schedules as _schedules  # noqa: E402

PruneLowMagnitude = pruning_wrapper.PruneLowMagnitude
PruningSchedule = pruning_schedule.PruningSchedule
PrunableLayer = prunable_layer.PrunableLayer
PruneRegistry = prune_registry.PruneRegistry


def _wrapper_compute_mask(self, inputs, mask=None):
    """The wrapped layer's output mask (tfmot's wrapper drops it: a wrapped
    `Embedding(mask_zero=True)` would stop masking the layers after it)."""
    if not self.layer.supports_masking:
        return None
    return self.layer.compute_mask(inputs, mask)


_TFMOT_CALL = PruneLowMagnitude.call


def _wrapper_call(self, inputs, training=None, **kwargs):
    """tfmot's call, without passing `mask=` to a layer whose call takes none (e.g.
    MultiHeadAttention reads its inputs' masks itself)."""
    if "mask" in kwargs and not self.layer._call_spec.expects_mask_arg:  # noqa: SLF001
        kwargs.pop("mask")
    return _TFMOT_CALL(self, inputs, training=training, **kwargs)


# Two fixes patched on tfmot's class (it stays the wrapper; loaded wrappers need
# them too, and tfmot's own baseline gets them as well).
PruneLowMagnitude.compute_mask = _wrapper_compute_mask
PruneLowMagnitude.call = _wrapper_call


# Our schedules carry no tfmot import (Keras 3 code uses them too); make them
# tfmot PruningSchedules for the wrappers: issubclass/isinstance hold.
PruningSchedule.register(_schedules.GlobalConstantSparsity)
PruningSchedule.register(_schedules.GlobalPolynomialDecay)

_KERAS3_HINT = (
    "tfmot (and so tf_globalmp's wrappers) needs tf-keras (Keras 2) models, got a "
    "Keras 3 {kind} of type {cls}. Build the model with tf-keras instead:\n"
    "    import tf_globalmp            # sets TF_USE_LEGACY_KERAS=1 first\n"
    "    import tf_keras as keras      # or tf.keras after that import\n"
    "    model = keras.Sequential([...])\n"
    "For Keras 3 models without tfmot, see the README section 'Keras 3'."
)


def is_keras3_object(obj):
    """True if `obj` is an instance of a Keras 3 class (module `keras` / `keras.src`)."""
    for cls in type(obj).__mro__:
        module = getattr(cls, "__module__", "") or ""
        if module == "keras" or module.startswith("keras."):
            return True
    return False


def check_tf_keras_model(model, argument="model"):
    """Raises TypeError unless `model` is a tf-keras Model (with a Keras 3 hint)."""
    if isinstance(model, keras.Model):
        return
    if is_keras3_object(model):
        raise TypeError(_KERAS3_HINT.format(kind="object", cls=type(model).__name__))
    raise TypeError(
        f"{argument} must be a tf_keras.Model, got {type(model).__name__}: {model!r}"
    )
