"""MT budget math: sigma resolution, floors, proportional keep counts."""

import numpy as np
import pytest

import tf_globalmp  # noqa: F401
from tf_globalmp import min_threshold


def test_fraction_follows_the_paper_code():
    # MobileNet-V1: 4,209,088 weights, MT 0.2% -> 8,418 per layer.
    assert min_threshold.resolve_min_weights(4_209_088, min_weights_fraction=0.002) == 8418
    assert min_threshold.resolve_min_weights(100, min_weights=7) == 7


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(min_weights=-1), "min_weights"),
        (dict(min_weights=2.5), "min_weights"),
        (dict(min_weights=True), "min_weights"),
        (dict(min_weights_fraction=-0.1), "min_weights_fraction"),
        (dict(min_weights_fraction=1.0), "min_weights_fraction"),
        (dict(min_weights=3, min_weights_fraction=0.1), "not both"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        min_threshold.resolve_min_weights(1000, **kwargs)


def test_forced_counts_and_budget_error():
    assert min_threshold.forced_keep_counts([3, 10, 100], 5, 50) == [3, 5, 5]
    with pytest.raises(ValueError, match="min_weights=5"):
        min_threshold.forced_keep_counts([3, 10, 100], 5, 12)


@pytest.mark.parametrize("seed", range(20))
def test_proportional_counts_sum_exactly_and_respect_limits(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 500, size=rng.integers(2, 9))
    n_keep = int(rng.integers(sizes.sum() // 20, sizes.sum()))
    sigma = int(rng.integers(0, 40))
    forced = [min(sigma, int(n)) for n in sizes]
    if sum(forced) > n_keep:
        return
    # Any valid global allocation summing to n_keep.
    global_counts = np.minimum(sizes, rng.multinomial(n_keep, sizes / sizes.sum()))
    while global_counts.sum() < n_keep:
        i = rng.integers(len(sizes))
        if global_counts[i] < sizes[i]:
            global_counts[i] += 1
    keep = min_threshold.proportional_keep_counts(global_counts, sizes, forced, n_keep)
    assert sum(keep) == n_keep
    assert all(f <= k <= n for k, f, n in zip(keep, forced, sizes))


def test_proportional_with_no_floor_reproduces_global_counts():
    keep = min_threshold.proportional_keep_counts([10, 30, 60], [100, 100, 100], [0, 0, 0], 100)
    assert keep == [10, 30, 60]


def test_bad_redistribution():
    with pytest.raises(ValueError, match="redistribution.*'erk'"):
        min_threshold.validate_redistribution("erk")


# ------------------------------------------- feasibility, checked when wrapping
def _brute_max_sigma(sizes, n_keep):
    sizes = np.asarray(sizes)
    sigmas = np.arange(0, sizes.max() + 1)
    forced = np.minimum(sigmas[:, None], sizes[None, :]).sum(axis=1)
    return int(sigmas[forced <= n_keep].max())


@pytest.mark.parametrize("seed", range(30))
def test_max_feasible_min_weights_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 300, size=rng.integers(1, 7))
    n_keep = int(rng.integers(0, sizes.sum() + 1))
    assert min_threshold.max_feasible_min_weights(sizes, n_keep) == _brute_max_sigma(sizes, n_keep)


@pytest.mark.parametrize("total, sigma", [(1000, 7), (1000, 0), (3, 1), (21_356, 320),
                                          (7_978_856, 10_543), (4_209_088, 8418)])
def test_max_feasible_fraction_gives_sigma_and_one_more_weight_does_not(total, sigma):
    f = min_threshold.max_feasible_fraction(total, sigma)
    assert min_threshold.resolve_min_weights(total, min_weights_fraction=f) == sigma
    assert min_threshold.resolve_min_weights(total, min_weights_fraction=(sigma + 1) / total) > sigma


def test_n_keep_for_is_the_masks_rule():
    from tf_globalmp import masks

    for total in (1, 15, 1000, 25_502_912):
        for sparsity in (0.0, 0.5, 0.9, 0.95, 0.999):
            assert min_threshold.n_keep_for(total, sparsity) == masks.n_keep_for(total, sparsity)


SIZES = [108, 2304, 16384, 2560]  # the four layers; 95% keeps 1068 of 21,356


def test_feasible_arguments_return_sigma():
    assert min_threshold.check_feasible(SIZES, 0.95, min_weights=320) == 320
    assert min_threshold.check_feasible(SIZES, 0.95, min_weights_fraction=0.015) == 320
    assert min_threshold.check_feasible(SIZES, None, min_weights=10_000) == 10_000  # unknown


@pytest.mark.parametrize("kwargs, argument, largest", [
    (dict(min_weights=321), "min_weights", "320"),
    (dict(min_weights_fraction=0.02), "min_weights_fraction", "0.015 (min_weights 320)"),
])
def test_infeasible_names_the_argument_given_and_its_largest_value(kwargs, argument, largest):
    with pytest.raises(ValueError) as info:
        min_threshold.check_feasible(SIZES, 0.95, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{argument}=")
    assert f"the largest feasible {argument} at this sparsity is {largest};" in message
    assert "keeps only 1068 of 21356" in message


def _dense_model(seed=0):
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((20,)), keras.layers.Dense(30), keras.layers.Dense(3),
                             keras.layers.Dense(2)])  # 600, 90, 6 prunable weights


def test_wrapping_rejects_an_infeasible_fraction_at_the_schedules_final_sparsity():
    sizes, final = [600, 90, 6], 0.98
    n_keep = min_threshold.n_keep_for(sum(sizes), final)  # 14
    sigma = _brute_max_sigma(sizes, n_keep)  # 4
    largest = min_threshold.max_feasible_fraction(sum(sizes), sigma)
    schedule = tf_globalmp.GlobalPolynomialDecay(0.0, final, begin_step=0, end_step=100)
    with pytest.raises(ValueError, match=rf"largest feasible min_weights_fraction at this "
                                         rf"sparsity is {largest} \(min_weights {sigma}\)"):
        tf_globalmp.prune_low_magnitude_global(_dense_model(), schedule,
                                               min_weights_fraction=(sigma + 1) / sum(sizes))
    wrapped = tf_globalmp.prune_low_magnitude_global(_dense_model(), schedule,
                                                     min_weights_fraction=largest)
    tf_globalmp.GlobalPruner(wrapped).prune_to(final)  # and the pruner agrees: it fits


def test_wrapping_checks_min_weights_too_and_leaves_a_subclassed_model_unwrapped():
    import tf_keras as keras

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = keras.layers.Dense(30), keras.layers.Dense(3)

        def call(self, x):
            return self.b(self.a(x))

    model = Sub()
    model(np.zeros((1, 20), "float32"))
    schedule = tf_globalmp.GlobalConstantSparsity(0.98)  # keeps 14 of 690: sigma <= 7
    with pytest.raises(ValueError, match=r"^min_weights=8 .*largest feasible min_weights "
                                         r"at this sparsity is 7;"):
        tf_globalmp.prune_low_magnitude_global(model, schedule, min_weights=8)
    assert type(model.a) is keras.layers.Dense  # not wrapped in place
