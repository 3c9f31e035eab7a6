"""Wrapping and unwrapping models: tfmot's `PruneLowMagnitude`, one global schedule.

`prune_low_magnitude_global` mirrors `tfmot.sparsity.keras.prune_low_magnitude`:
the prunable layers are wrapped in tfmot's own wrapper (so `strip_pruning`,
`prune_scope`, `PruningSummaries` keep working), but the wrappers' own per-layer
mask update is switched off: the masks are computed for the whole network at once
by the controller (`UpdateGlobalPruningStep` / `GlobalPruner`).
"""

import contextlib
import dataclasses

import tensorflow as tf

from tf_globalmp import _compat
from tf_globalmp import distributions
from tf_globalmp import min_threshold
from tf_globalmp import registry
from tf_globalmp import schedules

keras = _compat.keras
PruneLowMagnitude = _compat.PruneLowMagnitude

# Attribute under which a wrapped model carries its Global MP options in memory.
OPTIONS_ATTR = "_tf_globalmp_options"


@dataclasses.dataclass(frozen=True)
class PruningOptions:
    """How masks are computed; carried by the model, read by the controller."""

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


def _no_layer_update():
    return tf.no_op("global_pruning_no_layer_update")


def disable_layer_update(wrapper):
    """Turns off tfmot's per-layer mask update of a built wrapper (idempotent)."""
    if wrapper.pruning_obj is not None:
        wrapper.pruning_obj.conditional_mask_update = _no_layer_update


def _wrap(layer, schedule):
    if isinstance(layer, PruneLowMagnitude):
        return layer
    wrapper = PruneLowMagnitude(registry.make_prunable(layer), pruning_schedule=schedule)
    if layer.built:
        wrapper.build(getattr(layer, "_build_input_shape", None))
        disable_layer_update(wrapper)
    return wrapper


def _is_graph_model(model):
    return isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)


def _wrap_in_place(model, schedule):
    """Replaces prunable layers tracked as attributes of a subclassed model."""
    for name, value in list(vars(model).items()):
        if name.startswith("_"):
            continue
        if isinstance(value, keras.layers.Layer):
            new = _wrap_any(value, schedule)
            if new is not value:
                setattr(model, name, new)
        elif isinstance(value, (list, tuple)) and any(
            isinstance(v, keras.layers.Layer) for v in value
        ):
            items = [_wrap_any(v, schedule) if isinstance(v, keras.layers.Layer) else v for v in value]
            setattr(model, name, type(value)(items) if isinstance(value, tuple) else items)
    return model


def _wrap_any(layer, schedule):
    if isinstance(layer, keras.Model):
        if _is_graph_model(layer):
            return keras.models.clone_model(
                layer, clone_function=lambda l: _wrap_any(l, schedule)
            )
        return _wrap_in_place(layer, schedule)
    if registry.is_prunable(layer):
        return _wrap(layer, schedule)
    return layer


def prune_low_magnitude_global(
    model,
    pruning_schedule,
    min_weights=0,
    min_weights_fraction=None,
    redistribution="global",
    mask_rule=None,
    distribution="global",
):
    """Wraps `model` for Global Magnitude Pruning under `pruning_schedule`.

    Args:
      model: a built tf-keras Sequential, functional or subclassed model (nested
        models and shared layers included). Sequential/functional models are cloned
        like tfmot does (the clone reuses the original layers and their weights);
        subclassed models are wrapped in place and returned.
      pruning_schedule: a tfmot `PruningSchedule`, read as the *global* sparsity,
        e.g. `GlobalPolynomialDecay` or `GlobalConstantSparsity`.
      min_weights: Minimum Threshold sigma: every layer keeps at least its
        `min(sigma, layer size)` largest weights.
      min_weights_fraction: sigma as a fraction of all prunable weights instead.
      redistribution: "global" (exact, default) or "proportional" (paper code).
      mask_rule: optional structured rule (see `tf_globalmp.structured`) used
        instead of the unstructured global threshold, through the same callback,
        schedule, strip and report.
      distribution: "global" (default). For comparisons, the same budget can be
        allocated per layer by "uniform" (tfmot's behaviour), "erk", "lamp" or
        "random" (global's per-layer counts, random weights); see
        `tf_globalmp.distributions`.

    Returns:
      The wrapped model. Train it with `UpdateGlobalPruningStep()` in `fit`, or
      `GlobalPruner(model).update(step)` in a custom loop.
    """
    _compat.check_tf_keras_model(model)
    schedules.validate_schedule(pruning_schedule)
    options = PruningOptions(min_weights, min_weights_fraction, redistribution, mask_rule,
                             distribution)
    if not model.built:
        raise ValueError(
            f"model {model.name!r} is not built: give its first layer an input shape, "
            "call model.build(input_shape), or call it on a batch first"
        )
    if not any(registry.is_prunable(l) for l in _all_layers(model)):
        raise ValueError(
            f"model {model.name!r} has no prunable layer (Dense, Conv*, "
            "DepthwiseConv*, SeparableConv* or a PrunableLayer)"
        )
    with model.distribute_strategy.scope():
        wrapped = _wrap_any(model, pruning_schedule)
    setattr(wrapped, OPTIONS_ATTR, options)
    return wrapped


def _all_layers(model):
    """Every layer reachable from `model`, depth first, each once."""
    seen, out = set(), []

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        out.append(layer)
        if isinstance(layer, PruneLowMagnitude):
            return
        for child in getattr(layer, "_flatten_layers", lambda **k: [])(
            include_self=False, recursive=False
        ):
            visit(child)

    visit(model)
    return out


