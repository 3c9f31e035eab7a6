"""Channel groups: scores, the global selection with a per-layer minimum, costs.

Pure numpy, no Keras. A model's channel groups come from `channels.graph`, which
describes every weight that has channel structure by a spec:

* `KernelSpec`: a Conv/Dense/Depthwise kernel. Its entries along `in_axis` belong to
  the groups `in_groups` (one per index; -1: a channel that is never pruned), those
  along `out_axis` to `out_groups`. An entry belongs to a group if its input *or* its
  output index does (pruning either end removes it); `positions` is how many times
  the kernel is applied (output positions; 1 for Dense), for FLOPs.
* `ParamSpec`: a per-channel vector (bias, BatchNorm gamma/beta/statistics, PReLU
  alpha) sliced along `axis` by `groups`.

Score of a group (`group_scores`), over its kernel entries only (biases and
normalization weights have other scales and are not scored, as the unstructured
method never scores them either); an entry shared by two groups counts in both:

* "relative" (default): mean of |w| / s over the group's entries, where s is the mean
  |w| of the nonzero entries of the entry's own kernel: each layer's magnitudes
  measured against that layer's typical magnitude. A convolution followed by
  BatchNorm computes the same function whatever its kernel's scale, and layers of
  wider fan-in start (He init) and end (weight decay) smaller, so raw magnitudes of
  two layers are not on one scale. Measured (BENCHMARKS.md, ResNet-20 CIFAR-10, FLOPs
  budgets 30% / 50%): it keeps the layers balanced and fine-tunes level with the
  uniform per-layer baseline, where "mean" loses 9-29 points.
* "mean": mean |w| -- sum |w| / number of entries. The Global MP rule made
  size-neutral, the same normalisation as the paper's structured FastGRNN ranking
  (`structured.py`); across layers it removes the small-magnitude wide layers first
  (many cheap channels for a FLOPs budget: 42% of ResNet-20's groups and 67% of its
  kernel weights for 30% of its FLOPs).
* "l1": sum |w| (favours channels of large layers and large groups),
* "l2": sqrt(sum w^2) (the same bias, the usual filter-norm criterion).

Entries already pruned by another group count as zeros (the scores are computed on
the masked weights), so a pruned group scores 0 and is never brought back.

Selection (`select_groups`): the budget unit is the **channel group**: `n_remove`
groups are removed, exactly. A group is one output channel of a layer together with
everything that must go with it; channels tied by a residual Add (or any merge) are
one group, counted once. `round(sparsity * n_groups)` groups are removed, so the count
is exact and nested (a higher sparsity removes a superset). Minimum Threshold: every
layer (`layer_groups`: the groups of each producing layer's output channels) keeps at
least `min(min_channels, its channels)` of its output channels, its highest-scoring
ones; the rest of the budget goes to the highest scores network-wide. Ties: the
lower group index is kept.

Widths rounded to a multiple (`channel_multiple`) and the searches for a FLOPs target
are in `channels.budget`.

Costs (`costs`): kernel weights, kernel multiply-adds (the `flops.py` convention:
kernel weights x positions) and producer channels, total and kept, so the three
units can be reported side by side.
"""

import dataclasses

import numpy as np

SCORES = ("mean", "relative", "l1", "l2")
DEFAULT_SCORE = "relative"
FIXED = -1  # group id of a channel that is never pruned


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """A kernel's channel structure (see the module doc). Arrays are int64 group ids."""

    name: str
    shape: tuple
    in_axis: int | None
    in_groups: np.ndarray | None
    out_axis: int | None
    out_groups: np.ndarray | None
    positions: int = 1

    def axes(self):
        """[(axis, groups)] of the axes with channel structure."""
        return [(a, g) for a, g in ((self.in_axis, self.in_groups),
                                    (self.out_axis, self.out_groups)) if a is not None]


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """A per-channel parameter sliced along `axis` by `groups`.

    role: "bias" (zeroed with its group; zero when the group is dead), "stat"
    (zeroed with its group: BatchNorm moving statistics) or "slice" (only sliced by
    `shrink`, e.g. PReLU alpha: it maps 0 to 0 anyway)."""

    name: str
    shape: tuple
    axis: int
    groups: np.ndarray
    role: str = "bias"


def check_score(score):
    if score not in SCORES:
        raise ValueError(f"channel_score must be one of {SCORES}, got {score!r}")
    return score


def _other_axes(ndim, axis):
    return tuple(a for a in range(ndim) if a != axis)


