"""`GlobalPruning`: the `model.fit` callback that runs a `GlobalPruner`."""

import dataclasses

import keras

from tf_globalmp import driver as driver_lib
from tf_globalmp import schedules
from tf_globalmp.channels import keras3 as channels_keras3
from tf_globalmp.keras3 import adapter
from tf_globalmp.keras3 import pruner as pruner_lib


class GlobalPruning(keras.callbacks.Callback):
    """`model.fit` callback: Global MP (with Minimum Threshold) for Keras 3 models.

    The step is ``model.optimizer.iterations``: a resumed or reloaded model keeps its
    place in the schedule, and ``steps_per_execution > 1`` is handled (an update due
    inside an execution is applied at the next batch begin). Masks are applied at
    train begin, after every batch and at train end.

    Args: see `GlobalPruner`. ``callback.pruner`` is the `GlobalPruner` once training
    has begun; it is kept across `fit` calls on the same model.
    """

    def __init__(
        self,
        schedule,
        min_weights=0,
        min_weights_fraction=None,
        redistribution="global",
        log_dir=None,
        initial_masks="auto",
        *,
        distribution="global",
        mask_rule=None,
        prunable=None,
        exclude=None,
        granularity="weight",
    ):
        super().__init__()
        channels_keras3.check_granularity(granularity)
        self.schedule = schedules.validate_schedule(schedule)
        options = driver_lib.PruningOptions(  # validates
            min_weights, min_weights_fraction, redistribution, mask_rule, distribution)
        pruner_lib.check_initial_masks(initial_masks)
        # The GlobalPruner's keywords: the mask options, then the model-side choices.
        self._options = {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
        self._options.update(prunable=prunable, exclude=exclude, initial_masks=initial_masks,
                             log_dir=log_dir)
        self.pruner = None

    def current_step(self):
        return adapter.to_int(self.model.optimizer.iterations)

    def on_train_begin(self, logs=None):
        if self.pruner is None or not self.pruner.attached_to(self.model):
            self.pruner = pruner_lib.GlobalPruner(self.model, self.schedule, **self._options)
        self.pruner.apply_masks()
        params = self.params or {}
        self.pruner.driver.warn_if_never_fires(
            self.current_step(), params.get("steps"), params.get("epochs"))

    def _synced_pruner(self):
        # Reading `self.model` makes the JAX trainer write its in-flight state back
        # to the variables (and read them again before the next step), so the
        # masks see and change the current weights. No-op on other backends.
        self.model  # pylint: disable=pointless-statement
        return self.pruner

    def on_train_batch_begin(self, batch, logs=None):
        self._synced_pruner().update(self.current_step())

    def on_train_batch_end(self, batch, logs=None):
        self._synced_pruner().apply_masks()

    def on_train_end(self, logs=None):
        self._synced_pruner().apply_masks()
