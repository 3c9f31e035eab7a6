"""Structured (rank) pruning of low-rank factor pairs: pure numpy, no Keras.

A factorised matrix W = A B (A: (n, r), B: (r, m)) is a sum of r rank-one
components; component k is column k of A with row k of B. Its score is the sum of
|w| over both (the paper's rule: columns ranked by the sum of absolute weights).
Keeping the top `rank` components (zeroing the others in both factors) leaves
rank(A B) <= `rank`.

`rank_mask_rule` turns this into a `mask_rule` for `prune_low_magnitude_global`
(the controller calls it on the masked weights and applies what it returns through
the usual callback / `update(step)` path). Two scopes:

* "per_factor": each pair keeps its own target rank (the paper's (rW, rU)).
* "global": every component of every pair competes under one budget of kept
  weights; components are ranked by mean |w| (score / (n + m), i.e. normalised by
  column length), the natural Global MP generalisation.

Ties are broken by the lower component index (then the earlier pair), so results
are deterministic.
"""

import numpy as np


def component_scores(first, second):
    """Sum of |w| of each rank component: column k of `first` + row k of `second`."""
    first, second = np.asarray(first), np.asarray(second)
    if first.ndim != 2 or second.ndim != 2 or first.shape[1] != second.shape[0]:
        raise ValueError(
            "factors must be 2-D with first.shape[1] == second.shape[0], got "
            f"{first.shape} and {second.shape}"
        )
    return (np.abs(first.astype(np.float64)).sum(axis=0)
            + np.abs(second.astype(np.float64)).sum(axis=1))


def top_components(scores, keep):
    """Bool (r,): the `keep` largest scores (ties: lower index); keep >= r keeps all."""
    scores = np.asarray(scores, np.float64)
    if not isinstance(keep, (int, np.integer)) or keep < 0:
        raise ValueError(f"keep must be a non-negative int, got {keep!r}")
    if np.any(~np.isfinite(scores)):
        raise ValueError("component scores contain NaN or inf (training diverged?)")
    order = np.lexsort((np.arange(len(scores)), -scores))
    mask = np.zeros(len(scores), bool)
    mask[order[: min(int(keep), len(scores))]] = True
    return mask


def pair_masks(first, second, keep_components):
    """Keep masks of both factors for a bool vector of kept components."""
    keep_components = np.asarray(keep_components, bool)
    first_mask = np.broadcast_to(keep_components[None, :], np.shape(first)).copy()
    second_mask = np.broadcast_to(keep_components[:, None], np.shape(second)).copy()
    return first_mask, second_mask


def rank_masks(first, second, rank):
    """Masks keeping the `rank` highest-scoring components of W = first @ second."""
    return pair_masks(first, second, top_components(component_scores(first, second), rank))


def global_component_keep(pairs, budget, normalize=True):
    """One budget for all pairs: a list of bool keep-vectors, one per pair.

    Components of all pairs are ranked together by score (divided by the component's
    weight count n + m when `normalize`) and kept in that order while the kept weight
    count stays within `budget` (the first that does not fit ends the selection).
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    entries = []  # (key, pair index, component index, cost)
    for p, (first, second) in enumerate(pairs):
        scores = component_scores(first, second)
        if np.any(~np.isfinite(scores)):
            raise ValueError("component scores contain NaN or inf (training diverged?)")
        cost = np.shape(first)[0] + np.shape(second)[1]
        for k, s in enumerate(scores):
            entries.append((s / cost if normalize else s, p, k, cost))
    entries.sort(key=lambda e: (-e[0], e[1], e[2]))
    keep = [np.zeros(np.shape(first)[1], bool) for first, _ in pairs]
    used = 0
    for _, p, k, cost in entries:
        if used + cost > budget:
            break
        keep[p][k] = True
        used += cost
    return keep


def kept_weights(shapes, ranks):
    """Weights left in factor pairs of `shapes` [((n, r), (r, m)), ...] at `ranks`."""
    return sum(min(rank, a[1]) * (a[0] + b[1]) for (a, b), rank in zip(shapes, ranks))


def _find(names, suffix):
    hits = [i for i, n in enumerate(names) if n.split("/")[-1] == suffix]
    if len(hits) != 1:
        raise ValueError(f"expected exactly one weight named {suffix!r}, got {len(hits)} "
                         f"among {list(names)}")
    return hits[0]


class RankMaskRule:
    """`mask_rule(weights, sparsity, names)` for `prune_low_magnitude_global`.

    Args:
      pairs: factor pairs by weight name (the last path element), e.g.
        (("W1", "W2"), ("U1", "U2")).
      ranks: target rank per pair (scope "per_factor").
      scope: "per_factor" (ranks; `sparsity` is ignored) or "global" (one budget: the
        network-wide kept count at `sparsity` over all weights given, minus the weights
        outside the pairs, which stay whole; `ranks` unused).
      normalize: global scope only: rank components by mean |w| (default) or sum |w|.

    Weights not in a pair are kept whole.
    """

    def __init__(self, pairs=(("W1", "W2"), ("U1", "U2")), ranks=None, scope="per_factor",
                 normalize=True):
        if scope not in ("per_factor", "global"):
            raise ValueError(f"scope must be 'per_factor' or 'global', got {scope!r}")
        self.pairs = tuple(tuple(p) for p in pairs)
        if scope == "per_factor":
            if ranks is None or len(ranks) != len(self.pairs):
                raise ValueError(f"ranks must give one rank per pair {self.pairs}, got {ranks!r}")
            for r in ranks:
                if not isinstance(r, (int, np.integer)) or r < 1:
                    raise ValueError(f"ranks must be positive ints, got {ranks!r}")
        self.ranks = None if ranks is None else tuple(int(r) for r in ranks)
        self.scope = scope
        self.normalize = normalize

    def __call__(self, weights, sparsity, names):
        arrays = [np.asarray(w) for w in weights]
        masks = [np.ones(a.shape, bool) for a in arrays]
        index = [(_find(names, a), _find(names, b)) for a, b in self.pairs]
        pairs = [(arrays[i], arrays[j]) for i, j in index]
        if self.scope == "per_factor":
            keeps = [top_components(component_scores(a, b), r)
                     for (a, b), r in zip(pairs, self.ranks)]
        else:
            # `sparsity` is network-wide (all weights given); weights outside the pairs
            # stay whole and use their share of the kept budget.
            total = sum(a.size for a in arrays)
            outside = total - sum(a.size + b.size for a, b in pairs)
            budget = total - int(round(float(sparsity) * total)) - outside
            keeps = global_component_keep(pairs, max(budget, 0), self.normalize)
        for (i, j), (a, b), keep in zip(index, pairs, keeps):
            masks[i], masks[j] = pair_masks(a, b, keep)
        return masks

    def __repr__(self):
        return (f"RankMaskRule(pairs={self.pairs}, ranks={self.ranks}, scope={self.scope!r}, "
                f"normalize={self.normalize})")