def collect_wrappers(model):
    """The `PruneLowMagnitude` wrappers of `model` in a fixed order, each once."""
    return [l for l in _all_layers(model) if isinstance(l, PruneLowMagnitude)]


def apply_wrapper_masks(wrappers):
    """weight <- weight * mask for every pruned weight (eager or in a graph)."""
    for wrapper in wrappers:
        for weight, mask, _ in wrapper.pruning_vars:
            weight.assign(weight * tf.cast(mask, weight.dtype))


def _unwrap_in_place(model):
    for name, value in list(vars(model).items()):
        if name.startswith("_"):
            continue
        if isinstance(value, keras.layers.Layer):
            new = _unwrap_any(value)
            if new is not value:
                setattr(model, name, new)
        elif isinstance(value, (list, tuple)) and any(
            isinstance(v, keras.layers.Layer) for v in value
        ):
            items = [_unwrap_any(v) if isinstance(v, keras.layers.Layer) else v for v in value]
            setattr(model, name, type(value)(items) if isinstance(value, tuple) else items)
    return model


def _unwrap_any(layer):
    if isinstance(layer, PruneLowMagnitude):
        inner = layer.layer
        if not hasattr(inner, "_batch_input_shape") and hasattr(layer, "_batch_input_shape"):
            inner._batch_input_shape = layer._batch_input_shape
        return inner
    if isinstance(layer, keras.Model):
        if _is_graph_model(layer):
            return keras.models.clone_model(layer, clone_function=_unwrap_any)
        return _unwrap_in_place(layer)
    return layer


def strip_pruning(model):
    """Re-applies the final masks, then removes the wrappers.

    Returns a plain tf-keras model whose pruned weights are exactly zero
    (Sequential/functional: a clone sharing the layers; subclassed: the same model,
    unwrapped in place).
    """
    _compat.check_tf_keras_model(model)
    wrappers = collect_wrappers(model)
    with model.distribute_strategy.scope():
        apply_wrapper_masks(wrappers)
    return _unwrap_any(model)


@contextlib.contextmanager
def prune_scope():
    """Scope to load a model saved with Global MP wrappers (`.keras`/h5).

    Like tfmot's `prune_scope`, plus our schedules and our depthwise/separable
    kernels.
    """
    custom = {
        "PruneLowMagnitude": PruneLowMagnitude,
        "GlobalPolynomialDecay": schedules.GlobalPolynomialDecay,
        "GlobalConstantSparsity": schedules.GlobalConstantSparsity,
    }
    with keras.utils.custom_object_scope(custom), registry._extended_tfmot_registry():
        yield


# ------------------------------------------------ tfmot's own pruning, as a baseline
def tfmot_schedule(schedule):
    """tfmot's schedule firing at the same training steps as our global `schedule`.

    tfmot's wrapper counts steps from 1 (it increments `pruning_step` before the
    mask update of the step), our controller from 0 (`optimizer.iterations` before
    the step): steps shift by one, sparsities and frequency are the same.
    """
    config = schedules.validate_schedule(schedule).get_config()
    values = dict(config["config"])
    values["begin_step"] += 1
    if values["end_step"] != -1:
        values["end_step"] += 1
    kinds = {"GlobalConstantSparsity": _compat.tfmot.sparsity.keras.ConstantSparsity,
             "GlobalPolynomialDecay": _compat.tfmot.sparsity.keras.PolynomialDecay}
    if config["class_name"] not in kinds:
        raise ValueError("schedule must be a GlobalConstantSparsity or GlobalPolynomialDecay, "
                         f"got {type(schedule).__name__}")
    return kinds[config["class_name"]](**values)


def prune_low_magnitude_tfmot(model, pruning_schedule):
    """`tfmot.sparsity.keras.prune_low_magnitude` itself (one threshold per layer,
    tfmot's code path and mask update), under the steps of our global schedule.

    The baseline for side-by-side comparisons with Global MP: train it with
    `tfmot.sparsity.keras.UpdatePruningStep()`; `prune_tfmot_now` prunes once
    before training (one-shot).
    """
    _compat.check_tf_keras_model(model)
    if not _is_graph_model(model):
        raise ValueError(f"the tfmot baseline needs a Sequential or functional model, got "
                         f"{type(model).__name__} {model.name!r}")
    schedule = tfmot_schedule(pruning_schedule)

    def wrap(layer):  # tfmot's documented per-layer route: other layers stay as they are
        if registry.is_prunable(layer):
            return _compat.tfmot.sparsity.keras.prune_low_magnitude(
                layer, pruning_schedule=schedule)
        return layer

    with model.distribute_strategy.scope():
        return keras.models.clone_model(model, clone_function=wrap)


def prune_tfmot_now(model):
    """Runs tfmot's per-layer mask update of every wrapper once, at the schedule's
    first pruning step, and masks the weights (one-shot before fine-tuning). The
    wrappers keep that step, so training continues tfmot's schedule from there."""
    wrappers = collect_wrappers(model)
    with model.distribute_strategy.scope():
        for wrapper in wrappers:
            wrapper.pruning_step.assign(wrapper.pruning_schedule.begin_step)
            wrapper.pruning_obj.conditional_mask_update()
        apply_wrapper_masks(wrappers)