def group_scores(kernels, arrays, n_groups, score=DEFAULT_SCORE):
    """Score of every group (float64, shape (n_groups,)); see the module doc.

    Args:
      kernels: `KernelSpec`s; arrays: their (masked) values, same order.
      n_groups: number of groups (ids 0..n_groups-1).
      score: "mean", "relative", "l1" or "l2".
    """
    check_score(score)
    total = np.zeros(n_groups, np.float64)
    count = np.zeros(n_groups, np.float64)
    for spec, w in zip(kernels, arrays):
        a = np.asarray(w, np.float64)
        if a.shape != tuple(spec.shape):
            raise ValueError(f"weight {spec.name!r} has shape {a.shape}, its spec "
                             f"{tuple(spec.shape)}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"weight {spec.name!r} holds NaN or inf (training diverged?)")
        a = a * a if score == "l2" else np.abs(a)
        if score == "relative":
            live = a[a > 0]
            if live.size:
                a = a / live.mean()
        axes = spec.axes()
        for axis, groups in axes:
            per_index = a.sum(axis=_other_axes(a.ndim, axis))
            valid = groups >= 0
            np.add.at(total, groups[valid], per_index[valid])
            np.add.at(count, groups[valid], a.size // a.shape[axis])
        if len(axes) == 2:  # an entry whose input and output are in one group: once
            (ai, gi), (ao, go) = axes
            same = (gi[:, None] == go[None, :]) & (gi[:, None] >= 0)
            if same.any():
                moved = np.moveaxis(a, (ai, ao), (-2, -1))
                per_pair = moved.reshape(-1, a.shape[ai], a.shape[ao]).sum(axis=0)
                rows, cols = np.nonzero(same)
                np.add.at(total, gi[rows], -per_pair[rows, cols])
                np.add.at(count, gi[rows], -(a.size // (a.shape[ai] * a.shape[ao])))
    if score == "l2":
        return np.sqrt(total)
    if score == "l1":
        return total
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def keep_order(scores):
    """Group ids from most to least worth keeping: score descending, then lower id."""
    scores = np.asarray(scores, np.float64)
    return np.lexsort((np.arange(len(scores)), -scores))


def forced_groups(scores, layer_groups, min_channels):
    """Bool (n_groups,): the groups Minimum Threshold keeps.

    Each layer keeps at least min(min_channels, its channels) output channels: its
    never-pruned channels count first, then its highest-scoring groups (lower id on
    ties) are forced, one per distinct group.
    """
    if isinstance(min_channels, bool) or not isinstance(min_channels, (int, np.integer)) \
            or min_channels < 0:
        raise ValueError(f"min_channels must be an int >= 0, got {min_channels!r}")
    scores = np.asarray(scores, np.float64)
    rank = np.empty(len(scores), np.int64)
    rank[keep_order(scores)] = np.arange(len(scores))
    forced = np.zeros(len(scores), bool)
    for groups in layer_groups:
        groups = np.asarray(groups)
        fixed = int(np.sum(groups < 0))
        distinct = np.unique(groups[groups >= 0])
        need = min(int(min_channels), fixed + len(distinct)) - fixed
        if need > 0:
            best = distinct[np.argsort(rank[distinct], kind="stable")[:need]]
            forced[best] = True
    return forced


def n_remove_for(n_groups, sparsity):
    """Groups to remove at `sparsity`: round(sparsity * n_groups) (Python rounding)."""
    value = float(sparsity)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    return int(round(value * n_groups))


def removal_order(scores, forced):
    """Non-forced group ids in the order they are removed (least worth keeping first)."""
    order = keep_order(scores)[::-1]
    return order[~np.asarray(forced, bool)[order]]


def select_groups(scores, n_remove, layer_groups=(), min_channels=0):
    """Bool keep (n_groups,) removing exactly `n_remove` groups.

    The `n_remove` lowest-scoring groups that Minimum Threshold (`forced_groups`) does
    not hold are removed. ValueError if MT leaves fewer than `n_remove` removable.
    """
    scores = np.asarray(scores, np.float64)
    n_groups = len(scores)
    if isinstance(n_remove, bool) or not isinstance(n_remove, (int, np.integer)) or \
            not 0 <= n_remove <= n_groups:
        raise ValueError(f"n_remove must be an int in [0, {n_groups}], got {n_remove!r}")
    if np.any(~np.isfinite(scores)):
        raise ValueError("channel group scores contain NaN or inf (training diverged?)")
    forced = forced_groups(scores, layer_groups, min_channels)
    order = removal_order(scores, forced)
    if n_remove > len(order):
        raise ValueError(
            f"min_channels={min_channels} keeps {int(forced.sum())} of {n_groups} channel "
            f"groups: removing {n_remove} is infeasible; at most {len(order)} can be removed "
            f"(sparsity <= {len(order) / max(n_groups, 1):.4f})")
    keep = np.ones(n_groups, bool)
    keep[order[:n_remove]] = False
    return keep


def _kept_along(groups, keep):
    """Bool per index: the index's group is kept (never-pruned indices are kept)."""
    groups = np.asarray(groups)
    out = np.ones(len(groups), bool)
    live = groups >= 0
    out[live] = keep[groups[live]]
    return out


def kernel_mask(spec, keep):
    """Bool mask of `spec`'s kernel: an entry is kept iff its input and output are."""
    mask = np.ones(tuple(spec.shape), bool)
    for axis, groups in spec.axes():
        shape = [1] * len(spec.shape)
        shape[axis] = len(groups)
        mask &= _kept_along(groups, keep).reshape(shape)
    return mask


def param_mask(spec, keep):
    """Bool mask of a per-channel parameter."""
    shape = [1] * len(spec.shape)
    shape[spec.axis] = len(spec.groups)
    return np.broadcast_to(_kept_along(spec.groups, keep).reshape(shape), tuple(spec.shape))


@dataclasses.dataclass(frozen=True)
class Costs:
    """Totals and kept amounts of one selection in the three units."""

    groups: int
    groups_kept: int
    channels: int  # producer output channels that may be pruned
    channels_kept: int
    weights: int  # kernel weights (all kernels with channel structure)
    weights_kept: int
    flops: int  # kernel multiply-adds
    flops_kept: int

    def removed_fraction(self, unit):
        total, kept = {"groups": (self.groups, self.groups_kept),
                       "channels": (self.channels, self.channels_kept),
                       "weights": (self.weights, self.weights_kept),
                       "flops": (self.flops, self.flops_kept)}[unit]
        return (total - kept) / total if total else 0.0

    def to_dict(self):
        out = dataclasses.asdict(self)
        out.update({f"{u}_removed": self.removed_fraction(u)
                    for u in ("groups", "channels", "weights", "flops")})
        return out


def _kernel_kept(spec, keep):
    """(entries, kept entries) of a kernel under `keep` (product of kept counts)."""
    size = int(np.prod(spec.shape, dtype=np.int64))
    kept = size
    for axis, groups in spec.axes():
        kept = kept // spec.shape[axis] * int(_kept_along(groups, keep).sum())
    return size, kept


def costs(keep, kernels, layer_groups):
    """`Costs` of keeping the groups `keep` (bool (n_groups,))."""
    keep = np.asarray(keep, bool)
    weights = weights_kept = flops = flops_kept = 0
    for spec in kernels:
        size, kept = _kernel_kept(spec, keep)
        weights += size
        weights_kept += kept
        flops += size * int(spec.positions)
        flops_kept += kept * int(spec.positions)
    live = [np.asarray(g)[np.asarray(g) >= 0] for g in layer_groups]
    channels = sum(len(g) for g in live)
    channels_kept = sum(int(keep[g].sum()) for g in live)
    return Costs(len(keep), int(keep.sum()), channels, channels_kept, weights, weights_kept,
                 flops, flops_kept)


def owners_of(n_groups, layer_groups):
    """Owner layer index of each group: the first producer (in `layer_groups` order)
    with a channel in it; -1 for a group no producer writes (always-zero channels)."""
    owner = np.full(n_groups, -1, np.int64)
    for index, groups in reversed(list(enumerate(layer_groups))):
        groups = np.asarray(groups)
        owner[groups[groups >= 0]] = index
    return owner


def uniform_keep(scores, fraction, layer_groups, min_channels=0):
    """Bool keep: the uniform per-layer baseline. Every producer layer removes
    `round(fraction * n)` of the `n` groups it owns (`owners_of`), its lowest-scoring
    ones (same tie rule), keeping at least min(min_channels, n); groups no layer owns
    are kept. Not an exact global count: the same fraction in every layer."""
    scores = np.asarray(scores, np.float64)
    if not 0.0 <= float(fraction) < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if isinstance(min_channels, bool) or not isinstance(min_channels, (int, np.integer)) \
            or min_channels < 0:
        raise ValueError(f"min_channels must be an int >= 0, got {min_channels!r}")
    owner = owners_of(len(scores), layer_groups)
    order = keep_order(scores)
    keep = np.ones(len(scores), bool)
    for index in range(len(layer_groups)):
        owned = order[owner[order] == index]  # most worth keeping first
        n_remove = min(int(round(float(fraction) * len(owned))),
                       max(len(owned) - int(min_channels), 0))
        if n_remove:
            keep[owned[len(owned) - n_remove:]] = False
    return keep
