"""Layer-wise budget allocations to compare Global MP with: uniform, ERK, LAMP, random.

Each method turns one network-wide budget (keep ``n_keep = N - round(s * N)``
weights) into integer per-layer keep counts that sum to exactly ``n_keep``; the
controller then keeps each layer's largest magnitudes (or, for ``"random"``, random
weights), so every method runs through the same wrappers, schedules and callback.

* ``"global"``: one magnitude threshold over all layers (the paper's method, with
  optional MT); computed by `masks.global_magnitude_masks`.
* ``"uniform"``: every layer pruned to the same sparsity (tfmot's behaviour).
* ``"erk"``: Erdős–Rényi-Kernel (Evci et al. 2020, google-research/rigl
  ``get_sparsities_erdos_renyi``): density of a layer proportional to
  ``sum(shape) / prod(shape)``; a layer whose density would exceed 1 is made dense
  and the scale re-solved over the others (rigl's fix-up loop).
* ``"lamp"``: Layer-Adaptive Magnitude-based Pruning (Lee et al., ICLR 2021): within a
  layer sort |w| ascending, score ``w_u^2 / sum_{v >= u} w_v^2``; keep the ``n_keep``
  largest scores network-wide.
* ``"random"``: the same per-layer counts as ``"global"``, random weights kept (the
  sanity baseline of the paper's layer-wise argument).

Pure numpy except ``"global"``, which reuses the library's exact threshold.
"""

import numpy as np

from tf_globalmp import masks as masks_lib

METHODS = ("global", "uniform", "erk", "lamp", "random")


def validate_method(method):
    if method not in METHODS:
        raise ValueError(f"distribution must be one of {METHODS}, got {method!r}")
    return method


def round_to_budget(quotas, n_keep, caps):
    """Integer counts near `quotas` (largest remainder) with sum == n_keep, 0 <= c <= cap.

    Ties in the remainder go to the earlier layer. Raises ValueError if the caps
    cannot hold the budget.
    """
    caps = np.asarray(caps, np.int64)
    n_keep = int(n_keep)
    if n_keep > int(caps.sum()) or n_keep < 0:
        raise ValueError(f"n_keep must be in [0, {int(caps.sum())}], got {n_keep}")
    quotas = np.clip(np.asarray(quotas, np.float64), 0, caps)
    counts = np.minimum(np.floor(quotas).astype(np.int64), caps)
    remainder = quotas - counts
    while counts.sum() != n_keep:
        short = n_keep - int(counts.sum())
        if short > 0:
            order = np.lexsort((np.arange(len(counts)), -remainder))  # largest first
            room = [i for i in order if counts[i] < caps[i]]
            for i in room[:short]:
                counts[i] += 1
        else:
            order = np.lexsort((-np.arange(len(counts)), remainder))  # smallest first
            spare = [i for i in order if counts[i] > 0]
            for i in spare[:-short]:
                counts[i] -= 1
        remainder = np.zeros_like(remainder)  # a second round spreads evenly in order
    return [int(c) for c in counts]


def uniform_keep_counts(sizes, n_keep):
    """Every layer keeps the same fraction ``n_keep / N`` (rounded to the budget)."""
    sizes = np.asarray(sizes, np.int64)
    return round_to_budget(sizes * (n_keep / sizes.sum()), n_keep, sizes)


def erk_densities(shapes, density):
    """Per-layer densities of ERK at overall `density` (rigl's algorithm, power 1).

    Layers whose ERK density would exceed 1 are kept dense (all at the maximum raw
    probability together, repeatedly), and the others share the rest.
    """
    sizes = np.array([int(np.prod(s)) for s in shapes], np.float64)
    raw = np.array([sum(s) / np.prod(s) for s in shapes], np.float64)
    dense = np.zeros(len(shapes), bool)
    while True:
        rhs = float(np.sum(sizes[~dense] * density) - np.sum(sizes[dense] * (1 - density)))
        divisor = float(np.sum(raw[~dense] * sizes[~dense]))
        if divisor == 0:  # every layer dense
            break
        eps = rhs / divisor
        max_prob = raw[~dense].max()
        if max_prob * eps > 1:
            dense |= (~dense) & (raw == max_prob)
        else:
            break
    return np.where(dense, 1.0, np.minimum(eps * raw, 1.0) if divisor else 1.0)


