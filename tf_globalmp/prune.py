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
from tf_globalmp import choose
from tf_globalmp import driver
from tf_globalmp import guards
from tf_globalmp import min_threshold
from tf_globalmp import registry
from tf_globalmp import schedules

keras = _compat.keras
PruneLowMagnitude = _compat.PruneLowMagnitude

# Attribute under which a wrapped model carries its Global MP options in memory.
OPTIONS_ATTR = "_tf_globalmp_options"


# How masks are computed; carried by the model, read by the controller.
PruningOptions = driver.PruningOptions


def _no_layer_update():
    return tf.no_op("global_pruning_no_layer_update")


def disable_layer_update(wrapper):
    """Turns off tfmot's per-layer mask update of a built wrapper (idempotent)."""
    if wrapper.pruning_obj is not None:
        wrapper.pruning_obj.conditional_mask_update = _no_layer_update


def _wrap(layer, schedule, weights):
    wrapper = PruneLowMagnitude(registry.make_prunable(layer, weights),
                                pruning_schedule=schedule)
    if layer.built:
        wrapper.build(getattr(layer, "_build_input_shape", None))
        disable_layer_update(wrapper)
    return wrapper


def _is_graph_model(model):
    return isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)


def _replace_in(value, fn):
    """(value with every layer l in it replaced by fn(l), changed). Lists and dicts
    (tf-keras' ListWrapper/_DictWrapper included) change in place, tuples are rebuilt."""
    if isinstance(value, keras.layers.Layer):
        new = fn(value)
        return new, new is not value
    if isinstance(value, list):
        changed = False
        for i, item in enumerate(list(value)):
            new, c = _replace_in(item, fn)
            if c:
                value[i] = new
                changed = True
        return value, changed
    if isinstance(value, dict):
        changed = False
        for key, item in list(value.items()):
            new, c = _replace_in(item, fn)
            if c:
                value[key] = new
                changed = True
        return value, changed
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        items = [_replace_in(item, fn) for item in value]
        if any(c for _, c in items):
            return tuple(new for new, _ in items), True
    return value, False


def _replace_children(layer, fn):
    """Replaces, in place, the sublayers `layer` holds in attributes, lists and dicts
    (nested too) by fn(sublayer); returns `layer`. The layer order tf-keras tracks is
    kept (a replaced attribute would otherwise move last), so wrappers are listed in
    the order of the plain model's layers."""
    tracked = getattr(layer, "_self_tracked_trackables", None)
    before = list(tracked) if isinstance(tracked, list) else None
    replaced = {}

    def record(sublayer):
        new = fn(sublayer)
        replaced[id(sublayer)] = new
        return new

    for name, value in list(vars(layer).items()):
        if name.startswith("_self_"):  # tf-keras' own tracking lists
            continue
        new, changed = _replace_in(value, record)
        if changed and new is not value:
            setattr(layer, name, new)
    if before is not None and replaced:
        after = layer._self_tracked_trackables  # noqa: SLF001
        ordered = [replaced.get(id(t), t) for t in before]
        ids = {id(t) for t in ordered}
        after[:] = ordered + [t for t in after if id(t) not in ids]
    return layer


class _Wrapping:
    """One wrapping pass: the units to wrap, their chosen weights, shared layers once."""

    def __init__(self, schedule, units, containers):
        self.schedule = schedule
        self.units = units  # id(unit) -> (unit, [weights])
        self.containers = containers  # ids of custom layers / models above a unit
        self.memo = {}

    def __call__(self, layer):
        if isinstance(layer, PruneLowMagnitude):
            return layer
        if id(layer) in self.memo:
            return self.memo[id(layer)]
        if id(layer) in self.units:
            new = _wrap(layer, self.schedule, self.units[id(layer)][1])
        elif isinstance(layer, keras.Model) and _is_graph_model(layer):
            new = keras.models.clone_model(layer, clone_function=self)
        elif id(layer) in self.containers:
            new = _replace_children(layer, self)
        else:
            new = layer
        self.memo[id(layer)] = new
        return new


@dataclasses.dataclass(frozen=True)
class Plan:
    """What wrapping will prune: the coverage table and the layers to wrap."""

    rows: tuple  # choose.Row per weight of the model, in walk order
    weights: tuple  # the variable of each row
    units: dict  # id(unit) -> (unit, [weights to prune, policy order])
    containers: frozenset  # ids of custom layers / models above a unit


