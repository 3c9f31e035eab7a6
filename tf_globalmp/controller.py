"""The one stateful object: holds the masks of a wrapped model and updates them.

`GlobalPruner` computes one global mask over every wrapped layer when the schedule
says so (`update(step)`), re-applies the masks (`apply_masks()`), and is what a
custom training loop uses. `UpdateGlobalPruningStep` is the `model.fit` callback
around it. Both work inside or outside a `tf.distribute` strategy: mask updates run
in cross-replica context as one compiled function, so every replica gets the same
mask.
"""

import numpy as np
import tensorflow as tf
from absl import logging

from tf_globalmp import _compat
from tf_globalmp import distributions
from tf_globalmp import masks as masks_lib
from tf_globalmp import min_threshold
from tf_globalmp import prune
from tf_globalmp import schedules
from tf_globalmp import selection

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
    ):
        _compat.check_tf_keras_model(model)
        wrappers = prune.collect_wrappers(model)
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
            prune.disable_layer_update(wrapper)
        self.model = model
        self.wrappers = wrappers
        self.schedule = schedules.validate_schedule(
            pruning_schedule or wrappers[0].pruning_schedule
        )
        stored = getattr(model, prune.OPTIONS_ATTR, None) or prune.PruningOptions()
        self.options = prune.PruningOptions(
            stored.min_weights if min_weights is None else min_weights,
            stored.min_weights_fraction if min_weights_fraction is None else min_weights_fraction,
            stored.redistribution if redistribution is None else redistribution,
            stored.mask_rule if mask_rule is None else mask_rule,
            stored.distribution,
        )
        self._vars = [pv for w in wrappers for pv in w.pruning_vars]
        self.names = [
            f"{w.layer.name}/{weight.name.split('/')[-1].split(':')[0]}"
            for w in wrappers
            for weight, _, _ in w.pruning_vars
        ]
        if not self._vars:
            raise ValueError(f"model {model.name!r} has wrappers but no prunable weight")
        self.sizes = [int(np.prod(weight.shape)) for weight, _, _ in self._vars]
        self.total = sum(self.sizes)
        self.sigma = min_threshold.resolve_min_weights(
            self.total, self.options.min_weights, self.options.min_weights_fraction
        )
        self._strategy = model.distribute_strategy
        self._last_checked = -1
        self.last_result = None
        self._build_functions()
        self.initialize_step()

    _CACHE_ATTR = "_tf_globalmp_pruner"

    @classmethod
    def for_model(cls, model, **options):
        """The pruner of `model` built by an earlier call with the same options, else a
        new one (kept on the model, untracked). Its compiled update is traced once per
        model, not once per `fit` (tracing a ResNet-sized update takes seconds)."""
        key = (tuple(sorted(options.items(), key=lambda kv: kv[0])),
               id(getattr(model, prune.OPTIONS_ATTR, None)))
        cached = getattr(model, cls._CACHE_ATTR, None)
        if cached is not None and cached[0] == key and cached[1].wrappers == \
                prune.collect_wrappers(model):
            return cached[1]
        pruner = cls(model, **options)
        object.__setattr__(model, cls._CACHE_ATTR, (key, pruner))
        return pruner

    # ----------------------------------------------------------------- graphs
    def _build_functions(self):
        pruning_vars, sizes = self._vars, self.sizes

        def masked_keys():
            keys, finite = [], []
            for weight, mask, _ in pruning_vars:
                w = tf.cast(weight, tf.float32)
                finite.append(tf.reduce_all(tf.math.is_finite(w)))
                keys.append(selection.magnitude_keys(w * tf.cast(mask, tf.float32)))
            return keys, tf.stack(finite)

        def counts(bool_masks):
            return tf.stack([tf.reduce_sum(tf.cast(m, tf.int32)) for m in bool_masks])

        def assign_all(bool_masks):
            for (weight, mask, threshold), keep in zip(pruning_vars, bool_masks):
                new_mask = tf.reshape(tf.cast(keep, mask.dtype), mask.shape)
                mask.assign(new_mask)
                weight.assign(weight * tf.cast(new_mask, weight.dtype))
                magnitude = tf.abs(tf.reshape(tf.cast(weight, tf.float32), [-1]))
                smallest = tf.reduce_min(tf.where(keep, magnitude, np.inf))
                threshold.assign(
                    tf.cast(tf.where(tf.reduce_any(keep), smallest, 0.0), threshold.dtype)
                )

        @tf.function
        def update_global(n_keep, forced_counts, commit):
            """Threshold + masks + assignment in one graph; assigns only if all finite."""
            keys, finite = masked_keys()
            bool_masks, threshold, _ = masks_lib.global_keep_masks(
                keys, n_keep, forced_counts, sizes
            )

            def do_assign():
                assign_all(bool_masks)
                return tf.constant(True)

            tf.cond(
                tf.logical_and(commit, tf.reduce_all(finite)),
                do_assign,
                lambda: tf.constant(False),
            )
            return finite, selection.keys_to_magnitude(threshold), counts(bool_masks)

        @tf.function
        def update_per_layer(keep_counts):
            keys, _ = masked_keys()
            bool_masks = masks_lib.per_layer_keep_masks(keys, keep_counts, sizes)
            assign_all(bool_masks)
            return counts(bool_masks)

        @tf.function
        def assign(bool_masks):
            assign_all(bool_masks)

        @tf.function
        def kept_counts():
            return tf.stack(
                [tf.reduce_sum(tf.cast(m > 0, tf.int32)) for _, m, _ in pruning_vars]
            )

        @tf.function
        def apply_masks():
            prune.apply_wrapper_masks(self.wrappers)

        self._update_global = update_global
        self._update_per_layer = update_per_layer
        self._assign = assign
        self._kept_counts = kept_counts
        self._apply_masks = apply_masks

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
    def layer_kept(self):
        """Kept (mask == 1) count per prunable weight, in `self.names` order."""
        with self._strategy.scope():
            return [int(c) for c in self._kept_counts().numpy()]

    def update(self, step):
        """Applies the schedule's most recent due update in (last seen step, step].

        Call it once per training step (or less often: an update that fell between
        two calls is applied late, not skipped). Returns an `UpdateResult` or None.
        """
        step = int(step)
        due = schedules.latest_update(self.schedule, self._last_checked, step)
        if due is None:
            self._last_checked = max(self._last_checked, step)
            return None
        due_step, sparsity = due
        result = self.prune_to(sparsity, step=due_step)  # a failure is retried next call
        self._last_checked = max(self._last_checked, step)
        return result

    def prune_to(self, sparsity, step=None):
        """Prunes the whole network to `sparsity` now (one global threshold + MT).

        If the masks already keep exactly the target count they are left as they
        are (a fixed one-shot mask is never recomputed; a resumed run keeps its
        restored mask). Pruned weights never come back: the threshold is computed
        on the masked weights.
        """
        if self.options.mask_rule is not None:
            return self._prune_with_rule(sparsity, step)
        n_keep = masks_lib.n_keep_for(self.total, sparsity)
        current = self.layer_kept()
        if sum(current) == n_keep:
            result = self._result(step, sparsity, current, threshold=np.nan, unchanged=True)
            self.last_result = result
            return result
        if self.options.distribution != "global":
            return self._prune_distribution(sparsity, step, n_keep, current)
        forced = min_threshold.forced_keep_counts(self.sizes, self.sigma, n_keep)
        proportional = self.options.redistribution == "proportional" and self.sigma > 0
        with self._strategy.scope():
            finite, threshold, counts = self._update_global(
                tf.constant(n_keep, tf.int32),
                tf.constant(forced, tf.int32),
                tf.constant(not proportional),
            )
            finite = finite.numpy()
            if not finite.all():
                bad = self.names[int(np.argmin(finite))]
                raise ValueError(
                    f"weights of layer {bad!r} contain NaN or inf at step {step}; "
                    "the global threshold is undefined (training diverged?). Masks "
                    "were left unchanged."
                )
            if proportional:
                keep = min_threshold.proportional_keep_counts(
                    counts.numpy(), self.sizes, forced, n_keep
                )
                counts = self._update_per_layer(tf.constant(keep, tf.int32))
        layer_kept = [int(c) for c in counts.numpy()]
        if abs(sum(layer_kept) - n_keep) > 0:
            raise RuntimeError(
                f"global pruning kept {sum(layer_kept)} weights, target was {n_keep} "
                f"(sparsity {sparsity}): this is a bug, please report it"
            )
        result = self._result(step, sparsity, layer_kept, float(threshold), unchanged=False)
        self.last_result = result
        logging.info(
            "Global MP at step %s: target sparsity %.6f, achieved %.6f (%d of %d kept), "
            "threshold %.4g, %d layer(s) held at the MT floor",
            step, sparsity, result.achieved_sparsity, result.kept, result.total,
            result.threshold, result.floor_layers,
        )
        return result

    def _prune_distribution(self, sparsity, step, n_keep, current):
        """A baseline allocation (`distributions`): per-layer counts, then each layer
        keeps its largest magnitudes ("random": random survivors). Host-side."""
        method = self.options.distribution
        masked = [
            np.asarray(weight.numpy(), np.float32) * (mask.numpy() > 0)
            for weight, mask, _ in self._vars
        ]
        masks_lib.check_finite([m.ravel() for m in masked], self.names)
        counts = distributions.keep_counts(
            masked, n_keep, method, self.sigma, None, self.options.redistribution
        )
        # Pruned weights never come back: a layer keeps at most what it has.
        counts = distributions.round_to_budget(counts, n_keep, current)
        with self._strategy.scope():
            if method == "random":
                keep = distributions.random_masks(masked, counts, seed=step or 0)
                self._assign([tf.constant(k.ravel()) for k in keep])
                layer_kept = [int(k.sum()) for k in keep]
            else:
                layer_kept = [int(c) for c in self._update_per_layer(
                    tf.constant(counts, tf.int32)).numpy()]
        if sum(layer_kept) != n_keep:
            raise RuntimeError(
                f"{method} pruning kept {sum(layer_kept)} weights, target was {n_keep} "
                f"(sparsity {sparsity}): this is a bug, please report it"
            )
        result = self._result(step, sparsity, layer_kept, float("nan"), unchanged=False)
        self.last_result = result
        logging.info(
            "%s pruning at step %s: target sparsity %.6f, achieved %.6f (%d of %d kept)",
            method, step, sparsity, result.achieved_sparsity, result.kept, result.total,
        )
        return result

    def _prune_with_rule(self, sparsity, step):
        """A structured `mask_rule` decides the masks; the rule owns their count."""
        masks_lib.validate_sparsity(sparsity)
        with self._strategy.scope():
            masked = [
                tf.convert_to_tensor(weight) * tf.cast(mask, weight.dtype)
                for weight, mask, _ in self._vars
            ]
            masks_lib.check_finite([tf.reshape(w, [-1]) for w in masked], self.names)
            before = [tf.convert_to_tensor(mask) for _, mask, _ in self._vars]
            keep = [tf.cast(k, tf.bool) for k in self.options.mask_rule(masked, sparsity, self.names)]
            if len(keep) != len(masked) or any(
                k.shape != w.shape for k, w in zip(keep, masked)
            ):
                raise ValueError(
                    "mask_rule must return one mask per weight with the same shapes, got "
                    f"{[tuple(k.shape) for k in keep]} for {[tuple(w.shape) for w in masked]}"
                )
            unchanged = all(
                bool(tf.reduce_all(tf.equal(k, b > 0))) for k, b in zip(keep, before)
            )
            self._assign([tf.reshape(k, [-1]) for k in keep])
        layer_kept = [int(tf.reduce_sum(tf.cast(k, tf.int32))) for k in keep]
        result = self._result(step, sparsity, layer_kept, float("nan"), unchanged)
        self.last_result = result
        logging.info(
            "Structured pruning at step %s: %d of %d weights kept (sparsity %.6f)",
            step, result.kept, result.total, result.achieved_sparsity,
        )
        return result

    def apply_masks(self):
        """weight <- weight * mask for every pruned weight (compiled, cross-replica)."""
        with self._strategy.scope():
            self._apply_masks()

    def _result(self, step, sparsity, layer_kept, threshold, unchanged):
        kept = int(sum(layer_kept))
        floor = [min(self.sigma, n) for n in self.sizes]
        held = sum(1 for k, f, n in zip(layer_kept, floor, self.sizes) if 0 < f and k == f)
        return masks_lib.UpdateResult(
            step=step,
            target_sparsity=float(sparsity),
            achieved_sparsity=1.0 - kept / self.total,
            kept=kept,
            total=self.total,
            threshold=threshold,
            floor_layers=held,
            layer_kept=tuple(layer_kept),
            unchanged=unchanged,
        )


