"""Minimum Threshold (MT): per-layer minimum keep counts and budget redistribution.

Pure host-side integer math (Python ints / numpy), no TensorFlow, no Keras.

MT keeps at least ``sigma`` of the largest weights of every layer (all of a layer
with fewer than ``sigma`` weights). The weights MT forces to stay cost budget that
other layers give up, so the network-wide sparsity stays exactly the target. Two
ways to share that cost:

* ``"global"`` (default, exact): force each layer's top ``min(sigma, n_l)``, then give
  the rest of the budget to the largest remaining magnitudes network-wide (one
  threshold over the non-forced weights).
* ``"proportional"`` (the paper's public code): take Global MP's per-layer
  sparsities, hold the layers that fall below their floor at the floor, scale every
  other layer's sparsity by one common factor (iterating with the floor), then
  prune each layer to its own count.
"""

import math

import numpy as np

REDISTRIBUTIONS = ("global", "proportional")


def validate_redistribution(redistribution):
    if redistribution not in REDISTRIBUTIONS:
        raise ValueError(
            f"redistribution must be one of {REDISTRIBUTIONS}, got {redistribution!r}"
        )
    return redistribution


def resolve_min_weights(total, min_weights=0, min_weights_fraction=None):
    """The per-layer minimum keep count sigma.

    Args:
      total: number of prunable weights in the network (N).
      min_weights: sigma as a count (the paper's definition).
      min_weights_fraction: sigma as a fraction of N, as the paper's tables state
        it ("MT 0.2%" is 0.002): ``sigma = int(N * fraction)`` as in the paper's code.
    """
    if isinstance(min_weights, bool) or not isinstance(min_weights, (int, np.integer)):
        raise ValueError(f"min_weights must be a non-negative int, got {min_weights!r}")
    if min_weights < 0:
        raise ValueError(f"min_weights must be a non-negative int, got {min_weights}")
    if min_weights_fraction is None:
        return int(min_weights)
    if min_weights:
        raise ValueError(
            "give min_weights or min_weights_fraction, not both: got "
            f"min_weights={min_weights}, min_weights_fraction={min_weights_fraction}"
        )
    fraction = float(min_weights_fraction)
    if not 0.0 <= fraction < 1.0 or math.isnan(fraction):
        raise ValueError(
            f"min_weights_fraction must be in [0, 1), got {min_weights_fraction}"
        )
    return int(total * fraction)


def forced_keep_counts(sizes, sigma, n_keep):
    """min(sigma, n_l) per layer; ValueError naming min_weights if over the budget."""
    forced = [min(int(sigma), int(n)) for n in sizes]
    if sum(forced) > n_keep:
        raise ValueError(
            f"min_weights={sigma} forces {sum(forced)} weights to stay over "
            f"{len(sizes)} layers, but the sparsity leaves only {n_keep} of "
            f"{sum(int(n) for n in sizes)}: the largest feasible min_weights is "
            f"{max_feasible_min_weights(sizes, n_keep)}; lower min_weights or the sparsity"
        )
    return forced


def max_feasible_min_weights(sizes, n_keep):
    """The largest sigma with ``sum(min(sigma, n_l)) <= n_keep`` (the largest layer's
    size if every layer fits whole)."""
    sizes = sorted(int(n) for n in sizes)
    n_keep = int(n_keep)
    if sum(sizes) <= n_keep:
        return sizes[-1] if sizes else 0
    forced_whole = 0  # layers smaller than sigma are kept whole
    for i, size in enumerate(sizes):
        sigma = (n_keep - forced_whole) // (len(sizes) - i)
        if sigma < size:
            return sigma
        forced_whole += size
    raise AssertionError("unreachable: sum(sizes) > n_keep")


def max_feasible_fraction(total, sigma):
    """The largest min_weights_fraction f, in the fewest decimals, that gives at most
    `sigma` under `resolve_min_weights`'s rule ``int(total * f)``."""
    high = (sigma + 1) / total  # f < high gives sigma; the bound itself does not
    for digits in range(1, 18):
        scale = 10**digits
        f = math.floor(high * scale) / scale
        if int(total * f) > sigma:
            f = (math.floor(high * scale) - 1) / scale
        if f >= 0 and int(total * f) == sigma:
            return f
    f = high
    while int(total * f) > sigma:
        f = float(np.nextafter(f, 0.0))
    return f


