"""Which weights of a Keras 3 model Global MP prunes, and why the others are not.

`prunable_kernels` lists the pruned weights; `coverage` lists every weight with the
reason it is pruned or not (`tf_globalmp.choose` rows), so the pruner and the
reports count the same set.
"""

import keras
import numpy as np

from tf_globalmp import choose

# Prunable kernels of Keras 3 layers, by attribute. Checked in order, first match
# wins. Dense, EinsumDense and BaseConv keep the variable in `_kernel` (`kernel` is
# a property that adds LoRA); Keras 3 names the depthwise kernel `kernel`.
_L = keras.layers
_KERNELS = (
    ((_L.SeparableConv1D, _L.SeparableConv2D), ("depthwise_kernel", "pointwise_kernel")),
    ((_L.DepthwiseConv1D, _L.DepthwiseConv2D), ("kernel",)),
    ((_L.Conv1DTranspose, _L.Conv2DTranspose, _L.Conv3DTranspose), ("kernel",)),
    ((_L.Conv1D, _L.Conv2D, _L.Conv3D), ("kernel",)),
    ((_L.Dense, _L.EinsumDense), ("kernel",)),
    ((_L.Embedding,), ("embeddings",)),
)
_NORMS = tuple(getattr(_L, n) for n in (
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "RMSNormalization",
    "UnitNormalization", "SpectralNormalization") if hasattr(_L, n))


def _kernel_variable(layer, name):
    for attr in ("_" + name, name):
        value = layer.__dict__.get(attr)
        if isinstance(value, keras.Variable):
            return value
    return None


def _user_prunable(layer):
    return callable(getattr(type(layer), "get_prunable_weights", None))


def _policy_variables(layer):
    """The variables the policy prunes that `layer` itself owns (built layers)."""
    attrs = next((a for classes, a in _KERNELS if isinstance(layer, classes)), None)
    if attrs is None and all(_kernel_variable(layer, n) is not None
                             for n in ("kernel", "recurrent_kernel")):
        attrs = ("kernel", "recurrent_kernel")  # an RNN cell (LSTM, GRU, SimpleRNN, ...)
    if attrs is None or not layer.built:
        return []
    return [v for v in (_kernel_variable(layer, n) for n in attrs) if v is not None]


def _own_variables(layer):
    return list(layer._trainable_variables) + list(layer._non_trainable_variables)  # noqa: SLF001


def _skip(layer, variable, policy, where):
    """The policy's (category, reason) for not pruning `variable` of `layer`, or None."""
    name = variable.path.split("/")[-1]
    if id(variable) in policy:
        if not keras.backend.is_float_dtype(variable.dtype):
            return choose.DTYPE, f"{variable.dtype} weight (quantized): not pruned"
        return None
    size = int(np.prod(variable.shape))
    never = choose.never_reason(name, size, variable.trainable,
                                keras.backend.is_float_dtype(variable.dtype),
                                str(variable.dtype), isinstance(layer, _NORMS))
    if never:
        return never
    if _user_prunable(where):
        return choose.USER, f"not returned by {type(where).__name__}.get_prunable_weights()"
    return choose.UNSUPPORTED, (f"unsupported layer type {type(where).__name__}: give it "
                                "get_prunable_weights() to prune it")


def _candidates(model):
    """Every variable of `model` once, as `choose.Candidate`s labelled by path."""
    out, seen_layers, seen_vars, used = [], set(), set(), set()

    def visit(layer, chain, user):
        if id(layer) in seen_layers:
            return
        seen_layers.add(id(layer))
        chain = chain + (layer,)
        if user is None and _user_prunable(layer) and layer.built:
            user = (layer, {id(v) for v in layer.get_prunable_weights()})
        policy = user[1] if user else {id(v) for v in _policy_variables(layer)}
        for variable in _own_variables(layer):
            if id(variable) in seen_vars:
                continue
            seen_vars.add(id(variable))
            key, copy = variable.path, 1
            while key in used:  # same-named layers in different nested models
                copy += 1
                key = f"{variable.path}#{copy}"
            used.add(key)
            skip = _skip(layer, variable, policy, user[0] if user else layer)
            out.append(choose.Candidate(key, chain, variable, tuple(variable.shape), skip))
        # Keras 3 has no public layer walk.
        for child in layer._flatten_layers(include_self=False, recursive=False):  # noqa: SLF001
            visit(child, chain, user)

    visit(model, (), None)
    return out


def _layer_names(model):
    return {l.name for l in model._flatten_layers(include_self=True, recursive=True)}  # noqa: SLF001


def coverage(model, prunable=None, exclude=None):
    """(candidates, rows): every weight of `model` as a `choose.Candidate` and its
    coverage table row (`choose.Row`: pruned or not, and why). Raises ValueError for
    names in `prunable`/`exclude` matching no layer."""
    prunable = choose.normalize(prunable, "prunable", keras.layers.Layer)
    exclude = choose.normalize(exclude, "exclude", keras.layers.Layer)
    found = _candidates(model)
    known = _layer_names(model) | {c.label for c in found}
    choose.check_names("prunable", prunable, known, model.name)
    choose.check_names("exclude", exclude, known, model.name)
    return found, choose.coverage_rows(found, prunable, exclude)


def prunable_kernels(model, prunable=None, exclude=None, log=True):
    """[(name, variable)] of every weight Global MP prunes in a built Keras 3 model.

    By default: the kernels of Dense, EinsumDense (so MultiHeadAttention's query,
    key, value and output kernels), Conv1D/2D/3D and their transposes,
    DepthwiseConv1D/2D, both kernels of SeparableConv1D/2D, Embedding's embeddings,
    every RNN cell's kernel and recurrent kernel (LSTM, GRU, SimpleRNN, also inside
    Bidirectional), whatever TimeDistributed holds, the weights a layer's own
    `get_prunable_weights()` returns, at any depth: nested models, custom layers
    (attributes, lists, dicts). Shared layers count once; names are variable paths.
    Biases, normalization weights and scalars never; integer (quantized) kernels
    are skipped.

    prunable, exclude: layer names, layer classes or predicates `(layer, weight)
      -> bool`, one or a list (`tf_globalmp.choose`): prune only / never these.
    log: log the coverage table (absl info) and warn for every skipped weight
      holding >= 1% of the model's parameters.
    """
    found, rows = coverage(model, prunable, exclude)
    if log:
        choose.log_coverage(rows, model.name)
    return [(c.label, c.weight) for c, r in zip(found, rows) if r.pruned]
