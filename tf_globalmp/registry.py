"""Which weights of a tf-keras model are prunable (the policy), and what wraps them.

Prunable by default ("kernels"):

- Dense, EinsumDense, LocallyConnected1D/2D, Conv1D/2D/3D and their transposes:
  `kernel`; DepthwiseConv1D/2D: `depthwise_kernel` (tfmot leaves it dense); both
  kernels of SeparableConv1D/2D; Embedding: `embeddings`;
- MultiHeadAttention: its query, key, value and output kernels;
- RNN layers (LSTM, GRU, SimpleRNN, RNN over such cells or stacked cells): every
  cell's `kernel` and `recurrent_kernel`, also inside Bidirectional;
- TimeDistributed: whatever is prunable in the layer it distributes;
- layers implementing tfmot's `PrunableLayer` (or a `get_prunable_weights` method):
  the weights they return;
- all of the above held by custom layers or subclassed models (attributes, lists,
  dicts, nested layers) and nested models.

Never: biases, normalization weights, scalars, non-trainable weights. Every other
weight is listed as skipped (unsupported layer type) by `candidates`, so nothing is
left dense silently (see `tf_globalmp.choose`).

A *unit* is the layer a `PruneLowMagnitude` wrapper wraps: the outermost layer of a
known type above a prunable weight (a Bidirectional, not its LSTM; a
MultiHeadAttention, not its EinsumDense). Custom layers and models are not units:
their prunable sublayers are wrapped in place.
"""

import contextlib

from tf_globalmp import _compat
from tf_globalmp import choose

keras = _compat.keras
_layers = keras.layers
PruneLowMagnitude = _compat.PruneLowMagnitude

# Checked in order; the first isinstance match wins (DepthwiseConv2D is a Conv2D).
_KERNELS = (
    ((_layers.SeparableConv1D, _layers.SeparableConv2D), ("depthwise_kernel", "pointwise_kernel")),
    ((_layers.DepthwiseConv1D, _layers.DepthwiseConv2D), ("depthwise_kernel",)),
    ((_layers.Conv1D, _layers.Conv2D, _layers.Conv3D), ("kernel",)),  # transposes too
    ((_layers.Dense, _layers.EinsumDense, _layers.LocallyConnected1D,
      _layers.LocallyConnected2D), ("kernel",)),
    ((_layers.Embedding,), ("embeddings",)),
)
_NORMS = (
    _layers.BatchNormalization, _compat.tf.compat.v1.keras.layers.BatchNormalization,
    _layers.LayerNormalization, _layers.GroupNormalization, _layers.UnitNormalization,
)
_CONTAINERS = (_layers.MultiHeadAttention, _layers.RNN, _layers.Bidirectional,
               _layers.TimeDistributed)
_MHA_KERNELS = ("_query_dense", "_key_dense", "_value_dense", "_output_dense")
_POLICY_MARK = "_tf_globalmp_policy"
_TFMOT_REGISTRY_MODULE = _compat.prune_registry.__name__
_UNSUPPORTED_HINT = "give it get_prunable_weights() (tfmot's PrunableLayer) to prune it"


# ------------------------------------------------------------------ layer kinds
def kernel_names(layer):
    """Attribute names of the prunable kernels of a built-in layer, or None."""
    for classes, names in _KERNELS:
        if isinstance(layer, classes):
            return names
    return None


def user_prunable(layer):
    """True if the user made `layer` prunable: tfmot `PrunableLayer`, or a
    `get_prunable_weights` of its own (not one attached by tfmot's or our registry)."""
    if isinstance(layer, _compat.PrunableLayer):
        return True
    if callable(getattr(type(layer), "get_prunable_weights", None)):
        return True
    fn = layer.__dict__.get("get_prunable_weights")
    return callable(fn) and not getattr(fn, _POLICY_MARK, False) and \
        getattr(fn, "__module__", None) != _TFMOT_REGISTRY_MODULE


def _from_keras(layer):
    module = type(layer).__module__ or ""
    return module.startswith(("tf_keras.", "keras."))


def is_transparent(layer):
    """Models and custom layers: not wrapped themselves, their sublayers are (in place)."""
    if isinstance(layer, keras.Model):
        return True
    return not (user_prunable(layer) or kernel_names(layer) is not None
                or isinstance(layer, _CONTAINERS) or _from_keras(layer))


def is_unit_type(layer):
    """True if `layer` is of a type a wrapper can wrap (known by type, built or not)."""
    if isinstance(layer, (keras.Model, PruneLowMagnitude)):
        return False
    return user_prunable(layer) or kernel_names(layer) is not None or \
        isinstance(layer, _CONTAINERS)


