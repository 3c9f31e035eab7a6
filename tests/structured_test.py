"""tf_globalmp.structured: rank-component scores and masks vs plain numpy."""

import numpy as np
import pytest

from tf_globalmp import structured


def _factors(n, r, m, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, r)).astype(np.float32), rng.standard_normal(
        (r, m)).astype(np.float32)


def test_component_scores_are_column_plus_row_abs_sums():
    a, b = _factors(5, 4, 7)
    expected = [np.sum(np.abs(a[:, k])) + np.sum(np.abs(b[k, :])) for k in range(4)]
    np.testing.assert_allclose(structured.component_scores(a, b), expected, rtol=1e-6)


def test_component_scores_reject_mismatched_factors():
    with pytest.raises(ValueError, match=r"\(3, 2\) and \(3, 4\)"):
        structured.component_scores(np.ones((3, 2)), np.ones((3, 4)))


@pytest.mark.parametrize("keep", [0, 1, 3, 5, 9])
def test_top_components_keeps_largest(keep):
    scores = np.array([0.5, 3.0, 1.0, 2.0, 0.1])
    mask = structured.top_components(scores, keep)
    expected = np.zeros(5, bool)
    expected[np.argsort(-scores, kind="stable")[:keep]] = True
    np.testing.assert_array_equal(mask, expected)


def test_top_components_ties_go_to_lower_index():
    np.testing.assert_array_equal(
        structured.top_components(np.array([1.0, 2.0, 2.0, 2.0]), 2), [False, True, True, False])


def test_top_components_all_zero_keeps_first_indices():
    np.testing.assert_array_equal(structured.top_components(np.zeros(4), 2),
                                  [True, True, False, False])


@pytest.mark.parametrize("bad", [-1, 1.5, None])
def test_top_components_rejects_bad_keep(bad):
    with pytest.raises(ValueError, match="keep must be"):
        structured.top_components(np.ones(3), bad)


def test_top_components_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        structured.top_components(np.array([1.0, np.nan]), 1)


@pytest.mark.parametrize("n,r,m,rank", [(9, 9, 80, 8), (80, 80, 80, 7), (9, 9, 80, 9),
                                        (6, 5, 4, 1), (6, 5, 4, 5), (6, 5, 4, 12)])
def test_rank_masks_give_exact_rank(n, r, m, rank):
    a, b = _factors(n, r, m, seed=rank)
    mask_a, mask_b = structured.rank_masks(a, b, rank)
    product = (a * mask_a) @ (b * mask_b)
    assert np.linalg.matrix_rank(product) == min(rank, r, n, m)
    kept = structured.top_components(structured.component_scores(a, b), rank)
    np.testing.assert_array_equal(mask_a, np.broadcast_to(kept, a.shape))
    np.testing.assert_array_equal(mask_b, np.broadcast_to(kept[:, None], b.shape))


def test_rank_masks_with_zeroed_component_drop_it_first():
    a, b = _factors(6, 4, 5)
    a[:, 2] = 0.0
    b[2, :] = 0.0
    mask_a, _ = structured.rank_masks(a, b, 3)
    assert not mask_a[:, 2].any() and mask_a[:, [0, 1, 3]].all()


def _global_reference(pairs, budget):
    """numpy: all components by (-score / cost, pair, index); keep the longest prefix
    whose cumulative cost fits the budget."""
    keys, owner, index, cost = [], [], [], []
    for p, (a, b) in enumerate(pairs):
        n = a.shape[0] + b.shape[1]
        keys += [(np.abs(a[:, k]).sum() + np.abs(b[k]).sum()) / n for k in range(a.shape[1])]
        owner += [p] * a.shape[1]
        index += list(range(a.shape[1]))
        cost += [n] * a.shape[1]
    order = np.lexsort((index, owner, -np.array(keys)))
    taken = order[np.cumsum(np.array(cost)[order]) <= budget]
    keep = [np.zeros(a.shape[1], bool) for a, _ in pairs]
    for i in taken:
        keep[owner[i]][index[i]] = True
    return keep


@pytest.mark.parametrize("budget", [0, 50, 89, 500, 3000, 10**6])
def test_global_component_keep_matches_reference(budget):
    pairs = [_factors(9, 9, 80, 1), _factors(20, 20, 20, 2)]
    got = structured.global_component_keep(pairs, budget)
    for g, e in zip(got, _global_reference(pairs, budget)):
        np.testing.assert_array_equal(g, e)
    used = sum(k.sum() * (a.shape[0] + b.shape[1]) for k, (a, b) in zip(got, pairs))
    assert used <= budget


def test_global_component_keep_normalises_by_length():
    # Same mean |w|, different lengths: normalised ties -> earlier pair first.
    short = (np.ones((2, 1)), np.ones((1, 2)))  # 4 weights, mean 1
    long = (np.ones((10, 1)), np.ones((1, 10)))  # 20 weights, mean 1, sum 20
    assert [k.tolist() for k in structured.global_component_keep([short, long], 20)] == [
        [True], [False]]
    assert [k.tolist() for k in structured.global_component_keep(
        [short, long], 20, normalize=False)] == [[False], [True]]


def test_kept_weights():
    shapes = [((9, 9), (9, 80)), ((80, 80), (80, 80))]
    assert structured.kept_weights(shapes, (9, 8)) == 9 * 89 + 8 * 160
    assert structured.kept_weights(shapes, (20, 100)) == 9 * 89 + 80 * 160


NAMES = ["rnn/W1", "rnn/W2", "rnn/U1", "rnn/U2", "logits/kernel"]


def _weights():
    w1, w2 = _factors(9, 9, 80, 3)
    u1, u2 = _factors(80, 80, 80, 4)
    return [w1, w2, u1, u2, np.ones((80, 2), np.float32)]


def test_rank_mask_rule_per_factor_reaches_ranks_and_keeps_other_weights():
    weights = _weights()
    masks = structured.RankMaskRule(ranks=(9, 7))(weights, 0.5, NAMES)
    assert [m.shape for m in masks] == [w.shape for w in weights]
    w = (weights[0] * masks[0]) @ (weights[1] * masks[1])
    u = (weights[2] * masks[2]) @ (weights[3] * masks[3])
    assert np.linalg.matrix_rank(w) == 9 and np.linalg.matrix_rank(u) == 7
    assert masks[4].all()
    assert sum(int(m.sum()) for m in masks) == 9 * 89 + 7 * 160 + 160


def test_rank_mask_rule_global_uses_network_wide_budget():
    weights = _weights()
    total = sum(w.size for w in weights)
    kept_target = 9 * 89 + 8 * 160 + 160
    masks = structured.RankMaskRule(scope="global")(weights, 1 - kept_target / total, NAMES)
    kept = sum(int(m.sum()) for m in masks)
    assert kept <= kept_target and kept > kept_target - 160
    assert masks[4].all()


@pytest.mark.parametrize("kwargs,match", [
    (dict(scope="columns"), "scope must be"),
    (dict(ranks=(9,)), "one rank per pair"),
    (dict(ranks=(9, 0)), "positive ints"),
])
def test_rank_mask_rule_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        structured.RankMaskRule(**{"ranks": (9, 8), **kwargs})


def test_rank_mask_rule_names_missing_weight():
    with pytest.raises(ValueError, match="'U2'"):
        structured.RankMaskRule(ranks=(9, 8))(_weights()[:3], 0.5, NAMES[:3])
