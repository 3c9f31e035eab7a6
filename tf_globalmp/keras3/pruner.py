"""`GlobalPruner`: the masks of a Keras 3 model's prunable kernels.

The Keras 3 backend of `tf_globalmp.driver` (`driver.Backend`): the driver decides
when and which masks; this class reads the kernels, holds the masks (variables
beside the model, not in it), assigns them and keeps pruned weights at zero.
"""

import weakref

import keras
import numpy as np
import tensorflow as tf

from tf_globalmp import driver as driver_lib
from tf_globalmp import masks as masks_lib
from tf_globalmp.channels import keras3 as channels_keras3
from tf_globalmp.keras3 import adapter
from tf_globalmp.keras3 import policy

INITIAL_MASKS = ("auto", "ones", "nonzero")

UpdateResult = masks_lib.UpdateResult

# model -> its live GlobalPruner, so `strip(model)` finds the masks.
_PRUNERS = weakref.WeakKeyDictionary()


def attached_pruner(model):
    """The live `GlobalPruner` of `model`, or None."""
    return _PRUNERS.get(model)


def check_initial_masks(initial_masks):
    if initial_masks not in INITIAL_MASKS:
        raise ValueError(f"initial_masks must be one of {INITIAL_MASKS}, got {initial_masks!r}")


class _MaskConstraint:
    """Variable constraint ``w -> original(w) * mask`` (read at run time: TF backend)."""

    def __init__(self, mask, original):
        self.mask = mask
        self.original = original

    def __call__(self, w):
        if self.original is not None:
            w = self.original(w)
        return keras.ops.multiply(w, keras.ops.cast(self.mask, w.dtype))