def n_keep_for(total, sparsity):
    """Weights kept at `sparsity`: ``N - round(sparsity * N)`` (`masks.n_keep_for`'s rule)."""
    return int(total) - int(round(float(sparsity) * int(total)))


def check_feasible(sizes, sparsity, min_weights=0, min_weights_fraction=None):
    """Raises ValueError if MT cannot keep its floors at `sparsity`.

    Called when the model is wrapped, with the schedule's highest sparsity, so the
    error comes before training instead of at the first mask update that reaches it.
    The message names the argument the user gave (`min_weights` or
    `min_weights_fraction`) and its largest feasible value.

    Args:
      sizes: per-layer numbers of prunable weights n_l.
      sparsity: the highest network-wide sparsity; None (unknown) checks nothing.
      min_weights, min_weights_fraction: as given by the user.

    Returns:
      sigma, the per-layer minimum keep count.
    """
    total = sum(int(n) for n in sizes)
    sigma = resolve_min_weights(total, min_weights, min_weights_fraction)
    if sparsity is None:
        return sigma
    n_keep = n_keep_for(total, sparsity)
    forced = sum(min(sigma, int(n)) for n in sizes)
    if forced <= n_keep:
        return sigma
    best = max_feasible_min_weights(sizes, n_keep)
    if min_weights_fraction is not None:
        argument = "min_weights_fraction"
        given = f"min_weights_fraction={min_weights_fraction} (min_weights {sigma} of {total})"
        largest = f"{max_feasible_fraction(total, best)} (min_weights {best})"
    else:
        argument, given, largest = "min_weights", f"min_weights={sigma}", f"{best}"
    raise ValueError(
        f"{given} forces {forced} weights to stay over {len(sizes)} layers, but "
        f"sparsity {sparsity} keeps only {n_keep} of {total}: the largest feasible "
        f"{argument} at this sparsity is {largest}; lower {argument} or the sparsity"
    )


def proportional_keep_counts(global_counts, sizes, forced, n_keep):
    """Per-layer keep counts of the paper code's MT redistribution (sum == n_keep).

    Args:
      global_counts: per-layer kept counts of plain Global MP at this budget.
      sizes: per-layer sizes n_l.
      forced: per-layer floors min(sigma, n_l).
      n_keep: total number of weights to keep.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    floor = np.asarray(forced, dtype=np.float64)
    layer_sparsity = 1.0 - np.asarray(global_counts, dtype=np.float64) / np.maximum(sizes, 1)
    to_prune = float(sizes.sum() - n_keep)
    capped = np.asarray(global_counts) < floor
    while True:
        free = ~capped
        budget = to_prune - float((sizes - floor)[capped].sum())
        weight = layer_sparsity * sizes * free
        if weight.sum() > 0:
            pruned = weight * (budget / weight.sum())
        else:  # Global MP pruned nothing in the free layers: share by prunable room.
            room = (sizes - floor) * free
            pruned = room * (budget / room.sum()) if room.sum() > 0 else room
        keep = sizes - pruned
        newly = free & (keep < floor)
        if not newly.any():
            break
        capped |= newly
    keep = np.where(capped, floor, keep)
    return _round_to_total(keep, floor, sizes, n_keep)


def _round_to_total(keep, low, high, total):
    """Integers within [low, high] summing to `total`, by largest remainder."""
    base = np.clip(np.floor(keep + 1e-9), low, high).astype(np.int64)
    remainder = int(total - base.sum())
    fraction = keep - base
    order = np.argsort(-fraction, kind="stable")
    step = 1 if remainder > 0 else -1
    while remainder != 0:
        moved = False
        for i in (order if step > 0 else order[::-1]):
            if remainder == 0:
                break
            if (step > 0 and base[i] < high[i]) or (step < 0 and base[i] > low[i]):
                base[i] += step
                remainder -= step
                moved = True
        if not moved:
            raise ValueError(f"cannot keep {total} weights within the per-layer limits")
    return [int(b) for b in base]
