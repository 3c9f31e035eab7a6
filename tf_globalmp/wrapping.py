"""Model surgery for the pruning wrappers: which layers get tfmot's `PruneLowMagnitude`
(`plan`), wrapping them in place of the plain layers (`Wrapping`: graph models cloned
like tfmot does, custom layers and subclassed models edited in place), finding the
wrappers of a model again (`collect_wrappers`), applying their masks, and unwrapping.

No pruning policy here: `prune` (the public entry points) and `channels.rule` decide
what to wrap and attach the options the controller reads (`OPTIONS_ATTR`).
"""

import dataclasses

import tensorflow as tf

from tf_globalmp import _compat
from tf_globalmp import choose
from tf_globalmp import registry

keras = _compat.keras
PruneLowMagnitude = _compat.PruneLowMagnitude

# Attribute under which a wrapped model carries its Global MP options in memory.
OPTIONS_ATTR = "_tf_globalmp_options"


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


def is_graph_model(model):
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


class Wrapping:
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
        elif isinstance(layer, keras.Model) and is_graph_model(layer):
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


def all_layers(model):
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
    return [l for l in all_layers(model) if isinstance(l, PruneLowMagnitude)]


def apply_wrapper_masks(wrappers):
    """weight <- weight * mask for every pruned weight (eager or in a graph)."""
    for wrapper in wrappers:
        for weight, mask, _ in wrapper.pruning_vars:
            weight.assign(weight * tf.cast(mask, weight.dtype))


def unwrap_any(layer, memo=None):
    """`layer` with every wrapper below it replaced by its plain layer (graph models
    cloned, custom layers edited in place), each layer once (`memo`)."""
    memo = {} if memo is None else memo
    if id(layer) in memo:
        return memo[id(layer)]
    if isinstance(layer, PruneLowMagnitude):
        new = layer.layer
        if not hasattr(new, "_batch_input_shape") and hasattr(layer, "_batch_input_shape"):
            new._batch_input_shape = layer._batch_input_shape
    elif isinstance(layer, keras.Model) and is_graph_model(layer):
        new = keras.models.clone_model(layer, clone_function=lambda l: unwrap_any(l, memo))
    elif registry.is_transparent(layer):  # subclassed models, custom layers: in place
        new = _replace_children(layer, lambda l: unwrap_any(l, memo))
    else:
        new = layer
    memo[id(layer)] = new
    return new
