"""Plain-numpy, brute-force reference for channel-group scores, selection and costs
(independent of `tf_globalmp.channels.select`): every kernel entry is tested for
membership one group at a time; the selection sorts all groups once."""

import numpy as np


def membership(spec, group):
    """Bool array of `spec`'s kernel entries that belong to `group`."""
    member = np.zeros(spec.shape, bool)
    for axis, groups in ((spec.in_axis, spec.in_groups), (spec.out_axis, spec.out_groups)):
        if axis is None:
            continue
        index = np.indices(spec.shape)[axis]
        member |= np.asarray(groups)[index] == group
    return member


def group_scores(kernels, arrays, n_groups, score):
    out = np.zeros(n_groups)
    for g in range(n_groups):
        total, count = 0.0, 0
        for spec, w in zip(kernels, arrays):
            member = membership(spec, g)
            values = np.asarray(w, np.float64)[member]
            if score == "relative":  # |w| over the mean |w| of the kernel's nonzero entries
                nonzero = np.abs(np.asarray(w, np.float64))
                nonzero = nonzero[nonzero != 0]
                values = values / (nonzero.mean() if nonzero.size else 1.0)
            total += float(np.sum(values ** 2 if score == "l2" else np.abs(values)))
            count += int(member.sum())
        out[g] = np.sqrt(total) if score == "l2" else total if score == "l1" else (
            total / count if count else 0.0)
    return out


def select(scores, n_remove, layer_groups, min_channels):
    """Keep mask: each layer's best min(MT, channels) forced (fixed channels first),
    then the best of the rest until n_groups - n_remove are kept. None if infeasible."""
    n = len(scores)
    ranked = sorted(range(n), key=lambda g: (-scores[g], g))
    forced = set()
    for groups in layer_groups:
        groups = list(np.asarray(groups))
        fixed = sum(1 for g in groups if g < 0)
        distinct = sorted({g for g in groups if g >= 0}, key=lambda g: (-scores[g], g))
        need = min(min_channels, fixed + len(distinct)) - fixed
        forced.update(distinct[:max(need, 0)])
    n_keep = n - n_remove
    if len(forced) > n_keep:
        return None
    keep = np.zeros(n, bool)
    keep[list(forced)] = True
    for g in ranked:
        if keep.sum() == n_keep:
            break
        keep[g] = True
    return keep


def kernel_mask(spec, keep):
    mask = np.ones(spec.shape, bool)
    for g in np.flatnonzero(~np.asarray(keep)):
        mask &= ~membership(spec, g)
    return mask


def costs(keep, kernels):
    """(weights, weights kept, flops, flops kept) by counting mask entries."""
    weights = kept = flops = flops_kept = 0
    for spec in kernels:
        mask = kernel_mask(spec, keep)
        weights += mask.size
        kept += int(mask.sum())
        flops += mask.size * spec.positions
        flops_kept += int(mask.sum()) * spec.positions
    return weights, kept, flops, flops_kept


def round_widths(keep, scores, layer_groups, multiple, min_channels):
    """Each layer (in order) re-chooses how many of the groups it owns (first layer to
    have them) it keeps, best scores first: the count nearest the current one (ties:
    more) whose width (kept output channels) is a multiple of `multiple` or whose count
    is all it owns; Minimum Threshold in distinct groups; never empties a layer that
    was not empty. Brute force over every count."""
    keep = np.array(keep, bool)
    if multiple == 1:
        return keep
    owner = {}
    for i, groups in enumerate(layer_groups):
        for g in np.asarray(groups):
            if g >= 0 and int(g) not in owner:
                owner[int(g)] = i
    for i, groups in enumerate(layer_groups):
        groups = [int(g) for g in np.asarray(groups)]
        owned = sorted({g for g in groups if g >= 0 and owner[g] == i},
                       key=lambda g: (-scores[g], g))
        if not owned:
            continue
        fixed = sum(1 for g in groups if g < 0)
        distinct = {g for g in groups if g >= 0}
        need = min(min_channels, fixed + len(distinct))

        def alive(g, kept):
            return g in kept if owner[g] == i else bool(keep[g])

        def width(kept):
            return sum(1 for g in groups if g < 0 or alive(g, kept))

        now = {g for g in owned if keep[g]}
        best = None
        for c in range(len(owned) + 1):
            kept = set(owned[:c])
            if c < len(owned) and fixed + sum(alive(g, kept) for g in distinct) < need:
                continue
            if width(kept) == 0 and width(now) > 0:
                continue
            if width(kept) % multiple and c != len(owned):
                continue
            if best is None or (abs(c - len(now)), -c) < (abs(best - len(now)), -best):
                best = c
        for g in owned:
            keep[g] = g in owned[:best]
    return keep
