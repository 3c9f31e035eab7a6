"""Finishing a pruned Keras 3 model: `strip` (masks applied, pruning detached) and
`export_tflite` (a sparse TFLite / LiteRT flatbuffer)."""

import os

import tensorflow as tf

from tf_globalmp.keras3 import adapter
from tf_globalmp.keras3 import pruner as pruner_lib


def strip(model):
    """Returns `model` (the same object) with its masks applied and pruning detached.

    The kernels hold exact zeros; the mask constraints are removed and nothing else
    of the pruning stays on the model (the masks never were model variables). A
    model without a live pruner is returned as it is.
    """
    adapter.check_keras3_model(model)
    pruner = pruner_lib.attached_pruner(model)
    if pruner is not None:
        pruner.detach()
    return model


def export_tflite(model, path, sparse=True):
    """Writes `model` as a TFLite (LiteRT) flatbuffer; returns `path`.

    Uses ``model.export(path, format="litert")`` (TensorFlow backend); with
    ``sparse=True`` the converter encodes pruned constant tensors sparsely
    (`tf.lite.Optimize.EXPERIMENTAL_SPARSITY`), which shrinks the file.
    """
    adapter.check_keras3_model(model)
    path = os.fspath(path)
    optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY] if sparse else []
    model.export(path, format="litert", verbose=False, optimizations=optimizations)
    return path
