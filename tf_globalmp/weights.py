"""The prunable weights of a tf-keras model, labelled: the one set the pruner, the
sparsity report and the FLOPs report count.

A wrapped model's set is its wrappers' `pruning_vars` (what `GlobalPruner` prunes);
a plain or stripped model's set is the policy's (`registry`), narrowed by the same
`prunable=`/`exclude=` a wrapping would take.
"""

import dataclasses

import numpy as np

from tf_globalmp import _compat
from tf_globalmp import registry
from tf_globalmp import wrapping

keras = _compat.keras


@dataclasses.dataclass(frozen=True)
class PrunableWeight:
    label: str  # unit name / sublayers / weight name, e.g. "bidirectional/forward_lstm/lstm_cell/kernel"
    weight: object  # the variable
    mask: object  # the wrapper's mask variable, or None (plain model)
    unit: object  # the wrapped (or wrappable) layer holding it
    owner: object  # the layer owning the variable (unit itself, or a sublayer)

    @property
    def size(self):
        return int(np.prod(self.weight.shape))

    def effective(self):
        """weight * mask as a numpy array (the weight itself without a mask)."""
        value = self.weight.numpy()
        if self.mask is None:
            return value
        return value * self.mask.numpy().astype(value.dtype)


def _chains_below(unit):
    """id(variable) -> layers from below `unit` down to the variable's owner."""
    chains, stack, seen = {}, [(unit, ())], set()
    while stack:
        layer, chain = stack.pop(0)
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        for v in registry._own_variables(layer):  # noqa: SLF001
            chains.setdefault(id(v), chain)
        stack.extend((c, chain + (c,)) for c in registry.children(layer))
    return chains


def of_wrappers(wrappers):
    """[PrunableWeight] of the wrappers' pruning_vars, in wrapper order (the pruner's)."""
    out, unique = [], registry._Labels()  # noqa: SLF001
    for wrapper in wrappers:
        unit = wrapper.layer
        chains = _chains_below(unit)
        for weight, mask, _ in wrapper.pruning_vars:
            below = chains.get(id(weight), ())
            out.append(PrunableWeight(unique(registry.label(unit, below, weight)), weight,
                                      mask, unit, below[-1] if below else unit))
    return out


def prunable_weights_of_model(model, prunable=None, exclude=None):
    """The labelled prunable weights of `model`, in the pruner's order.

    Wrapped model: every wrapper's pruning_vars, with their masks (`prunable` and
    `exclude` must then be None: the wrapping already chose). Plain or stripped
    model: the policy's prunable weights, narrowed by `prunable`/`exclude`
    (`tf_globalmp.choose`), without masks.
    """
    _compat.check_tf_keras_model(model)
    wrappers = wrapping.collect_wrappers(model)
    if wrappers:
        if prunable is not None or exclude is not None:
            raise ValueError(
                f"model {model.name!r} is wrapped: its prunable weights are its wrappers'; "
                f"got prunable={prunable!r}, exclude={exclude!r}"
            )
        return of_wrappers(wrappers)
    todo = wrapping.plan(model, prunable, exclude)
    out = []
    for (candidate, unit), row in zip(registry.candidates(model), todo.rows):
        if row.pruned:
            below = candidate.chain[candidate.chain.index(unit) + 1:]
            out.append(PrunableWeight(row.label, candidate.weight, None, unit,
                                      below[-1] if below else unit))
    return out


def coverage(model, prunable=None, exclude=None):
    """The coverage table rows (`choose.Row`) of a plain model: every weight, pruned
    or not and why (what `prune_low_magnitude_global` logs)."""
    return list(wrapping.plan(model, prunable, exclude).rows)
