"""Global MP for Keras 3 models (the ``keras`` package), without tf-keras or tfmot.

`GlobalPruning` is a `keras.callbacks.Callback`; `GlobalPruner` is the stateful
object behind it, usable from a custom loop. It is the Keras 3 backend of
`tf_globalmp.driver`, the one pruning driver the tf-keras controller uses too: the
same schedule handling, mask rules (Global MP with MT, baseline distributions,
structured rules), exact kept count ``N - round(s * N)``, results, logs and
TensorBoard tags. Masks are held fixed between the schedule's updates, recomputed
from the *masked* weights (pruned weights never come back), and applied after every
training batch.

Masks live outside the model. The model keeps no pruning variables or wrappers, so
``model.save`` writes a plain Keras model (zeros in place, no custom objects needed)
and ``keras.saving.load_model`` loads it anywhere. A new `GlobalPruning` on a
reloaded model whose optimizer has already stepped (compiled state restored by
``load_model``) derives its masks from the zeros (``initial_masks="auto"``), so
continuing training keeps the same mask and the same schedule position
(the step is ``optimizer.iterations``).

Backends: the pure math runs in TensorFlow. With the TensorFlow backend it reads the
variables directly, and each kernel also gets a mask *constraint* that the
optimizer applies inside the compiled train step, so pruned weights stay zero even
between the callbacks of a ``steps_per_execution > 1`` fit. Other backends go
through numpy (a thin adapter) and are masked after every batch only.

Importing this package undoes ``tf_globalmp``'s ``TF_USE_LEGACY_KERAS=1`` when that
import set it and TensorFlow is not imported yet, so ``tf.keras`` stays Keras 3.

Modules, each one job (imports flow down this list):
  adapter.py   Keras backend <-> TensorFlow tensors, strategy scope, model check
  policy.py    which weights are pruned: `prunable_kernels`, `coverage`
  pruner.py    `GlobalPruner`: the masks, the driver's backend hooks
  callback.py  `GlobalPruning`: the `model.fit` callback around a `GlobalPruner`
  export.py    `strip`, `export_tflite`
"""

import os
import sys

from absl import logging

import tf_globalmp

_LEGACY_ENV = "TF_USE_LEGACY_KERAS"


def _undo_legacy_keras_switch():
    """Pops TF_USE_LEGACY_KERAS if tf_globalmp set it and TF has not read it yet."""
    if tf_globalmp.LEGACY_KERAS_SELECTED_HERE and "tensorflow" not in sys.modules:
        os.environ.pop(_LEGACY_ENV, None)
        tf_globalmp.LEGACY_KERAS_SELECTED_HERE = False
        return
    if os.environ.get(_LEGACY_ENV) in ("1", "true", "True"):
        logging.warning(
            "%s=1 is in effect: tf.keras is tf-keras (Keras 2) in this process. "
            "tf_globalmp.keras3 prunes Keras 3 models (built with `import keras`); "
            "for tf.keras models use tf_globalmp.prune_low_magnitude_global. Import "
            "tf_globalmp.keras3 before TensorFlow to keep tf.keras on Keras 3.",
            _LEGACY_ENV,
        )


_undo_legacy_keras_switch()


# Only after the environment fix above: keras first (then TensorFlow), as every module
# of this package imports them.
import keras  # noqa: E402,F401

from tf_globalmp import schedules  # noqa: E402
from tf_globalmp.keras3.callback import GlobalPruning  # noqa: E402
from tf_globalmp.keras3.export import export_tflite  # noqa: E402
from tf_globalmp.keras3.export import strip  # noqa: E402
from tf_globalmp.keras3.policy import coverage  # noqa: E402
from tf_globalmp.keras3.policy import prunable_kernels  # noqa: E402
from tf_globalmp.keras3.pruner import INITIAL_MASKS  # noqa: E402
from tf_globalmp.keras3.pruner import GlobalPruner  # noqa: E402
from tf_globalmp.keras3.pruner import UpdateResult  # noqa: E402

__all__ = [
    "GlobalConstantSparsity",
    "GlobalPolynomialDecay",
    "GlobalPruner",
    "GlobalPruning",
    "UpdateResult",
    "export_tflite",
    "prunable_kernels",
    "strip",
]

# The same schedule objects as the tf-keras path (tfmot-free), re-exported.
GlobalConstantSparsity = schedules.GlobalConstantSparsity
GlobalPolynomialDecay = schedules.GlobalPolynomialDecay
