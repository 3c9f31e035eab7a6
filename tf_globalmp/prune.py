"""Pruning a model: tfmot's `PruneLowMagnitude` wrappers, one global schedule.

`prune_low_magnitude_global` mirrors `tfmot.sparsity.keras.prune_low_magnitude`:
the prunable layers are wrapped in tfmot's own wrapper (so `strip_pruning`,
`prune_scope`, `PruningSummaries` keep working), but the wrappers' own per-layer
mask update is switched off: the masks are computed for the whole network at once
by the controller (`UpdateGlobalPruningStep` / `GlobalPruner`). The model surgery
(which layers, wrapping, finding wrappers, unwrapping) is `wrapping`; the channel
granularity is `channels.rule`.
"""

import contextlib
import dataclasses

from tf_globalmp import _compat
from tf_globalmp import choose
from tf_globalmp import driver
from tf_globalmp import guards
from tf_globalmp import min_threshold
from tf_globalmp import registry
from tf_globalmp import schedules
from tf_globalmp import wrapping
from tf_globalmp.channels import rule as channel_rule
from tf_globalmp.channels import select as channel_select

keras = _compat.keras
PruneLowMagnitude = _compat.PruneLowMagnitude

# How masks are computed; carried by the model, read by the controller.
PruningOptions = driver.PruningOptions


def prune_low_magnitude_global(
    model,
    pruning_schedule,
    min_weights=0,
    min_weights_fraction=None,
    redistribution="global",
    mask_rule=None,
    distribution="global",
    prunable=None,
    exclude=None,
    granularity="weight",
    min_channels=1,
    channel_score=channel_select.DEFAULT_SCORE,
    channel_multiple=1,
):
    """Wraps `model` for Global Magnitude Pruning under `pruning_schedule`.

    Args:
      model: a built tf-keras Sequential, functional or subclassed model (nested
        models, custom layers and shared layers included). Sequential/functional
        models are cloned like tfmot does (the clone reuses the original layers and
        their weights); subclassed models, and custom layers holding prunable
        layers, get their sublayers replaced by wrappers in place.
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
      prunable: prune only these (default: every weight the policy in
        `tf_globalmp.registry` allows): layer names, layer classes or predicates
        `(layer, weight) -> bool`, one or a list (see `tf_globalmp.choose`).
      exclude: never prune these (same forms), e.g. `["conv2d", "predictions"]` to
        keep the first conv and the classifier dense.

      granularity: "weight" (default) or "channel": the unit is a channel group (an
        output channel with its bias, BatchNorm entries and the consumers' input
        slices, joined across residual Adds and Concatenates); the schedule's sparsity
        is then the fraction of groups removed, exactly. Functional/Sequential models
        only; see `tf_globalmp.channels` (and `tf_globalmp.shrink` for the smaller
        model). `exclude` then takes layer names/classes kept unpruned; `distribution`
        "uniform" is the per-layer baseline.
      min_channels: channel granularity: every layer keeps at least this many output
        channels (Minimum Threshold in channels).
      channel_score: channel granularity: "relative" (default: |w| over its kernel's
        mean nonzero |w|, averaged over the group), "mean" (mean |w| of the group),
        "l1" or "l2"; see `channels.select`.
      channel_multiple: channel granularity: round every layer's kept output channels
        to a multiple of this (e.g. 16: XNNPACK runs other widths about as slowly as the
        next multiple); the group count is then close to, not exactly, the target.

    Logs one table of every weight, pruned or not and why (absl info); a skipped
    weight holding >= 1% of the model's parameters is a warning naming it.

    Returns:
      The wrapped model. Train it with `UpdateGlobalPruningStep()` in `fit`, or
      `GlobalPruner(model).update(step)` in a custom loop.
    """
    _compat.check_tf_keras_model(model)
    if granularity == "channel":
        channel_rule.check_unstructured_defaults(
            min_weights=min_weights, min_weights_fraction=min_weights_fraction,
            redistribution=redistribution, mask_rule=mask_rule, prunable=prunable)
        return channel_rule.prune_channels(model, pruning_schedule, min_channels,
                                           channel_score, exclude, distribution,
                                           channel_multiple)
    if granularity != "weight":
        raise ValueError(f"granularity must be 'weight' or 'channel', got {granularity!r}")
    for name, value, default in (("min_channels", min_channels, 1),
                                 ("channel_score", channel_score, channel_select.DEFAULT_SCORE),
                                 ("channel_multiple", channel_multiple, 1)):
        if value != default:
            raise ValueError(f"{name} applies with granularity='channel' only, got {name}="
                             f"{value!r} with granularity={granularity!r}")
    schedules.validate_schedule(pruning_schedule)
    options = PruningOptions(min_weights, min_weights_fraction, redistribution, mask_rule,
                             distribution)
    if not model.built:
        raise ValueError(
            f"model {model.name!r} is not built: give its first layer an input shape, "
            "call model.build(input_shape), or call it on a batch first"
        )
    todo = wrapping.plan(model, prunable, exclude)
    rows, units = todo.rows, todo.units
    if not units:
        chosen = "" if prunable is None and exclude is None else (
            f" left by prunable={prunable!r}, exclude={exclude!r}")
        raise ValueError(
            f"model {model.name!r} has no prunable layer{chosen} (Dense, EinsumDense, "
            "Conv*, DepthwiseConv*, SeparableConv*, Embedding, MultiHeadAttention, "
            "RNN layers or a PrunableLayer):\n" + choose.format_table(rows)
        )
    if mask_rule is None:  # MT must fit the schedule's highest sparsity: fail now
        min_threshold.check_feasible(
            [w.shape.num_elements() for _, weights in units.values() for w in weights],
            schedules.max_sparsity(pruning_schedule), min_weights, min_weights_fraction)
    wrap_pass = wrapping.Wrapping(pruning_schedule, units, todo.containers)
    with model.distribute_strategy.scope():
        wrapped = wrap_pass(model)
    done = {id(w.layer) for w in wrapping.collect_wrappers(wrapped)}
    lost = {id(w) for key, (_, weights) in units.items() if key not in done for w in weights}
    if lost:  # held by a custom layer outside its attributes, lists and dicts
        rows = [dataclasses.replace(
            r, category=choose.UNSUPPORTED,
            reason="its layer is held where it cannot be replaced (not in an attribute, "
                   "list or dict of its custom layer)") if id(w) in lost else r
            for r, w in zip(rows, todo.weights)]
    choose.log_coverage(rows, model.name)
    setattr(wrapped, wrapping.OPTIONS_ATTR, options)
    return guards.install(wrapped)  # fit needs UpdateGlobalPruningStep; save, a route


