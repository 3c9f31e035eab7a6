"""Channel multiple (`budget.round_widths`, `channel_multiple=`): every layer's kept width
a multiple, vs a brute-force numpy reference, through every path that selects."""

import numpy as np
import pytest

import channels_reference as ref
import tf_globalmp
from tf_globalmp import _compat
from tf_globalmp import configs
from tf_globalmp import wrapping
from tf_globalmp.channels import budget
from tf_globalmp.channels import graph
from tf_globalmp.channels import rule as rule_lib
from tf_globalmp.channels import select

from channels_rule_test import _net, _wrapped, assert_masks_are_the_reference


def _layers(rng, n_groups):
    """Producer layers: fresh groups, some shared with earlier layers (residual
    streams), some never-pruned (-1) channels, a group twice in one layer now and then."""
    layers, seen = [], []
    for _ in range(int(rng.integers(1, 6))):
        width = int(rng.integers(1, 12))
        pool = seen if seen and rng.random() < 0.3 else None
        groups = (rng.choice(pool, width) if pool else rng.integers(-1, n_groups, width))
        layers.append(np.asarray(groups))
        seen = sorted(set(seen) | {int(g) for g in groups if g >= 0})
    return layers


def _widths(keep, layers):
    return [int(np.sum((np.asarray(g) < 0) | keep[np.maximum(np.asarray(g), 0)]))
            for g in layers]