def _rnn_cells(rnn):
    cell = rnn.cell
    return list(cell.cells) if isinstance(cell, _layers.StackedRNNCells) else [cell]


def _cell_weights(cell):
    if user_prunable(cell):
        return list(cell.get_prunable_weights())
    found = [getattr(cell, n, None) for n in ("kernel", "recurrent_kernel")]
    return found if all(isinstance(v, _compat.tf.Variable) for v in found) else []


def children(layer):
    """Direct sublayers of `layer`, in tracking order."""
    return list(layer._flatten_layers(include_self=False, recursive=False))  # noqa: SLF001


def policy_weights(layer):
    """The variables the policy prunes inside a built `layer` (any layer), in order."""
    if isinstance(layer, PruneLowMagnitude):
        return [w for w, _, _ in layer.pruning_vars]
    if not layer.built:
        return []
    if user_prunable(layer):
        return list(layer.get_prunable_weights())
    names = kernel_names(layer)
    if names is not None:
        return [getattr(layer, n) for n in names]
    if isinstance(layer, _layers.MultiHeadAttention):
        return [getattr(layer, n).kernel for n in _MHA_KERNELS]
    if isinstance(layer, _layers.RNN):
        return [w for cell in _rnn_cells(layer) for w in _cell_weights(cell)]
    if isinstance(layer, _layers.Bidirectional):
        return policy_weights(layer.forward_layer) + policy_weights(layer.backward_layer)
    if isinstance(layer, _layers.TimeDistributed):
        return policy_weights(layer.layer)
    if is_transparent(layer):
        out, seen = [], set()
        for child in children(layer):
            for w in policy_weights(child):
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append(w)
        return out
    return []


# Kept for callers of the former API: a unit's default prunable weights.
def is_prunable(layer):
    """True if `layer` is a unit type the policy prunes something of."""
    return is_unit_type(layer) and (not layer.built or bool(policy_weights(layer)))


def prunable_weights(layer):
    """The default prunable variables of a plain built unit `layer`, or []."""
    return policy_weights(layer) if is_unit_type(layer) else []


# ------------------------------------------------------------------ the walk
def _own_variables(layer):
    return list(layer._trainable_weights) + list(layer._non_trainable_weights)  # noqa: SLF001


def short_name(weight):
    return weight.name.split("/")[-1].split(":")[0]


def _never_or_unsupported(owner, weight, where):
    name, shape = short_name(weight), tuple(weight.shape)
    size = 1
    for d in shape:
        size *= int(d)
    never = choose.never_reason(name, size, weight.trainable, weight.dtype.is_floating,
                                weight.dtype.name, isinstance(owner, _NORMS))
    if never:
        return never
    return choose.UNSUPPORTED, f"unsupported layer type {type(where).__name__}: {_UNSUPPORTED_HINT}"


def _skip(unit, owner, weight, policy_ids):
    """The policy's (category, reason) for not pruning `weight`, or None."""
    if id(weight) in policy_ids:
        if not weight.dtype.is_floating:
            return choose.DTYPE, f"{weight.dtype.name} weight (quantized?): not pruned"
        return None
    skip = _never_or_unsupported(owner, weight, unit if unit is not None else owner)
    if skip[0] == choose.UNSUPPORTED and unit is not None and user_prunable(unit):
        return choose.USER, f"not returned by {type(unit).__name__}.get_prunable_weights()"
    return skip


def label(unit, below, weight):
    """`unit name/sublayer names.../weight name`: the pruner's and reports' label."""
    return "/".join([unit.name] + [l.name for l in below] + [short_name(weight)])


class _Labels:
    """Makes labels unique in order of appearance (`name`, `name#2`, ...)."""

    def __init__(self):
        self.used = set()

    def __call__(self, text):
        key, copy = text, 1
        while key in self.used:
            copy += 1
            key = f"{text}#{copy}"
        self.used.add(key)
        return key


