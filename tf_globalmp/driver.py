"""The one pruning driver, shared by the tf-keras controller and the Keras 3 pruner.

Backend-neutral: it decides *when* to update (the schedule), *which* masks (Global MP
with Minimum Threshold through `masks.keep_masks` -- the very function behind
`global_magnitude_masks` --, a baseline layer distribution, or a structured
`mask_rule`), checks the exact kept count, builds the `UpdateResult`, logs it, warns
when a `fit` cannot reach the schedule, and writes the TensorBoard scalars.

A backend supplies only the model side (`Backend`): the prunable weights' names and
shapes, their masked values, mask assignment, kept counts and re-masking.
`tf_globalmp.controller` (tfmot wrappers) and `tf_globalmp.keras3` (masks beside a
Keras 3 model) are the two backends.
"""

import dataclasses
import math
from typing import Protocol

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.framework import summary_pb2

from tf_globalmp import distributions
from tf_globalmp import masks as masks_lib
from tf_globalmp import min_threshold
from tf_globalmp import schedules

UpdateResult = masks_lib.UpdateResult

# TensorBoard tags, the same on both paths.
TAG_SPARSITY = "global_mp/sparsity"
TAG_TARGET = "global_mp/target_sparsity"
TAG_THRESHOLD = "global_mp/threshold"
TAG_FLOOR_LAYERS = "global_mp/mt_floor_layers"
TAG_LAYER = "layer_sparsity/{name}"


@dataclasses.dataclass(frozen=True)
class PruningOptions:
    """How masks are computed (both paths); validated on construction."""

    min_weights: int = 0
    min_weights_fraction: float | None = None
    redistribution: str = "global"
    # Optional structured rule replacing the unstructured global threshold:
    # rule(weights, sparsity, names) -> one bool keep-mask per weight (same shapes).
    # Weights arrive masked (pruned entries are zero). See `structured.py`.
    mask_rule: object = None
    # Layer-wise allocation of the budget: "global" (one threshold, the method of
    # this package) or a baseline from `distributions.METHODS`.
    distribution: str = "global"

    def __post_init__(self):
        min_threshold.resolve_min_weights(1, self.min_weights, self.min_weights_fraction)
        min_threshold.validate_redistribution(self.redistribution)
        distributions.validate_method(self.distribution)
        if self.mask_rule is not None and not callable(self.mask_rule):
            raise ValueError(f"mask_rule must be callable, got {self.mask_rule!r}")
        if self.mask_rule is not None and self.distribution != "global":
            raise ValueError(
                "give mask_rule or distribution, not both: got "
                f"distribution={self.distribution!r} with a mask_rule"
            )
        if self.distribution not in ("global", "random") and (
            self.min_weights or self.min_weights_fraction
        ):
            raise ValueError(
                "Minimum Threshold applies to distribution 'global' or 'random', got "
                f"distribution={self.distribution!r} with min_weights="
                f"{self.min_weights}, min_weights_fraction={self.min_weights_fraction}"
            )


class Backend(Protocol):
    """The model side of pruning. Weights and masks are listed in `names` order."""

    names: list  # one label per prunable weight
    shapes: list  # their shapes (tuples of ints)

    def masked_weights(self):
        """Flat float32 tensors ``weight * mask`` (pruned entries are 0)."""

    def assign_masks(self, keep):
        """Sets every mask to the flat bool `keep[i]` and zeroes the pruned weights."""

    def kept_counts(self):
        """Number of mask == 1 entries per weight (Python ints)."""

    def current_masks(self):
        """Flat bool tensors: mask == 1."""

    def apply_masks(self):
        """weight <- weight * mask for every pruned weight."""