def strip_pruning(model):
    """Re-applies the final masks, then removes the wrappers.

    Returns a plain tf-keras model whose pruned weights are exactly zero
    (Sequential/functional: a clone sharing the layers; subclassed: the same model,
    unwrapped in place).
    """
    _compat.check_tf_keras_model(model)
    wrappers = wrapping.collect_wrappers(model)
    with model.distribute_strategy.scope():
        wrapping.apply_wrapper_masks(wrappers)
    return wrapping.unwrap_any(model)


@contextlib.contextmanager
def prune_scope(prunable=None, exclude=None):
    """Scope to load a model saved with Global MP wrappers (`.keras`/h5).

    Like tfmot's `prune_scope`, plus our schedules and every layer type our policy
    wraps (depthwise kernels, Bidirectional, TimeDistributed, ...). A model wrapped
    with `prunable=`/`exclude=` choosing among one layer's weights (a predicate) must
    be loaded with the same choice.
    """
    prunable = choose.normalize(prunable, "prunable", keras.layers.Layer)
    exclude = choose.normalize(exclude, "exclude", keras.layers.Layer)
    custom = {
        "PruneLowMagnitude": PruneLowMagnitude,
        "GlobalPolynomialDecay": schedules.GlobalPolynomialDecay,
        "GlobalConstantSparsity": schedules.GlobalConstantSparsity,
    }
    with keras.utils.custom_object_scope(custom), \
            registry.loading_registry(prunable, exclude):
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
    if not wrapping.is_graph_model(model):
        raise ValueError(f"the tfmot baseline needs a Sequential or functional model, got "
                         f"{type(model).__name__} {model.name!r}")
    schedule = tfmot_schedule(pruning_schedule)

    def wrap(layer):  # tfmot's documented per-layer route: other layers stay as they are
        if registry.is_prunable(layer) and _compat.PruneRegistry.supports(layer):
            return _compat.tfmot.sparsity.keras.prune_low_magnitude(
                layer, pruning_schedule=schedule)
        return layer

    with model.distribute_strategy.scope():
        return keras.models.clone_model(model, clone_function=wrap)


def prune_tfmot_now(model):
    """Runs tfmot's per-layer mask update of every wrapper once, at the schedule's
    first pruning step, and masks the weights (one-shot before fine-tuning). The
    wrappers keep that step, so training continues tfmot's schedule from there."""
    wrappers = wrapping.collect_wrappers(model)
    with model.distribute_strategy.scope():
        for wrapper in wrappers:
            wrapper.pruning_step.assign(wrapper.pruning_schedule.begin_step)
            wrapper.pruning_obj.conditional_mask_update()
        wrapping.apply_wrapper_masks(wrappers)
