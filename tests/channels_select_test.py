"""tf_globalmp.channels.select: group scores, global selection, MT, costs vs plain numpy."""

import numpy as np
import pytest

import channels_reference as ref
from tf_globalmp.channels import budget
from tf_globalmp.channels import select


def _random_specs(seed, n_groups=7, n_kernels=4):
    """Random kernels: conv-like (in, out axes), depthwise-like (in only), groups with
    never-pruned (-1) indices and groups on both axes of one kernel."""
    rng = np.random.default_rng(seed)
    specs, arrays = [], []
    for k in range(n_kernels):
        cin, cout = rng.integers(1, 5), rng.integers(1, 5)
        in_groups = rng.integers(-1, n_groups, cin)
        if rng.random() < 0.3:  # depthwise: no output axis
            shape = (2, 2, int(cin), int(rng.integers(1, 3)))
            spec = select.KernelSpec(f"k{k}", shape, 2, in_groups, None, None,
                                     int(rng.integers(1, 9)))
        else:
            shape = (int(rng.integers(1, 3)), int(cin), int(cout))
            out_groups = rng.integers(-1, n_groups, cout)
            spec = select.KernelSpec(f"k{k}", shape, 1, in_groups, 2, out_groups,
                                     int(rng.integers(1, 9)))
        specs.append(spec)
        values = rng.standard_normal(shape)
        values[rng.random(shape) < 0.2] = 0.0
        arrays.append(np.round(values, 1))  # ties
    return specs, arrays, n_groups


@pytest.mark.parametrize("score", select.SCORES)
@pytest.mark.parametrize("seed", range(6))
def test_group_scores_match_numpy(seed, score):
    specs, arrays, n = _random_specs(seed)
    np.testing.assert_allclose(select.group_scores(specs, arrays, n, score),
                               ref.group_scores(specs, arrays, n, score), rtol=1e-12, atol=1e-12)


def test_entry_in_one_group_on_both_axes_counts_once():
    spec = select.KernelSpec("k", (2, 2), 0, np.array([0, 1]), 1, np.array([0, 1]))
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    # group 0: row 0 and column 0 = entries 1, 2, 3 (mean 2); group 1: 2, 3, 4 (mean 3)
    np.testing.assert_allclose(select.group_scores([spec], [w], 2, "mean"), [2.0, 3.0])
    np.testing.assert_allclose(select.group_scores([spec], [w], 2, "l1"), [6.0, 9.0])


def test_relative_score_ignores_each_kernels_scale():
    """Scaling one layer's kernel (what a BatchNorm after it undoes) changes "mean"
    and leaves "relative" unchanged."""
    specs, arrays, n = _random_specs(3)
    scaled = [a * (10.0 ** k) for k, a in enumerate(arrays)]
    np.testing.assert_allclose(select.group_scores(specs, scaled, n, "relative"),
                               select.group_scores(specs, arrays, n, "relative"), rtol=1e-12)
    assert not np.allclose(select.group_scores(specs, scaled, n, "mean"),
                           select.group_scores(specs, arrays, n, "mean"))


def test_relative_score_of_small_wide_layer_vs_large_narrow_layer():
    # Two layers, two channels each: layer a's weights are ten times layer b's.
    # "mean" ranks both channels of b below both of a; "relative" ranks within layers.
    a = select.KernelSpec("a", (3, 2), None, None, 1, np.array([0, 1]))
    b = select.KernelSpec("b", (3, 2), None, None, 1, np.array([2, 3]))
    wa = np.array([[1.0, 3.0]] * 3)
    wb = np.array([[0.3, 0.1]] * 3)
    mean = select.group_scores([a, b], [wa, wb], 4, "mean")
    relative = select.group_scores([a, b], [wa, wb], 4, "relative")
    assert list(np.argsort(mean)) == [3, 2, 0, 1]
    np.testing.assert_allclose(relative, [0.5, 1.5, 1.5, 0.5])


