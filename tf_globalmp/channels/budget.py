"""From a channel selection to a budget: widths rounded to a multiple, FLOPs targets.

Pure numpy, on `channels.select`'s scores, layers and costs.

Channel multiple (`round_widths`, opt-in): the kept width of every producer layer is
moved to the nearest multiple of `multiple` (or its full width), keeping its
highest-scoring groups -- XNNPACK's convolutions run a width that is not a multiple of
16 about as slowly as the next multiple (BENCHMARKS.md, "Convolution width and
XNNPACK latency"). The count is then no longer exact (nor nested): each layer moves by
less than `multiple`, and the reports give what was removed.

FLOPs targets: `n_remove_for_flops` (the global count that first removes a fraction of
the kernel multiply-adds) and `uniform_fraction_for_flops` (the same for the uniform
per-layer baseline), both with the widths rounded when `multiple` > 1.
"""

import numpy as np

from tf_globalmp.channels import select


def check_multiple(multiple):
    if isinstance(multiple, bool) or not isinstance(multiple, (int, np.integer)) or \
            multiple < 1:
        raise ValueError(f"channel_multiple must be an int >= 1, got {multiple!r}")


def round_widths(keep, scores, layer_groups, multiple, min_channels=0):
    """Bool keep: `keep` with every producer layer's kept width rounded to a multiple.

    Layers are visited in order; a layer adjusts only the groups it owns (`select.owners_of`;
    the others are fixed by earlier layers, e.g. a residual stream by its first
    producer). Its width is its output channels whose group is kept (never-pruned ones
    included); of the c owned groups kept, it keeps instead the c' highest-scoring
    (`select.keep_order`), c' in [lo, owned] the nearest to c (ties: the larger) whose width is
    a multiple of `multiple` or the widest the layer can be (every owned group kept).
    lo: Minimum Threshold's `min(min_channels, channels)` groups (`select.forced_groups`), and
    at least one channel unless the layer was empty already. `multiple` 1 returns `keep`.
    """
    return _rounder(scores, layer_groups, multiple, min_channels)(keep)


def _rounder(scores, layer_groups, multiple, min_channels):
    """`round_widths` as a function of `keep` alone: what does not depend on `keep`
    (each layer's owned groups in keep order, the widths they add) is computed once, for
    the FLOPs searches, which round many selections of the same scores."""
    check_multiple(multiple)
    if multiple == 1:
        return lambda keep: np.array(keep, bool)
    scores = np.asarray(scores, np.float64)
    owner = select.owners_of(len(scores), layer_groups)
    order = select.keep_order(scores)
    layers = []
    for index, groups in enumerate(layer_groups):
        groups = np.asarray(groups)
        owned = order[owner[order] == index]  # most worth keeping first
        if not len(owned):
            continue
        live = groups[groups >= 0]
        others = live[owner[live] != index]
        # added[c]: the width the layer's c best owned groups add
        added = np.concatenate(
            [[0], np.cumsum(np.bincount(live, minlength=len(scores))[owned])])
        layers.append((owned, len(groups) - len(live), others, np.unique(others), added))

    def round_keep(keep):
        keep = np.array(keep, bool)
        for owned, fixed, others, distinct_others, added in layers:
            base = fixed + int(keep[others].sum())  # width not decided here
            width = base + added
            count = int(keep[owned].sum())
            need = min(int(min_channels), fixed + len(distinct_others) + len(owned))
            low = min(max(0, need - fixed - int(keep[distinct_others].sum())), len(owned))
            if width[count] > 0 and base == 0:
                low = max(low, 1)
            options = [c for c in range(low, len(owned) + 1)
                       if width[c] % multiple == 0 or c == len(owned)]
            best = min(options, key=lambda c: (abs(c - count), -c))
            keep[owned] = False
            keep[owned[:best]] = True
        return keep

    return round_keep


def n_remove_for_flops(scores, flops_fraction, kernels, layer_groups=(), min_channels=0,
                       multiple=1):
    """The smallest group count whose removal (in `select.select_groups` order) removes at
    least `flops_fraction` of the kernel multiply-adds. ValueError if unreachable
    under Minimum Threshold.

    The removed sets are nested, so FLOPs removed grow with the count: a bisection.
    Use `count / n_groups` as the sparsity of a schedule to reach a FLOPs target
    with the weights as they are now (one-shot). With `multiple` > 1 each count's
    selection is rounded (`round_widths`) before its FLOPs are counted; rounding breaks
    the monotony (one more group can move a layer down by a whole multiple), so every
    count is tried and the one removing the fewest FLOPs at or above the target wins
    (the smallest such count on ties).
    """
    check_multiple(multiple)
    if not 0.0 <= float(flops_fraction) < 1.0:
        raise ValueError(f"flops_fraction must be in [0, 1), got {flops_fraction}")
    scores = np.asarray(scores, np.float64)
    forced = select.forced_groups(scores, layer_groups, min_channels)
    order = select.removal_order(scores, forced)
    rounded = _rounder(scores, layer_groups, multiple, min_channels)

    def removed(n):
        keep = np.ones(len(scores), bool)
        keep[order[:n]] = False
        return select.costs(rounded(keep), kernels, layer_groups).removed_fraction("flops")

    reached = [(removed(n), n) for n in range(len(order) + 1)] if multiple > 1 else \
        [(removed(len(order)), len(order))]
    if max(reached)[0] < flops_fraction:
        raise ValueError(
            f"removing every removable channel group ({len(order)} of {len(scores)}, "
            f"min_channels={min_channels}, channel_multiple={multiple}) removes at most "
            f"{max(reached)[0]:.4f} of the FLOPs, less than flops_fraction={flops_fraction}")
    if multiple > 1:
        return min(item for item in reached if item[0] >= flops_fraction)[1]
    low, high = 0, len(order)
    while low < high:
        mid = (low + high) // 2
        if removed(mid) >= flops_fraction:
            high = mid
        else:
            low = mid + 1
    return low


def uniform_fraction_for_flops(scores, flops_fraction, kernels, layer_groups, min_channels=0,
                               tolerance=1e-6, multiple=1):
    """The smallest per-layer fraction (to `tolerance`) whose `select.uniform_keep` (rounded
    by `round_widths` if `multiple` > 1) removes at least `flops_fraction` of the
    kernel multiply-adds: the uniform baseline at the FLOPs of a global selection.
    ValueError if unreachable."""
    if not 0.0 <= float(flops_fraction) < 1.0:
        raise ValueError(f"flops_fraction must be in [0, 1), got {flops_fraction}")
    rounded = _rounder(scores, layer_groups, multiple, min_channels)

    def removed(fraction):
        keep = rounded(select.uniform_keep(scores, fraction, layer_groups, min_channels))
        return select.costs(keep, kernels, layer_groups).removed_fraction("flops")

    high = 1.0 - tolerance
    if removed(high) < flops_fraction:
        raise ValueError(f"the uniform baseline removes at most {removed(high):.4f} of the "
                         f"FLOPs (min_channels={min_channels}), less than {flops_fraction}")
    low = 0.0
    if removed(low) >= flops_fraction:
        return 0.0
    while high - low > tolerance:
        mid = (low + high) / 2
        if removed(mid) >= flops_fraction:
            high = mid
        else:
            low = mid
    return high