def plan(model, prunable=None, exclude=None):
    """What `prune_low_magnitude_global` will prune in `model`, without changing it.

    Raises ValueError for names in `prunable`/`exclude` that match no layer.
    """
    prunable = choose.normalize(prunable, "prunable", keras.layers.Layer)
    exclude = choose.normalize(exclude, "exclude", keras.layers.Layer)
    found = registry.candidates(model)
    known = registry.layer_names(model) | {c.label for c, _ in found}
    choose.check_names("prunable", prunable, known, model.name)
    choose.check_names("exclude", exclude, known, model.name)
    rows = choose.coverage_rows([c for c, _ in found], prunable, exclude)
    chosen, containers = {}, set()
    for (c, unit), row in zip(found, rows):
        if row.pruned:
            chosen.setdefault(id(unit), (unit, set()))[1].add(id(c.weight))
            containers.update(id(l) for l in c.chain[:c.chain.index(unit)])
    units = {key: (unit, [w for w in registry.policy_weights(unit) if id(w) in ids])
             for key, (unit, ids) in chosen.items()}
    return Plan(tuple(rows), tuple(c.weight for c, _ in found), units, frozenset(containers))


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
    channel_score="mean",
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
      channel_score: channel granularity: "mean" (mean |w| of the group, default),
        "l1" or "l2".

    Logs one table of every weight, pruned or not and why (absl info); a skipped
    weight holding >= 1% of the model's parameters is a warning naming it.

    Returns:
      The wrapped model. Train it with `UpdateGlobalPruningStep()` in `fit`, or
      `GlobalPruner(model).update(step)` in a custom loop.
    """
    _compat.check_tf_keras_model(model)
    if granularity == "channel":
        from tf_globalmp.channels import rule as channel_rule  # noqa: PLC0415

        channel_rule.check_unstructured_defaults(
            min_weights=min_weights, min_weights_fraction=min_weights_fraction,
            redistribution=redistribution, mask_rule=mask_rule, prunable=prunable)
        return channel_rule.prune_channels(model, pruning_schedule, min_channels,
                                           channel_score, exclude, distribution)
    if granularity != "weight":
        raise ValueError(f"granularity must be 'weight' or 'channel', got {granularity!r}")
    schedules.validate_schedule(pruning_schedule)
    options = PruningOptions(min_weights, min_weights_fraction, redistribution, mask_rule,
                             distribution)
    if not model.built:
        raise ValueError(
            f"model {model.name!r} is not built: give its first layer an input shape, "
            "call model.build(input_shape), or call it on a batch first"
        )
    todo = plan(model, prunable, exclude)
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
    wrapping = _Wrapping(pruning_schedule, units, todo.containers)
    with model.distribute_strategy.scope():
        wrapped = wrapping(model)
    done = {id(w.layer) for w in collect_wrappers(wrapped)}
    lost = {id(w) for key, (_, weights) in units.items() if key not in done for w in weights}
    if lost:  # held by a custom layer outside its attributes, lists and dicts
        rows = [dataclasses.replace(
            r, category=choose.UNSUPPORTED,
            reason="its layer is held where it cannot be replaced (not in an attribute, "
                   "list or dict of its custom layer)") if id(w) in lost else r
            for r, w in zip(rows, todo.weights)]
    choose.log_coverage(rows, model.name)
    setattr(wrapped, OPTIONS_ATTR, options)
    return guards.install(wrapped)  # fit needs UpdateGlobalPruningStep; save, a route


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


def _unwrap_any(layer, memo=None):
    memo = {} if memo is None else memo
    if id(layer) in memo:
        return memo[id(layer)]
    if isinstance(layer, PruneLowMagnitude):
        new = layer.layer
        if not hasattr(new, "_batch_input_shape") and hasattr(layer, "_batch_input_shape"):
            new._batch_input_shape = layer._batch_input_shape
    elif isinstance(layer, keras.Model) and _is_graph_model(layer):
        new = keras.models.clone_model(layer, clone_function=lambda l: _unwrap_any(l, memo))
    elif registry.is_transparent(layer):  # subclassed models, custom layers: in place
        new = _replace_children(layer, lambda l: _unwrap_any(l, memo))
    else:
        new = layer
    memo[id(layer)] = new
    return new


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
    if not _is_graph_model(model):
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
    wrappers = collect_wrappers(model)
    with model.distribute_strategy.scope():
        for wrapper in wrappers:
            wrapper.pruning_step.assign(wrapper.pruning_schedule.begin_step)
            wrapper.pruning_obj.conditional_mask_update()
        apply_wrapper_masks(wrappers)
