"""Layer-wise allocations (uniform, ERK, LAMP, random vs global): exact budgets, hand
examples, and the controller running each through the same wrappers."""

import numpy as np
import pytest

import tf_globalmp
import tf_keras as keras

from tf_globalmp import distributions

from numpy_reference import layer_top_k, n_keep, reference_masks

METHODS = distributions.METHODS


def _layers(seed, sizes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype("float32") for s in sizes]


SHAPES = [
    [(3, 3, 3, 16), (3, 3, 16, 32), (512, 10)],
    [(1,), (2, 2), (7, 5), (300, 40)],  # a 1-weight layer and a huge one
    [(5, 5, 1, 1), (4,), (3, 3)],
]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.9, 0.999])
def test_every_method_keeps_exactly_the_budget(method, shapes, sparsity):
    weights = _layers(0, shapes)
    total = sum(w.size for w in weights)
    counts = distributions.keep_counts(weights, n_keep(total, sparsity), method)
    assert sum(counts) == n_keep(total, sparsity)
    assert all(0 <= c <= w.size for c, w in zip(counts, weights))
    spars = tf_globalmp.layer_sparsities(weights, sparsity, method)
    assert sum(round(w.size * (1 - s)) for w, s in zip(weights, spars)) == n_keep(total, sparsity)


def test_global_counts_match_the_numpy_reference_with_ties_and_zeros():
    weights = [np.array([0.0, 1, 1, 2]), np.array([[1.0, 0], [2, 2]]), np.zeros(3)]
    for k in range(0, 12):
        ref = reference_masks(weights, 1 - k / 11)
        assert distributions.keep_counts(weights, k, "global") == [int(m.sum()) for m in ref]


def test_uniform_is_the_same_fraction_per_layer_up_to_one_weight():
    weights = _layers(1, [(10,), (33,), (57,)])  # 100 weights
    assert distributions.keep_counts(weights, 30, "uniform") == [3, 10, 17]  # 3.3, 9.9, 17.1
    counts = distributions.keep_counts(weights, 31, "uniform")  # 3.1, 10.23, 17.67
    assert counts == [3, 10, 18]


def test_erk_hand_computed_and_dense_layer_fix_up():
    shapes = [(10, 10), (100, 10)]  # raw = 20/100 = 0.2 and 110/1000 = 0.11
    weights = [np.ones(s) for s in shapes]
    # density 0.5: eps = 550 / (0.2*100 + 0.11*1000) = 550/130 -> 84.6 and 465.4
    assert distributions.keep_counts(weights, 550, "erk") == [85, 465]
    # density 0.9: eps = 990/130 makes layer 0 denser than 1 -> dense; the other
    # gets 990 - 100 = 890.
    assert distributions.keep_counts(weights, 990, "erk") == [100, 890]
    np.testing.assert_allclose(distributions.erk_densities(shapes, 0.9), [1.0, 0.89])


def test_erk_uses_kernel_dimensions():
    # (3,3,4,8): raw = 18/288; (4,8) dense: raw = 12/32; ERK gives the conv less density
    d = distributions.erk_densities([(3, 3, 4, 8), (4, 8)], 0.2)
    assert d[0] < d[1]
    assert d[0] * 288 + d[1] * 32 == pytest.approx(0.2 * 320)


def test_lamp_scores_and_counts_hand_computed():
    a, b = np.array([10.0, 11, 12]), np.array([1.0, 2])
    scores = distributions.lamp_scores([a, b])
    np.testing.assert_allclose(scores[0], [100 / 365, 121 / 265, 1.0])
    np.testing.assert_allclose(scores[1], [1 / 5, 1.0])
    # Global MP would keep [2, 0] of 2; LAMP keeps each layer's largest first.
    assert distributions.keep_counts([a, b], 2, "global") == [2, 0]
    assert distributions.keep_counts([a, b], 2, "lamp") == [1, 1]
    assert distributions.keep_counts([a, b], 3, "lamp") == [2, 1]