class GlobalPruner:
    """Holds the masks of a Keras 3 model's prunable kernels: the Keras 3 backend of
    `tf_globalmp.driver` (which owns the schedule, the mask rule, the checks, the
    result, the logs and the TensorBoard scalars, as on the tf-keras path).

    Args:
      model: a built Keras 3 model.
      schedule: `tf_globalmp.GlobalPolynomialDecay` / `GlobalConstantSparsity` (or
        any callable ``step -> (should_prune, sparsity)`` with `get_config`).
      min_weights, min_weights_fraction: Minimum Threshold sigma, as a count or as a
        fraction of all prunable weights.
      redistribution: ``"global"`` (exact) or ``"proportional"`` (the paper code's).
      distribution, mask_rule: as in `tf_globalmp.prune_low_magnitude_global`.
      prunable, exclude: which weights to prune (see `prunable_kernels`).
      initial_masks: ``"ones"`` (dense start), ``"nonzero"`` (kernel != 0: resume a
        pruned model) or ``"auto"``: ``"nonzero"`` if ``model.optimizer`` has already
        taken steps, else ``"ones"``.
      granularity: "weight" only; "channel" (tf-keras only for now) raises ValueError.
      log_dir: if set, TensorBoard scalars at every update (`tf_globalmp.driver` tags),
        written with tf.summary (the tensorboard package is not needed to write them).

    Custom loop::

        pruner = tf_globalmp.keras3.GlobalPruner(model, schedule)
        for step, (x, y) in enumerate(data):
            pruner.update(step)          # maybe recompute the global mask
            train_step(x, y)
            pruner.apply_masks()         # keep pruned weights exactly zero
    """

    def __init__(
        self,
        model,
        schedule,
        *,
        min_weights=0,
        min_weights_fraction=None,
        redistribution="global",
        distribution="global",
        mask_rule=None,
        prunable=None,
        exclude=None,
        initial_masks="auto",
        log_dir=None,
        granularity="weight",
    ):
        channels_keras3.check_granularity(granularity)
        adapter.check_keras3_model(model)
        check_initial_masks(initial_masks)
        if not model.built:
            raise ValueError(
                f"model {model.name!r} is not built: call model.build(input_shape) or "
                "call it on a batch first"
            )
        kernels = policy.prunable_kernels(model, prunable=prunable, exclude=exclude)
        if not kernels:
            raise ValueError(f"model {model.name!r} has no prunable kernel (Dense, Conv*, ...)")
        options = driver_lib.PruningOptions(
            min_weights, min_weights_fraction, redistribution, mask_rule, distribution)
        self.model = model
        self.names = [name for name, _ in kernels]
        self.kernels = [variable for _, variable in kernels]
        self.shapes = [tuple(k.shape) for k in self.kernels]
        old = _PRUNERS.get(model)
        if old is not None:
            old.detach()  # one pruner per model: the newest wins
        self.initial_masks = _resolve_initial_masks(model, initial_masks)
        self.masks = {}  # kernel path -> non-trainable mask variable
        with adapter.strategy_scope(model):
            for name, kernel in kernels:
                start = "ones"
                if self.initial_masks == "nonzero":
                    start = keras.ops.cast(keras.ops.not_equal(kernel, 0), kernel.dtype)
                self.masks[name] = keras.Variable(
                    start, shape=kernel.shape, dtype=kernel.dtype, trainable=False,
                    name=kernel.name + "_mask",
                )
        self.driver = driver_lib.Driver(self, schedule, options, log_dir)
        tf_backend = adapter.is_tf_backend()
        self._apply = tf.function(self._apply_eager) if tf_backend else self._apply_eager
        self._constraints = {}
        _PRUNERS[model] = self
        if tf_backend:
            self._install_constraints()
        self.apply_masks()

    # The driver's view, under the names this class always had.
    schedule = property(lambda self: self.driver.schedule)
    sizes = property(lambda self: self.driver.sizes)
    total = property(lambda self: self.driver.total)
    sigma = property(lambda self: self.driver.sigma)
    redistribution = property(lambda self: self.driver.options.redistribution)
    last_result = property(lambda self: self.driver.last_result)

    # ------------------------------------------------- backend (driver.Backend)
    def _pairs(self):
        return [(k, self.masks[n]) for n, k in zip(self.names, self.kernels)]

    def masked_weights(self):
        return [tf.cast(adapter.to_tf(k), tf.float32) * tf.cast(adapter.to_tf(m), tf.float32)
                for k, m in self._pairs()]

    def assign_masks(self, keep):
        with adapter.strategy_scope(self.model):
            for name, k in zip(self.names, keep):
                mask = self.masks[name]
                mask.assign(keras.ops.reshape(adapter.from_tf(tf.cast(k, mask.dtype)), mask.shape))
        self.apply_masks()

    def current_masks(self):
        return [tf.not_equal(adapter.to_tf(self.masks[n]), 0) for n in self.names]

    def kept_counts(self):
        """Kept (mask == 1) count per prunable kernel, in `self.names` order."""
        masks = (keras.ops.convert_to_numpy(self.masks[n]) for n in self.names)
        return [int(np.count_nonzero(m)) for m in masks]

    layer_kept = kept_counts

    def _apply_eager(self):
        for kernel, mask in self._pairs():
            kernel.assign(keras.ops.multiply(kernel, keras.ops.cast(mask, kernel.dtype)))

    def apply_masks(self):
        """kernel <- kernel * mask for every pruned kernel."""
        with adapter.strategy_scope(self.model):
            self._apply()

    # --------------------------------------------------------------- masking
    def _install_constraints(self):
        for kernel, mask in self._pairs():
            self._constraints[id(kernel)] = kernel.constraint
            kernel.constraint = _MaskConstraint(mask, kernel.constraint)
        adapter.retrace_train_function(self.model)

    def detach(self):
        """Applies the masks, restores the kernels' own constraints, forgets the model."""
        self.apply_masks()
        if self._constraints:
            for kernel in self.kernels:
                kernel.constraint = self._constraints.pop(id(kernel))
            adapter.retrace_train_function(self.model)
        if _PRUNERS.get(self.model) is self:
            del _PRUNERS[self.model]

    def attached_to(self, model):
        """True while this pruner masks `model` (not stripped or replaced)."""
        return self.model is model and _PRUNERS.get(model) is self

    # --------------------------------------------------------------- updates
    def update(self, step):
        """Applies the schedule's most recent due update in (last seen step, step].

        An update that fell between two calls is applied late, not skipped.
        Returns an `UpdateResult` or None.
        """
        return self.driver.update(step)

    def prune_to(self, sparsity, step=None):
        """Prunes the whole network to `sparsity` now (one global threshold + MT).

        Masks that already keep exactly the target count are left as they are (a
        one-shot mask stays fixed; a resumed run keeps its mask). The threshold is
        computed on the masked weights, so pruned weights never return. NaN/inf
        weights or an MT over budget raise ValueError before anything changes.
        """
        return self.driver.prune_to(sparsity, step)


def _resolve_initial_masks(model, initial_masks):
    if initial_masks != "auto":
        return initial_masks
    optimizer = getattr(model, "optimizer", None)
    iterations = getattr(optimizer, "iterations", None)
    if iterations is not None and adapter.to_int(iterations) > 0:
        return "nonzero"
    return "ones"
