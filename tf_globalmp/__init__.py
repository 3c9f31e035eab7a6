"""tf_globalmp: Global Magnitude Pruning (with Minimum Threshold) for tf-keras.

Importing this package sets ``TF_USE_LEGACY_KERAS=1`` -- here, and nowhere else --
before TensorFlow is imported, so ``tf.keras`` is tf-keras (Keras 2), which tfmot
needs. Import ``tf_globalmp`` before TensorFlow. The public names below load on
first use; ``tf_globalmp.keras3`` (Keras 3, no tfmot) undoes the switch when it is
imported before TensorFlow.
"""

import importlib
import os

# True if this import is what selected legacy Keras (read by tf_globalmp.keras3).
LEGACY_KERAS_SELECTED_HERE = "TF_USE_LEGACY_KERAS" not in os.environ
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"

# Public name -> module that defines it.
_PUBLIC = {
    "GlobalConstantSparsity": "schedules",
    "GlobalPolynomialDecay": "schedules",
    "GlobalPruner": "controller",
    "RankMaskRule": "structured",
    "UpdateGlobalPruningStep": "controller",
    "UpdateResult": "masks",
    "export_tflite": "export",
    "flops_report": "flops",
    "global_magnitude_masks": "masks",
    "layer_sparsities": "report",
    "load_model": "runs",
    "plot_layer_sparsity": "report",
    "prune_low_magnitude_global": "prune",
    "prune_scope": "prune",
    "shrink": "channels.shrink",
    "sparsity_preserving_qat": "qat",
    "sparsity_report": "report",
    "strip_pruning": "prune",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'tf_globalmp' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"tf_globalmp.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))


# Saved models name this package's custom layers: register them when tf-keras loads
# (an import hook; importing tf_globalmp itself stays free of TensorFlow).
importlib.import_module("tf_globalmp.serializables").install()