def candidates(model):
    """Every weight of `model` once, as `choose.Candidate`s, with its unit.

    Returns [(candidate, unit)]: `unit` is the layer to wrap for it (None for a
    weight a custom layer owns itself). Wrappers already present count as units
    with their current pruning_vars; their mask/threshold/step are not listed.
    """
    out, seen_layers, seen_vars = [], set(), set()
    unique = _Labels()

    def visit(layer, chain, unit, unit_at, policy_ids):
        if id(layer) in seen_layers:
            return
        seen_layers.add(id(layer))
        if isinstance(layer, PruneLowMagnitude):
            seen_vars.update(id(v) for v in _own_variables(layer))
            inner = layer.layer
            visit(inner, chain, inner, len(chain), {id(w) for w, _, _ in layer.pruning_vars})
            return
        chain = chain + (layer,)
        if unit is None and not is_transparent(layer):
            unit, unit_at = layer, len(chain) - 1
            policy_ids = {id(w) for w in policy_weights(layer)} if is_unit_type(layer) else set()
        for weight in _own_variables(layer):
            if id(weight) in seen_vars:
                continue
            seen_vars.add(id(weight))
            if unit is not None:
                text = label(unit, chain[unit_at + 1:], weight)
            else:
                text = f"{layer.name}/{short_name(weight)}"
            skip = _skip(unit, layer, weight, policy_ids)
            out.append((choose.Candidate(unique(text), chain, weight, tuple(weight.shape), skip),
                        unit if skip is None else None))
        for child in children(layer):
            visit(child, chain, unit, unit_at, policy_ids)

    visit(model, (), None, None, set())
    return out


def layer_names(model):
    """Names of every layer reachable from `model` (for checking user choices)."""
    names, stack, seen = set(), [model], set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        names.add(layer.name)
        stack.extend(children(layer))
    return names


# ------------------------------------------------------------------ wrapping
def make_prunable(layer, weights=None):
    """Gives `layer` a `get_prunable_weights` returning `weights` (default: the
    policy's); returns it. A user's own `get_prunable_weights` is kept when
    `weights` is None."""
    if weights is None and user_prunable(layer):
        return layer
    if weights is None:
        def get_prunable_weights():
            return policy_weights(layer)
    else:
        chosen = list(weights)

        def get_prunable_weights():
            return list(chosen)
    setattr(get_prunable_weights, _POLICY_MARK, True)
    layer.__dict__["get_prunable_weights"] = get_prunable_weights  # untracked
    return layer


def _build_mha_projections(mha):
    """Builds the projections of a MultiHeadAttention rebuilt from a config (tf-keras
    builds them only at its first call; a wrapper needs their kernels first)."""
    if not getattr(mha, "_built_from_signature", False):
        return
    query, key, value = mha._query_shape, mha._key_shape, mha._value_shape  # noqa: SLF001
    heads = mha._num_heads  # noqa: SLF001
    value_dim = mha._value_dim or mha._key_dim  # noqa: SLF001
    shapes = {"_query_dense": query, "_key_dense": key or value, "_value_dense": value,
              "_output_dense": query[:-1].concatenate([heads, value_dim])}
    for name, shape in shapes.items():
        dense = getattr(mha, name)
        if not dense.built:
            dense.build(shape)


def _chosen_in_unit(unit, prunable, exclude):
    """The policy weights of a (freshly built) unit that the user's choice keeps."""
    if isinstance(unit, _layers.MultiHeadAttention):
        _build_mha_projections(unit)
    weights = policy_weights(unit)
    if prunable is None and not exclude:
        return weights
    owners = {}
    stack = [(unit, (unit,))]
    while stack:
        layer, chain = stack.pop()
        for v in _own_variables(layer):
            owners.setdefault(id(v), chain)
        stack.extend((c, chain + (c,)) for c in children(layer))
    keep = []
    for w in weights:
        c = choose.Candidate(short_name(w), owners.get(id(w), (unit,)), w, tuple(w.shape))
        if choose.decide(c, prunable, exclude)[0] == choose.PRUNED:
            keep.append(w)
    return keep


@contextlib.contextmanager
def loading_registry(prunable=None, exclude=None):
    """While active, tfmot's `PruneRegistry` supports every unit type of this policy.

    Needed when tfmot rebuilds wrappers from a config (loading a saved model): the
    fresh layers then get their prunable weights from this policy, restricted by the
    same `prunable`/`exclude` (normalized) the model was wrapped with.
    """
    registry = _compat.PruneRegistry
    saved = {name: registry.__dict__[name] for name in ("supports", "make_prunable")}

    def supports(cls, layer):
        return is_unit_type(layer) or saved["supports"].__func__(cls, layer)

    def make(cls, layer):
        if not is_unit_type(layer):
            return saved["make_prunable"].__func__(cls, layer)

        def get_prunable_weights():
            return _chosen_in_unit(layer, prunable, exclude)

        setattr(get_prunable_weights, _POLICY_MARK, True)
        layer.__dict__["get_prunable_weights"] = get_prunable_weights
        return layer

    registry.supports = classmethod(supports)
    registry.make_prunable = classmethod(make)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(registry, name, value)
