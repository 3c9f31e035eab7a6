"""The one stateful object of the tf-keras path: the masks of a wrapped model.

`GlobalPruner` is the tfmot-wrapper backend of `tf_globalmp.driver` (which owns the
schedule, the mask rule, the checks, the result and the logs): it reads the masked
weights of every wrapper, assigns masks and re-applies them (`apply_masks()`), and is
what a custom training loop uses. `UpdateGlobalPruningStep` is the `model.fit`
callback around it. Both work inside or outside a `tf.distribute` strategy: masks are
assigned in cross-replica context, so every replica gets the same mask.
"""

import tensorflow as tf

from tf_globalmp import _compat
from tf_globalmp import driver as driver_lib
from tf_globalmp import mask_vars
from tf_globalmp import masks as masks_lib
from tf_globalmp import weights as weights_lib
from tf_globalmp import wrapping

UpdateResult = masks_lib.UpdateResult

keras = _compat.keras


class GlobalPruner:
    """Global MP controller for a model wrapped by `prune_low_magnitude_global`.

    Args:
      model: the wrapped, built tf-keras model.
      pruning_schedule: defaults to the schedule the wrappers carry.
      min_weights, min_weights_fraction, redistribution, mask_rule: default to the options
        given to `prune_low_magnitude_global` (after loading a saved model those
        are not known: pass them again).
      log_dir: TensorBoard scalars at every mask update (`tf_globalmp.driver` tags).

    Custom loop::

        pruner = tf_globalmp.GlobalPruner(model)
        for step, (x, y) in enumerate(data):
            pruner.update(step)          # maybe recompute the global mask
            train_step(x, y)             # forward applies the masks
            pruner.apply_masks()         # keep pruned weights exactly zero
    """

    def __init__(
        self,
        model,
        pruning_schedule=None,
        *,
        min_weights=None,
        min_weights_fraction=None,
        redistribution=None,
        mask_rule=None,
        log_dir=None,
    ):
        _compat.check_tf_keras_model(model)
        wrappers = wrapping.collect_wrappers(model)
        if not wrappers:
            raise ValueError(
                f"model {model.name!r} has no pruning wrapper: wrap it with "
                "tf_globalmp.prune_low_magnitude_global(model, schedule) first"
            )
        unbuilt = [w.name for w in wrappers if not w.built]
        if unbuilt:
            raise ValueError(
                f"model {model.name!r} is not built (wrappers {unbuilt} have no "
                "weights yet): call model.build(input_shape) or call it on a batch"
            )
        for wrapper in wrappers:
            wrapping.disable_layer_update(wrapper)
        self.model = model
        self.wrappers = wrappers
        stored = getattr(model, wrapping.OPTIONS_ATTR, None) or driver_lib.PruningOptions()
        options = driver_lib.PruningOptions(
            stored.min_weights if min_weights is None else min_weights,
            stored.min_weights_fraction if min_weights_fraction is None else min_weights_fraction,
            stored.redistribution if redistribution is None else redistribution,
            stored.mask_rule if mask_rule is None else mask_rule,
            stored.distribution,
        )
        self._vars = [pv for w in wrappers for pv in w.pruning_vars]
        if not self._vars:
            raise ValueError(f"model {model.name!r} has wrappers but no prunable weight")
        # The labels sparsity_report / flops_report use (tf_globalmp.weights).
        self.names = [pw.label for pw in weights_lib.of_wrappers(wrappers)]
        self.shapes = [tuple(weight.shape) for weight, _, _ in self._vars]
        self._strategy = model.distribute_strategy
        self._build_functions()
        self.driver = driver_lib.Driver(
            self, pruning_schedule or wrappers[0].pruning_schedule, options, log_dir
        )
        self.initialize_step()

    # The driver's view, under the names this class always had.
    schedule = property(lambda self: self.driver.schedule)
    options = property(lambda self: self.driver.options)
    sizes = property(lambda self: self.driver.sizes)
    total = property(lambda self: self.driver.total)
    sigma = property(lambda self: self.driver.sigma)
    last_result = property(lambda self: self.driver.last_result)

    _CACHE_ATTR = "_tf_globalmp_pruner"

    @classmethod
    def for_model(cls, model, **options):
        """The pruner of `model` built by an earlier call with the same options, else a
        new one (kept on the model, untracked). Its compiled functions are traced once
        per model, not once per `fit`."""
        key = (tuple(sorted(options.items(), key=lambda kv: kv[0])),
               id(getattr(model, wrapping.OPTIONS_ATTR, None)))
        cached = getattr(model, cls._CACHE_ATTR, None)
        if cached is not None and cached[0] == key and cached[1].wrappers == \
                wrapping.collect_wrappers(model):
            return cached[1]
        pruner = cls(model, **options)
        object.__setattr__(model, cls._CACHE_ATTR, (key, pruner))
        return pruner

    # ------------------------------------------------- backend (driver.Backend)
    # Masks are counted, read and assigned by small compiled loops over all wrappers'
    # variables (`tf_globalmp.mask_vars`): no graph per model to trace on the first update.
    def _build_functions(self):
        self._mask_vars = mask_vars.MaskVariables(self._vars, self._strategy)

        @tf.function(autograph=False)
        def apply_masks():
            wrapping.apply_wrapper_masks(self.wrappers)

        self._apply_masks = apply_masks

    def masked_weights(self):
        return self._mask_vars.masked_weights()

    def assign_masks(self, keep):
        """mask <- keep, weight <- weight * mask, threshold <- smallest kept magnitude
        (tfmot's per-wrapper threshold; 0 where nothing is kept), on every replica."""
        self._mask_vars.assign(keep)

    def current_masks(self):
        with self._strategy.scope():
            return [tf.reshape(mask.value() > 0, [-1]) for _, mask, _ in self._vars]

    def kept_counts(self):
        """Kept (mask == 1) count per prunable weight, in `self.names` order."""
        return self._mask_vars.kept_counts()

    layer_kept = kept_counts

    def apply_masks(self):
        """weight <- weight * mask for every pruned weight (compiled, cross-replica)."""
        with self._strategy.scope():
            self._apply_masks()

    # ------------------------------------------------------------------- steps
    def initialize_step(self):
        """Sets never-trained wrappers' step to 0 (tfmot's convention); returns the step."""
        steps = [int(w.pruning_step.numpy()) for w in self.wrappers]
        if min(steps) < 0:
            self.set_step(0)
            return 0
        return min(steps)

    def set_step(self, step):
        """Writes `step` into every wrapper's `pruning_step` (saved with the model)."""
        with self._strategy.scope():
            for wrapper in self.wrappers:
                wrapper.pruning_step.assign(int(step))

    # ------------------------------------------------------------------ public
    def update(self, step):
        """Applies the schedule's most recent due update in (last seen step, step].

        Call it once per training step (or less often: an update that fell between
        two calls is applied late, not skipped). Returns an `UpdateResult` or None.
        """
        return self.driver.update(step)

    def prune_to(self, sparsity, step=None):
        """Prunes the whole network to `sparsity` now (one global threshold + MT).

        If the masks already keep exactly the target count they are left as they
        are (a fixed one-shot mask is never recomputed; a resumed run keeps its
        restored mask). Pruned weights never come back: the threshold is computed
        on the masked weights.
        """
        return self.driver.prune_to(sparsity, step)