def erk_keep_counts(shapes, n_keep):
    sizes = np.array([int(np.prod(s)) for s in shapes], np.int64)
    densities = erk_densities(shapes, n_keep / sizes.sum())
    return round_to_budget(densities * sizes, n_keep, sizes)


def lamp_scores(weights):
    """LAMP score of every weight, same shapes: ``w_u^2 / sum_{|w_v| >= |w_u|} w_v^2``.

    Within a layer, weights are ordered by |w| ascending with ties by position, so
    equal magnitudes get distinct (increasing) scores as in the paper's code.
    """
    scores = []
    for w in weights:
        flat = np.abs(np.asarray(w, np.float64)).ravel()
        order = np.argsort(flat, kind="stable")
        squares = flat[order] ** 2
        suffix = np.cumsum(squares[::-1])[::-1]
        score = np.zeros_like(flat)
        score[order] = np.divide(squares, suffix, out=np.zeros_like(squares), where=suffix > 0)
        scores.append(score.reshape(np.shape(w)))
    return scores


def lamp_keep_counts(weights, n_keep):
    """Per-layer counts of the `n_keep` largest LAMP scores (ties: lower position)."""
    scores = lamp_scores(weights)
    flat = np.concatenate([s.ravel() for s in scores])
    order = np.lexsort((np.arange(flat.size), -flat))[: int(n_keep)]
    layer_of = np.repeat(np.arange(len(scores)), [s.size for s in scores])
    return [int(c) for c in np.bincount(layer_of[order], minlength=len(scores))]


def global_keep_counts(weights, n_keep, min_weights=0, min_weights_fraction=None,
                       redistribution="global"):
    total = sum(int(np.size(w)) for w in weights)
    if n_keep == 0:  # sparsity 1.0 is not a valid schedule value, but can round to it
        return [0] * len(weights)
    sparsity = 1.0 - n_keep / total
    kept = masks_lib.global_magnitude_masks(
        weights, sparsity, min_weights, min_weights_fraction=min_weights_fraction,
        redistribution=redistribution,
    )
    counts = [int(np.count_nonzero(np.asarray(m))) for m in kept]
    if sum(counts) != n_keep:  # float round trip of sparsity; cannot happen for n <= 2**52
        raise RuntimeError(f"global counts sum to {sum(counts)}, expected {n_keep}")
    return counts


def keep_counts(weights, n_keep, method, min_weights=0, min_weights_fraction=None,
                redistribution="global"):
    """Integer keep count per layer for `method`; they sum to exactly `n_keep`.

    `weights` are numpy arrays (pruned entries zero). ``"global"`` and ``"random"``
    honour MT (`min_weights` / `min_weights_fraction`); the others have none.
    """
    validate_method(method)
    if method in ("global", "random"):
        return global_keep_counts(weights, n_keep, min_weights, min_weights_fraction,
                                  redistribution)
    if min_weights or min_weights_fraction:
        raise ValueError(
            f"Minimum Threshold applies to distribution 'global' or 'random', got "
            f"distribution={method!r} with min_weights={min_weights}, "
            f"min_weights_fraction={min_weights_fraction}"
        )
    if method == "uniform":
        return uniform_keep_counts([np.size(w) for w in weights], n_keep)
    if method == "erk":
        return erk_keep_counts([np.shape(w) for w in weights], n_keep)
    return lamp_keep_counts(weights, n_keep)


def random_masks(weights, counts, seed):
    """Bool masks keeping `counts[l]` random entries among the nonzero ones of each layer.

    Already-pruned (zero) weights are never revived unless a layer has fewer
    nonzeros than its count (then zeros are added, also at random).
    """
    rng = np.random.default_rng(seed)
    out = []
    for w, count in zip(weights, counts):
        flat = np.asarray(w).ravel()
        alive = np.flatnonzero(flat)
        dead = np.flatnonzero(flat == 0)
        chosen = rng.permutation(alive)[:count]
        if count > alive.size:
            chosen = np.concatenate([chosen, rng.permutation(dead)[: count - alive.size]])
        keep = np.zeros(flat.size, bool)
        keep[chosen] = True
        out.append(keep.reshape(np.shape(w)))
    return out