def test_lamp_ties_get_distinct_scores_lowest_position_pruned_first():
    scores = distributions.lamp_scores([np.array([2.0, 2.0, 2.0])])[0]
    np.testing.assert_allclose(scores, [4 / 12, 4 / 8, 1.0])


def test_round_to_budget_respects_caps_and_sum():
    assert distributions.round_to_budget([2.5, 2.5, 0.0], 5, [2, 10, 10]) == [2, 3, 0]
    assert distributions.round_to_budget([5.0, 5.0], 3, [10, 10]) == [2, 1]
    with pytest.raises(ValueError, match="n_keep must be in \\[0, 4\\], got 5"):
        distributions.round_to_budget([1, 1], 5, [2, 2])


def test_random_masks_keep_counts_and_never_revive_pruned_weights():
    weights = [np.array([0.0, 1, 2, 3, 0]), np.array([4.0, 0, 5])]
    for seed in range(5):
        keep = distributions.random_masks(weights, [2, 1], seed)
        assert [int(k.sum()) for k in keep] == [2, 1]
        assert not keep[0][[0, 4]].any() and not keep[1][1]


def test_mt_with_a_baseline_method_is_refused():
    with pytest.raises(ValueError, match="distribution='uniform' with min_weights=3"):
        distributions.keep_counts([np.ones(4)], 2, "uniform", min_weights=3)
    with pytest.raises(ValueError, match="distribution must be one of .* got 'erdos'"):
        distributions.keep_counts([np.ones(4)], 2, "erdos")


# --------------------------------------------------------- through the controller
def _wrapped(method, sparsity=0.8, **options):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((8, 8, 2)),
        keras.layers.Conv2D(6, 3, name="conv"),
        keras.layers.DepthwiseConv2D(3, name="dw"),
        keras.layers.Flatten(),
        keras.layers.Dense(12, name="fc"),
        keras.layers.Dense(4, name="out"),
    ])
    return tf_globalmp.prune_low_magnitude_global(
        model, tf_globalmp.GlobalConstantSparsity(sparsity), distribution=method, **options
    )


@pytest.mark.parametrize("method", METHODS)
def test_controller_prunes_each_method_to_its_counts_keeping_largest_per_layer(method):
    wrapped = _wrapped(method)
    before = [w.numpy().copy() for w in
              (v for wrapper in tf_globalmp.wrapping.collect_wrappers(wrapped)
               for v, _, _ in wrapper.pruning_vars)]
    expected = distributions.keep_counts(before, n_keep(sum(b.size for b in before), 0.8),
                                         method)
    result = tf_globalmp.GlobalPruner(wrapped).prune_to(0.8, step=0)
    assert list(result.layer_kept) == expected
    assert result.kept == n_keep(result.total, 0.8)
    masks = [m.numpy() for wrapper in tf_globalmp.wrapping.collect_wrappers(wrapped)
             for _, m, _ in wrapper.pruning_vars]
    for w, m, k in zip(before, masks, expected):
        if method == "random":
            assert int(m.sum()) == k
        else:
            np.testing.assert_array_equal(m > 0, layer_top_k(w, k))


def test_gradual_baseline_never_revives_pruned_weights():
    wrapped = _wrapped("uniform")
    pruner = tf_globalmp.GlobalPruner(wrapped)
    pruner.prune_to(0.5, step=0)
    first = [m.numpy().copy() for _, m, _ in pruner._vars]
    pruner.prune_to(0.8, step=1)
    for a, (_, m, _) in zip(first, pruner._vars):
        assert not np.any((m.numpy() > 0) & (a == 0))


def test_wrapping_refuses_mt_with_uniform():
    with pytest.raises(ValueError, match="distribution='uniform' with min_weights=5"):
        _wrapped("uniform", min_weights=5)


def test_random_with_mt_uses_global_counts_with_mt():
    wrapped = _wrapped("random", min_weights=20)
    result = tf_globalmp.GlobalPruner(wrapped).prune_to(0.9, step=0)
    assert min(result.layer_kept) >= 20
    assert result.kept == n_keep(result.total, 0.9)