@pytest.mark.parametrize("multiple", [1, 2, 3, 4, 8, 16])
@pytest.mark.parametrize("min_channels", [0, 1, 3])
@pytest.mark.parametrize("seed", range(12))
def test_round_widths_matches_numpy(seed, min_channels, multiple):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 30))
    scores = np.round(rng.random(n), 1)  # ties
    scores[rng.random(n) < 0.2] = 0.0  # pruned groups
    layers = _layers(rng, n)
    for n_remove in sorted({0, n // 3, n // 2, n}):
        try:
            keep = select.select_groups(scores, n_remove, layers, min_channels)
        except ValueError:
            continue
        got = budget.round_widths(keep, scores, layers, multiple, min_channels)
        np.testing.assert_array_equal(
            got, ref.round_widths(keep, scores, layers, multiple, min_channels))
        if multiple == 1:
            np.testing.assert_array_equal(got, keep)


@pytest.mark.parametrize("seed", range(8))
def test_rounded_widths_are_multiples_or_full_and_keep_the_best(seed):
    rng = np.random.default_rng(seed)
    n = 40
    scores = rng.random(n)
    layers = [np.arange(0, 16), np.arange(16, 40), np.arange(0, 16)]  # 3rd: a residual join
    keep = select.select_groups(scores, int(rng.integers(0, n)), layers, 1)
    got = budget.round_widths(keep, scores, layers, 8, 1)
    widths = _widths(got, layers)
    for w, full in zip(widths, (16, 24, 16)):
        assert w % 8 == 0 and w > 0 or w == full
    assert widths[0] == widths[2]
    for groups in layers[:2]:  # kept groups of a layer outscore its removed ones
        kept, gone = scores[groups][got[groups]], scores[groups][~got[groups]]
        assert not len(gone) or not len(kept) or kept.min() >= gone.max()
    before = _widths(keep, layers)
    # the nearest option: within half a multiple, the full width, or up from below 8
    assert all(abs(a - b) <= 4 or a == full or b < 8
               for a, b, full in zip(widths, before, (16, 24, 16)))


def test_width_below_the_multiple_rounds_up_not_to_zero():
    scores = np.arange(10, dtype=float)
    keep = np.zeros(10, bool)
    keep[9] = True  # one channel left
    got = budget.round_widths(keep, scores, [np.arange(10)], 8, 0)
    assert got.sum() == 8 and got[2:].all()


def test_layer_smaller_than_the_multiple_keeps_its_count_options():
    scores = np.array([0.3, 0.2, 0.1])
    keep = np.array([True, True, False])
    # width 2 of 3: no multiple of 8 in [1, 3] -> the only option is the full width 3
    np.testing.assert_array_equal(budget.round_widths(keep, scores, [np.arange(3)], 8),
                                  [True, True, True])


@pytest.mark.parametrize("bad", [0, -8, 1.5, True, None])
def test_bad_multiple_is_refused(bad):
    with pytest.raises(ValueError, match="channel_multiple must be an int >= 1"):
        budget.round_widths(np.ones(2, bool), np.ones(2), [np.arange(2)], bad)


@pytest.mark.parametrize("distribution", ["global", "uniform"])
def test_prune_to_masks_equal_the_rounded_reference(distribution):
    model = _net()
    g = graph.analyze(model)
    arrays = [g.variables[s.name].numpy() for s in g.kernels]
    scores = ref.group_scores(g.kernels, arrays, g.n_groups, "relative")
    layers = g.producer_groups()
    if distribution == "global":
        keep = ref.select(scores, int(round(0.5 * g.n_groups)), layers, 1)
    else:
        keep = select.uniform_keep(scores, 0.5, layers, 1)
    expected = ref.round_widths(keep, scores, layers, 4, 1)
    wrapped = _wrapped(0.5, model, channel_multiple=4, distribution=distribution)
    tf_globalmp.GlobalPruner(wrapped).prune_to(0.5, step=0)
    assert_masks_are_the_reference(wrapped, g, expected)
    rule = rule_lib.channel_rule(wrapped)
    np.testing.assert_array_equal(rule.kept_from_masks(), expected)
    assert "channel_multiple=4" in repr(rule)


@pytest.mark.parametrize("distribution", ["global", "uniform"])
def test_sparsity_for_flops_with_a_multiple_reaches_the_budget(distribution):
    model = _net()
    sparsity = rule_lib.sparsity_for_flops(model, 0.4, distribution=distribution,
                                           channel_multiple=2)
    wrapped = _wrapped(sparsity, model, distribution=distribution, channel_multiple=2)
    tf_globalmp.GlobalPruner(wrapped).prune_to(sparsity, step=0)
    rule = rule_lib.channel_rule(wrapped)
    assert rule.mask_costs().removed_fraction("flops") >= 0.4
    widths = _widths(rule.kept_from_masks(), rule.layer_groups)
    full = _widths(np.ones(rule.n_groups, bool), rule.layer_groups)
    assert all(w % 2 == 0 or w == f for w, f in zip(widths, full))


def test_shrunk_model_has_the_rounded_widths_and_equal_outputs():
    model = _net()
    wrapped = _wrapped(0.5, model, channel_multiple=2)
    tf_globalmp.GlobalPruner(wrapped).prune_to(0.5, step=0)
    stripped = tf_globalmp.strip_pruning(wrapped)
    shrunk = tf_globalmp.shrink(stripped)
    convs = [l for l in shrunk.layers if l.name in ("c1", "c3")]
    assert convs and all(l.filters % 2 == 0 or l.filters in (6, 5) for l in convs)
    x = np.random.default_rng(0).standard_normal((4, 6, 6, 3)).astype("float32")
    a, b = stripped(x).numpy(), shrunk(x).numpy()
    assert np.max(np.abs(a - b)) <= 1e-5 * max(1.0, np.max(np.abs(a)))


def test_channel_options_with_weight_granularity_are_refused():
    schedule = tf_globalmp.GlobalConstantSparsity(0.5, begin_step=0, frequency=10)
    for name, value in (("channel_multiple", 16), ("min_channels", 4), ("channel_score", "l2")):
        with pytest.raises(ValueError, match=f"{name} applies with granularity='channel'"):
            tf_globalmp.prune_low_magnitude_global(_net(), schedule, **{name: value})


def test_config_channel_multiple_is_inert_with_weight_granularity():
    weight = configs.Cifar10Config(mode="one_shot")
    assert "channel_multiple" in weight.inert_fields()
    channel = configs.Cifar10Config(mode="one_shot", granularity="channel")
    assert "channel_multiple" not in channel.inert_fields()


@pytest.mark.parametrize("seed", range(6))
def test_n_remove_for_flops_with_a_multiple_is_the_closest_count_above(seed):
    rng = np.random.default_rng(seed)
    n = 30
    scores = rng.random(n)
    layers = [np.arange(0, 12), np.arange(12, 30), np.arange(0, 12)]
    specs = [select.KernelSpec("a", (3, 12), 0, np.full(3, -1), 1, np.arange(12), 5),
             select.KernelSpec("b", (12, 18), 0, np.arange(12), 1, np.arange(12, 30), 3),
             select.KernelSpec("c", (18, 12), 0, np.arange(12, 30), 1, np.arange(12), 2)]
    forced = select.forced_groups(scores, layers, 1)
    order = select.removal_order(scores, forced)

    def removed(k):  # brute force with the reference rounding
        keep = np.ones(n, bool)
        keep[order[:k]] = False
        keep = ref.round_widths(keep, scores, layers, 4, 1)
        return select.costs(keep, specs, layers).removed_fraction("flops")

    for target in (0.1, 0.3, 0.5):
        got = budget.n_remove_for_flops(scores, target, specs, layers, 1, multiple=4)
        above = [removed(k) for k in range(len(order) + 1) if removed(k) >= target]
        assert removed(got) >= target and removed(got) == min(above)
        assert all(removed(k) != min(above) for k in range(got))


def test_rounded_mask_holds_at_an_unchanged_sparsity_and_moves_with_it():
    wrapped = _wrapped(0.8, _net(), channel_multiple=2)
    pruner = tf_globalmp.GlobalPruner(wrapped)
    rule = rule_lib.channel_rule(wrapped)

    def masks():
        return [m.numpy().copy() for wr in wrapping.collect_wrappers(wrapped)
                for _, m, _ in wr.pruning_vars]

    pruner.prune_to(0.4, step=0)
    first, kept = masks(), rule.kept_from_masks()
    for step in (1, 2):  # a one-shot schedule's later updates: the same sparsity
        pruner.prune_to(0.4, step=step)
        for a, b in zip(first, masks()):
            np.testing.assert_array_equal(a, b)
    pruner.prune_to(0.8, step=3)
    assert rule.kept_from_masks().sum() < kept.sum()
    widths = _widths(rule.kept_from_masks(), rule.layer_groups)
    full = _widths(np.ones(rule.n_groups, bool), rule.layer_groups)
    assert all(w % 2 == 0 or w == f for w, f in zip(widths, full))


def test_rounded_resnet20_mask_is_stable_over_updates():
    """ResNet-20 (random weights) at multiple 8: a second selection on the masked
    weights would round differently (what the hold is for)."""
    from tf_globalmp import models
    _compat.keras.utils.set_random_seed(3)
    model = models.build_cifar("resnet20")
    schedule = tf_globalmp.GlobalConstantSparsity(0.365, begin_step=0, frequency=10)
    wrapped = tf_globalmp.prune_low_magnitude_global(model, schedule, granularity="channel",
                                                     channel_multiple=8)
    pruner = tf_globalmp.GlobalPruner(wrapped)
    rule = rule_lib.channel_rule(wrapped)
    pruner.prune_to(0.365, step=0)
    first = rule.kept_from_masks()
    pruner.prune_to(0.365, step=10)
    np.testing.assert_array_equal(rule.kept_from_masks(), first)
    # without the hold: the same rule made afresh on the masked weights moves the mask
    arrays = {rule.label[s.name]: rule._variables[s.name].numpy() *  # noqa: SLF001
              rule._masks[s.name].numpy() for s in rule.kernels}  # noqa: SLF001
    rule._held = None  # noqa: SLF001
    assert not np.array_equal(rule.keep(arrays, 0.365), first)