def test_relative_score_of_zero_kernel_and_pruned_group_is_zero():
    spec = select.KernelSpec("k", (2, 2), None, None, 1, np.array([0, 1]))
    np.testing.assert_array_equal(
        select.group_scores([spec], [np.zeros((2, 2))], 2, "relative"), [0.0, 0.0])
    pruned = np.array([[0.0, 2.0], [0.0, 4.0]])  # group 0 pruned: the scale is 3
    np.testing.assert_allclose(select.group_scores([spec], [pruned], 2, "relative"), [0.0, 1.0])


def test_group_without_weights_scores_zero():
    spec = select.KernelSpec("k", (2, 1), 0, np.array([0, 0]), 1, np.array([-1]))
    np.testing.assert_array_equal(select.group_scores([spec], [np.ones((2, 1))], 2), [1.0, 0.0])


def test_group_scores_reject_nan():
    spec = select.KernelSpec("k", (1, 1), 0, np.array([0]), 1, np.array([-1]))
    with pytest.raises(ValueError, match="'k' holds NaN"):
        select.group_scores([spec], [np.array([[np.nan]])], 1)


def test_group_scores_reject_bad_score():
    with pytest.raises(ValueError, match="channel_score must be one of .* got 'max'"):
        select.group_scores([], [], 1, "max")


def _layers(seed, n_groups):
    rng = np.random.default_rng(seed + 100)
    return [rng.integers(-1, n_groups, rng.integers(1, 6)) for _ in range(3)]


@pytest.mark.parametrize("min_channels", [0, 1, 2, 5, 50])
@pytest.mark.parametrize("seed", range(5))
def test_select_groups_matches_numpy(seed, min_channels):
    rng = np.random.default_rng(seed)
    n = 9
    scores = np.round(rng.random(n), 1)  # ties
    layers = _layers(seed, n)
    for n_remove in range(n + 1):
        expected = ref.select(scores, n_remove, layers, min_channels)
        if expected is None:
            with pytest.raises(ValueError, match=f"min_channels={min_channels} keeps"):
                select.select_groups(scores, n_remove, layers, min_channels)
            continue
        keep = select.select_groups(scores, n_remove, layers, min_channels)
        np.testing.assert_array_equal(keep, expected)
        assert n - keep.sum() == n_remove


def test_ties_keep_lower_group_index():
    keep = select.select_groups(np.array([1.0, 1.0, 1.0, 1.0]), 2)
    np.testing.assert_array_equal(keep, [True, True, False, False])


def test_min_channels_at_least_layer_size_keeps_layer_whole():
    scores = np.array([0.1, 0.2, 5.0, 6.0])
    keep = select.select_groups(scores, 2, [np.array([0, 1])], min_channels=3)
    np.testing.assert_array_equal(keep, [True, True, False, False])


def test_never_pruned_channels_count_toward_min_channels():
    scores = np.array([0.1, 0.2, 5.0])
    keep = select.select_groups(scores, 2, [np.array([-1, 0, 1])], min_channels=2)
    np.testing.assert_array_equal(keep, [False, True, False])  # -1 and group 1 make 2


def test_one_channel_layer_is_kept_by_min_channels():
    keep = select.select_groups(np.array([0.0, 3.0, 2.0]), 2, [np.array([0])], 1)
    np.testing.assert_array_equal(keep, [True, False, False])


@pytest.mark.parametrize("bad", [-1, 1.5, True, None])
def test_select_groups_rejects_bad_min_channels(bad):
    with pytest.raises(ValueError, match="min_channels must be an int >= 0"):
        select.select_groups(np.ones(3), 1, [], bad)


@pytest.mark.parametrize("bad", [-1, 4, 1.0])
def test_select_groups_rejects_bad_n_remove(bad):
    with pytest.raises(ValueError, match=r"n_remove must be an int in \[0, 3\]"):
        select.select_groups(np.ones(3), bad)