class Driver:
    """Schedule -> masks for one model through a `Backend`.

    Args:
      backend: the model side (see `Backend`).
      schedule: a validated schedule ``step -> (should_prune, sparsity)``.
      options: `PruningOptions`.
      log_dir: optional TensorBoard directory: scalars at every mask update.
    """

    def __init__(self, backend, schedule, options, log_dir=None):
        self.backend = backend
        self.schedule = schedules.validate_schedule(schedule)
        self.options = options
        self.names = list(backend.names)
        self.shapes = [tuple(int(d) for d in s) for s in backend.shapes]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.total = sum(self.sizes)
        self.sigma = min_threshold.resolve_min_weights(
            self.total, options.min_weights, options.min_weights_fraction
        )
        self.log_dir = log_dir
        self._writer = None
        self.last_checked = -1
        self.last_result = None

    # ----------------------------------------------------------------- when
    def update(self, step):
        """Applies the schedule's most recent due update in (last seen step, step].

        An update that fell between two calls is applied late, not skipped; one that
        raised (NaN weights, say) is tried again at the next call. Returns an
        `UpdateResult` or None.
        """
        step = int(step)
        due = schedules.latest_update(self.schedule, self.last_checked, step)
        if due is None:
            self.last_checked = max(self.last_checked, step)
            return None
        due_step, sparsity = due
        result = self.prune_to(sparsity, step=due_step)
        self.last_checked = max(self.last_checked, step)
        return result

    # ---------------------------------------------------------------- which
    def prune_to(self, sparsity, step=None):
        """Prunes the whole network to `sparsity` now; returns the `UpdateResult`.

        Masks already keeping exactly the target count are left as they are (a
        one-shot mask stays fixed; a resumed run keeps its mask). Masks are computed
        on the masked weights, so pruned weights never come back.
        """
        if self.options.mask_rule is not None:
            return self._prune_with_rule(sparsity, step)
        n_keep = masks_lib.n_keep_for(self.total, sparsity)
        current = self.backend.kept_counts()
        if sum(current) == n_keep:
            return self._finish(step, sparsity, current, float("nan"), unchanged=True)
        weights = self._finite_masked_weights(step)
        if self.options.distribution == "global":
            keep, threshold = masks_lib.keep_masks(
                weights, n_keep, self.sigma, self.options.redistribution
            )
        else:
            keep, threshold = self._distribution_masks(weights, n_keep, current, step)
        self.backend.assign_masks(keep)
        layer_kept = self.backend.kept_counts()
        if sum(layer_kept) != n_keep:
            raise RuntimeError(
                f"pruning kept {sum(layer_kept)} weights, target was {n_keep} "
                f"(sparsity {sparsity}): this is a bug, please report it"
            )
        return self._finish(step, sparsity, layer_kept, threshold, unchanged=False)

    def _finite_masked_weights(self, step):
        weights = self.backend.masked_weights()
        try:
            masks_lib.check_finite(weights, self.names)
        except ValueError as e:
            raise ValueError(f"{e} (at step {step}; masks were left unchanged)") from None
        return weights

    def _distribution_masks(self, weights, n_keep, current, step):
        """A baseline allocation (`distributions`): per-layer counts, then each layer
        keeps its largest magnitudes ("random": random survivors)."""
        method = self.options.distribution
        arrays = [w.numpy().reshape(s) for w, s in zip(weights, self.shapes)]
        counts = distributions.keep_counts(
            arrays, n_keep, method, self.sigma, None, self.options.redistribution
        )
        # Pruned weights never come back: a layer keeps at most what it has.
        counts = distributions.round_to_budget(counts, n_keep, current)
        if method == "random":
            keep = distributions.random_masks(arrays, counts, seed=step or 0)
            return [tf.constant(k.ravel()) for k in keep], float("nan")
        return masks_lib.per_layer_masks(weights, counts), float("nan")

    def _prune_with_rule(self, sparsity, step):
        """A structured `mask_rule` decides the masks; the rule owns their count."""
        masks_lib.validate_sparsity(sparsity)
        weights = self._finite_masked_weights(step)
        shaped = [tf.reshape(w, s) for w, s in zip(weights, self.shapes)]
        keep = [tf.cast(k, tf.bool) for k in self.options.mask_rule(shaped, sparsity, self.names)]
        if len(keep) != len(shaped) or any(k.shape != w.shape for k, w in zip(keep, shaped)):
            raise ValueError(
                "mask_rule must return one mask per weight with the same shapes, got "
                f"{[tuple(k.shape) for k in keep]} for {[tuple(w.shape) for w in shaped]}"
            )
        flat = [tf.reshape(k, [-1]) for k in keep]
        before = self.backend.current_masks()
        unchanged = all(bool(tf.reduce_all(k == b)) for k, b in zip(flat, before))
        if not unchanged:
            self.backend.assign_masks(flat)
        # A rule may measure sparsity in its own unit (channel groups: `channels.rule`).
        achieved = getattr(self.options.mask_rule, "achieved_sparsity", None)
        return self._finish(step, sparsity, self.backend.kept_counts(), float("nan"),
                            unchanged, achieved)

    # --------------------------------------------------------------- report
    def _finish(self, step, sparsity, layer_kept, threshold, unchanged, achieved=None):
        kept = int(sum(layer_kept))
        floor = [min(self.sigma, n) for n in self.sizes]
        result = UpdateResult(
            step=step,
            target_sparsity=float(sparsity),
            achieved_sparsity=1.0 - kept / self.total if achieved is None else achieved,
            kept=kept,
            total=self.total,
            threshold=float(threshold),
            floor_layers=sum(1 for k, f in zip(layer_kept, floor) if 0 < f and k == f),
            layer_kept=tuple(int(k) for k in layer_kept),
            unchanged=unchanged,
        )
        self.last_result = result
        if not unchanged:
            rule = (getattr(self.options.mask_rule, "log_name", "Structured pruning")
                    if self.options.mask_rule is not None else
                    "Global MP" if self.options.distribution == "global" else
                    f"{self.options.distribution} pruning")
            logging.info(
                "%s at step %s: target sparsity %.6f, achieved %.6f (%d of %d kept), "
                "threshold %.4g, %d layer(s) held at the MT floor",
                rule, step, result.target_sparsity, result.achieved_sparsity, kept,
                self.total, result.threshold, result.floor_layers,
            )
        if self.log_dir:
            self._summarize(result)
        return result

    def _summarize(self, result):
        """TensorBoard scalars of one update (step = the schedule's due step)."""
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        scalars = {TAG_SPARSITY: result.achieved_sparsity,
                   TAG_TARGET: result.target_sparsity,
                   TAG_FLOOR_LAYERS: result.floor_layers}
        if not math.isnan(result.threshold):
            scalars[TAG_THRESHOLD] = result.threshold
        for name, kept, size in zip(self.names, result.layer_kept, self.sizes):
            scalars[TAG_LAYER.format(name=name)] = 1.0 - kept / size
        write_scalars(self._writer, scalars, int(result.step or 0))

    def warn_if_never_fires(self, start, steps=None, epochs=None):
        """Logs a warning when a fit of `epochs` x `steps` from step `start` will not
        reach the schedule's final sparsity, or will not prune at all."""
        last = schedules.last_pruning_step(self.schedule)
        if last is not None and steps and epochs and start <= last:
            fit_last = start + steps * epochs - 1
            if last > fit_last:
                due = schedules.latest_update(self.schedule, start - 1, fit_last)
                reached = f"step {due[0]} at sparsity {due[1]:.4f}" if due else "none"
                logging.warning(
                    "The pruning schedule's last update is at step %d but this fit ends "
                    "at step %d (%d epochs x %d steps): the final sparsity %.4f will not "
                    "be reached in this fit (last update in it: %s).",
                    last, fit_last, epochs, steps,
                    schedules.sparsity_at(self.schedule, last)[1], reached,
                )
        if last is not None and last < start and self.last_result is None:
            logging.warning(
                "The pruning schedule's last update is at step %d but training starts at "
                "step %d: no mask update will happen in this fit.", last, start,
            )
        begin = getattr(self.schedule, "begin_step", 0)
        if steps and epochs and begin > start + steps * epochs:
            logging.warning(
                "The pruning schedule begins at step %d but this fit ends at step %d "
                "(%d epochs x %d steps): the model will not be pruned.",
                begin, start + steps * epochs, epochs, steps,
            )


# What tf.summary.scalar writes, without needing the tensorboard package installed.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"),
    data_class=summary_pb2.DATA_CLASS_SCALAR,
)


def write_scalars(writer, scalars, step):
    """Writes {tag: float} as TensorBoard scalars at `step` and flushes."""
    with writer.as_default():
        for tag, value in scalars.items():
            tf.summary.write(tag, tf.constant(value, tf.float32), step=step,
                             metadata=_SCALAR_METADATA)
    writer.flush()