class UpdateGlobalPruningStep(keras.callbacks.Callback):
    """`model.fit` callback for Global MP (the counterpart of tfmot's UpdatePruningStep).

    Keeps the step counter (the wrappers' saved `pruning_step` plus the optimizer's
    iterations since `fit` began, so `steps_per_execution > 1` counts every step),
    computes one global mask at the steps the schedule says, holds the masks fixed
    between updates, and re-applies them after every batch and epoch.

    Args (all optional): `log_dir` writes TensorBoard scalars at every mask update
    (`global_mp/sparsity`, `global_mp/target_sparsity`, `global_mp/threshold`,
    `global_mp/mt_floor_layers`, `layer_sparsity/<layer>/<weight>`; the same tags as
    the Keras 3 path), next to tfmot's `PruningSummaries` if you use it too. The others
    override the options `prune_low_magnitude_global` stored on the model (needed after
    loading a saved model).
    """

    def __init__(
        self, min_weights=None, min_weights_fraction=None, redistribution=None, mask_rule=None,
        log_dir=None,
    ):
        super().__init__()
        self.log_dir = log_dir
        self._options = dict(
            min_weights=min_weights,
            min_weights_fraction=min_weights_fraction,
            redistribution=redistribution,
            mask_rule=mask_rule,
        )
        self.pruner = None
        self._shared_wrappers = False
        self._step0 = 0
        self._iterations0 = 0

    def current_step(self):
        return self._step0 + int(self.model.optimizer.iterations.numpy()) - self._iterations0

    def on_train_begin(self, logs=None):
        self.pruner = GlobalPruner.for_model(self.model, **self._options)
        if self.log_dir:
            self.pruner.driver.log_dir = self.log_dir
        self._step0 = self.pruner.initialize_step()
        self._iterations0 = int(self.model.optimizer.iterations.numpy())
        self.pruner.driver.last_checked = self._step0 - 1
        self._shared_wrappers = any(
            len(getattr(w, "_inbound_nodes", [])) > 1 for w in self.pruner.wrappers
        )
        params = self.params or {}
        self.pruner.driver.warn_if_never_fires(
            self._step0, params.get("steps"), params.get("epochs"))

    def on_train_batch_begin(self, batch, logs=None):
        self.pruner.update(self.current_step())

    def on_train_batch_end(self, batch, logs=None):
        self.pruner.apply_masks()
        if self._shared_wrappers:
            # A wrapper called k times per step advances its pruning_step by k.
            self.pruner.set_step(self.current_step())

    def on_epoch_end(self, epoch, logs=None):
        self.pruner.apply_masks()
        self.pruner.set_step(self.current_step())

    def on_train_end(self, logs=None):
        self.pruner.apply_masks()
        self.pruner.set_step(self.current_step())