class UpdateGlobalPruningStep(keras.callbacks.Callback):
    """`model.fit` callback for Global MP (the counterpart of tfmot's UpdatePruningStep).

    Keeps the step counter (the wrappers' saved `pruning_step` plus the optimizer's
    iterations since `fit` began, so `steps_per_execution > 1` counts every step),
    computes one global mask at the steps the schedule says, holds the masks fixed
    between updates, and re-applies them after every batch and epoch.

    Args (all optional): `log_dir` writes TensorBoard scalars at every mask update
    (`global/sparsity`, `global/target_sparsity`, `global/threshold`,
    `global/mt_floor_layers`, `layer_sparsity/<layer>/<weight>`), next to tfmot's
    `PruningSummaries` if you use it too. The others override the options
    `prune_low_magnitude_global` stored on the model (needed after loading a saved
    model).
    """

    def __init__(
        self, min_weights=None, min_weights_fraction=None, redistribution=None, mask_rule=None,
        log_dir=None,
    ):
        super().__init__()
        self.log_dir = log_dir
        self._writer = None
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
        self._step0 = self.pruner.initialize_step()
        self._iterations0 = int(self.model.optimizer.iterations.numpy())
        self.pruner._last_checked = self._step0 - 1
        self._shared_wrappers = any(
            len(getattr(w, "_inbound_nodes", [])) > 1 for w in self.pruner.wrappers
        )
        self._warn_if_never_fires()

    def _warn_if_never_fires(self):
        last = schedules.last_pruning_step(self.pruner.schedule)
        steps = self.params.get("steps") if self.params else None
        epochs = self.params.get("epochs") if self.params else None
        if last is not None and steps and epochs and self._step0 <= last:
            fit_last = self._step0 + steps * epochs - 1
            if last > fit_last:
                due = schedules.latest_update(self.pruner.schedule, self._step0 - 1, fit_last)
                reached = f"step {due[0]} at sparsity {due[1]:.4f}" if due else "none"
                logging.warning(
                    "The pruning schedule's last update is at step %d (end_step %d) but "
                    "this fit ends at step %d (%d epochs x %d steps): the final sparsity "
                    "%.4f will not be reached in this fit (last update in it: %s).",
                    last, self.pruner.schedule.end_step, fit_last, epochs, steps,
                    schedules.sparsity_at(self.pruner.schedule, last)[1], reached,
                )
        if last is not None and last < self._step0 and self.pruner.last_result is None:
            logging.warning(
                "The pruning schedule's last update is at step %d but training starts "
                "at step %d: no mask update will happen in this fit.", last, self._step0,
            )
        if steps and epochs and getattr(self.pruner.schedule, "begin_step", 0) > (
            self._step0 + steps * epochs
        ):
            logging.warning(
                "The pruning schedule begins at step %d but this fit ends at step %d "
                "(%d epochs x %d steps): the model will not be pruned.",
                self.pruner.schedule.begin_step, self._step0 + steps * epochs, epochs, steps,
            )

    def on_train_batch_begin(self, batch, logs=None):
        result = self.pruner.update(self.current_step())
        if result is not None and self.log_dir:
            self._summarize(result)

    def _summarize(self, result):
        """TensorBoard scalars of one update (step = the schedule's due step)."""
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        step = int(result.step if result.step is not None else self.current_step())
        with self._writer.as_default(step=step):
            tf.summary.scalar("global/sparsity", result.achieved_sparsity)
            tf.summary.scalar("global/target_sparsity", result.target_sparsity)
            if not np.isnan(result.threshold):
                tf.summary.scalar("global/threshold", result.threshold)
            tf.summary.scalar("global/mt_floor_layers", result.floor_layers)
            for name, kept, size in zip(self.pruner.names, result.layer_kept, self.pruner.sizes):
                tf.summary.scalar(f"layer_sparsity/{name}", 1.0 - kept / size)
        self._writer.flush()

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