@pytest.mark.parametrize("sparsity,expected", [(0.0, 0), (0.5, 4), (0.44, 3), (0.999, 7)])
def test_n_remove_is_rounded_fraction_of_groups(sparsity, expected):
    assert select.n_remove_for(7, sparsity) == expected


def test_n_remove_rejects_one():
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\), got 1.0"):
        select.n_remove_for(7, 1.0)


@pytest.mark.parametrize("seed", range(4))
def test_masks_and_costs_match_numpy(seed):
    specs, arrays, n = _random_specs(seed)
    keep = np.random.default_rng(seed).random(n) < 0.5
    for spec in specs:
        np.testing.assert_array_equal(select.kernel_mask(spec, keep), ref.kernel_mask(spec, keep))
    layers = _layers(seed, n)
    c = select.costs(keep, specs, layers)
    assert (c.weights, c.weights_kept, c.flops, c.flops_kept) == ref.costs(keep, specs)
    assert c.groups_kept == keep.sum()
    assert c.channels == sum(int(np.sum(g >= 0)) for g in layers)
    assert c.channels_kept == sum(int(np.sum(keep[g[g >= 0]])) for g in layers)


def test_param_mask_slices_its_axis():
    spec = select.ParamSpec("alpha", (2, 3), 1, np.array([0, -1, 1]), "slice")
    np.testing.assert_array_equal(select.param_mask(spec, np.array([False, True])),
                                  [[False, True, True]] * 2)


@pytest.mark.parametrize("target", [0.0, 0.2, 0.5, 0.8])
def test_n_remove_for_flops_is_smallest_reaching_target(target):
    specs, arrays, n = _random_specs(3, n_groups=8, n_kernels=5)
    scores = select.group_scores(specs, arrays, n)

    def removed(k):
        keep = select.select_groups(scores, k)
        w, wk, f, fk = ref.costs(keep, specs)
        return 1 - fk / f

    reachable = [k for k in range(n + 1) if removed(k) >= target]
    k = budget.n_remove_for_flops(scores, target, specs)
    assert k == min(reachable)


def test_n_remove_for_flops_unreachable_under_min_channels():
    spec = select.KernelSpec("k", (2, 2), 0, np.array([-1, -1]), 1, np.array([0, 1]))
    with pytest.raises(ValueError, match="removes at most 0.0000 of the FLOPs"):
        budget.n_remove_for_flops(np.array([1.0, 2.0]), 0.5, [spec], [np.array([0, 1])], 2)


def test_uniform_keep_removes_same_fraction_per_owner_layer():
    scores = np.array([0.5, 0.1, 0.9, 0.3, 0.2, 0.8, 0.7, 0.6])
    layers = [np.array([0, 1, 2, 3]), np.array([4, 5, 6, 7]), np.array([0, 4])]
    keep = select.uniform_keep(scores, 0.5, layers)
    # layer 0 owns 0-3: removes 1 and 3; layer 1 owns 4-7: removes 4 and 7; layer 2 none
    np.testing.assert_array_equal(keep, [True, False, True, False, False, True, True, False])


def test_uniform_keep_honours_min_channels():
    keep = select.uniform_keep(np.array([0.1, 0.2, 0.3]), 0.9, [np.array([0, 1, 2])], 2)
    np.testing.assert_array_equal(keep, [False, True, True])


def test_uniform_fraction_for_flops_reaches_target_minimally():
    specs, arrays, n = _random_specs(5, n_groups=8, n_kernels=5)
    scores = select.group_scores(specs, arrays, n)
    layers = [np.arange(0, 4), np.arange(4, 8)]
    fraction = budget.uniform_fraction_for_flops(scores, 0.3, specs, layers)

    def removed(f):
        return select.costs(select.uniform_keep(scores, f, layers), specs,
                            layers).removed_fraction("flops")

    assert removed(fraction) >= 0.3 > removed(fraction - 1e-5)
