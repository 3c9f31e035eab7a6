"""global_magnitude_masks against the plain-numpy sort-based reference."""

import ml_dtypes
import numpy as np
import pytest

import tf_globalmp
import tensorflow as tf

from numpy_reference import n_keep, reference_masks, layer_top_k

masks_fn = tf_globalmp.global_magnitude_masks


def _assert_matches(weights, sparsity, min_weights=0):
    got = masks_fn(weights, sparsity, min_weights)
    want = reference_masks(weights, sparsity, min_weights)
    assert len(got) == len(weights)
    for g, w, ref in zip(got, weights, want):
        g = np.asarray(g)
        assert g.shape == np.shape(w)
        assert set(np.unique(g)).issubset({0, 1})
        np.testing.assert_array_equal(g.astype(bool), ref)
    total = sum(np.size(w) for w in weights)
    assert sum(int(np.asarray(g).sum()) for g in got) == n_keep(total, sparsity)


def _random_layers(rng, count, max_size, dtype=np.float32, ties=False):
    layers = []
    for _ in range(count):
        shape = tuple(rng.integers(1, max_size + 1, size=rng.integers(1, 4)))
        if ties:
            w = rng.integers(-4, 5, size=shape).astype(dtype) * 0.5
        else:
            w = rng.standard_normal(shape).astype(dtype)
        layers.append(w)
    return layers


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.999])
def test_random_layers_match_reference(seed, sparsity):
    rng = np.random.default_rng(seed)
    _assert_matches(_random_layers(rng, rng.integers(1, 7), 12), sparsity)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sparsity", [0.3, 0.8, 0.95])
def test_heavy_ties_match_reference(seed, sparsity):
    rng = np.random.default_rng(100 + seed)
    _assert_matches(_random_layers(rng, rng.integers(1, 6), 10, ties=True), sparsity)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("min_weights", [1, 3, 17, 10_000])
def test_min_threshold_matches_reference(seed, min_weights):
    rng = np.random.default_rng(200 + seed)
    weights = _random_layers(rng, 5, 9, ties=bool(seed % 2))
    total = sum(w.size for w in weights)
    forced = sum(min(min_weights, w.size) for w in weights)
    for sparsity in (0.0, 0.5, 0.9):
        if forced > n_keep(total, sparsity):
            with pytest.raises(ValueError, match="min_weights"):
                masks_fn(weights, sparsity, min_weights)
        else:
            _assert_matches(weights, sparsity, min_weights)


def test_all_zero_layer_and_one_weight_layer():
    rng = np.random.default_rng(1)
    weights = [np.zeros((4, 5), np.float32), np.array([3.0], np.float32), rng.standard_normal(30).astype(np.float32)]
    for sparsity in (0.1, 0.5, 0.9):
        _assert_matches(weights, sparsity)
        _assert_matches(weights, sparsity, min_weights=2)


def test_every_weight_equal_keeps_lowest_positions():
    weights = [np.ones((3, 3), np.float32), -np.ones(7, np.float32)]
    got = masks_fn(weights, 0.5)
    kept = np.concatenate([np.asarray(g).ravel() for g in got])
    assert kept.sum() == n_keep(16, 0.5) == 8
    np.testing.assert_array_equal(kept, [1] * 8 + [0] * 8)


def test_opposite_signs_are_equal_magnitudes():
    weights = [np.array([-2.0, 2.0, -1.0, 1.0], np.float32), np.array([2.0, -2.0], np.float32)]
    _assert_matches(weights, 0.5)
    got = masks_fn(weights, 0.5)
    np.testing.assert_array_equal(np.asarray(got[0]), [1, 1, 0, 0])
    np.testing.assert_array_equal(np.asarray(got[1]), [1, 0])


def test_signed_zero_denormals_and_extremes():
    tiny = np.float32(1e-45)  # smallest denormal
    w = np.array([-0.0, 0.0, tiny, -tiny, 3e38, -3e38, 1.0, -1e-38], np.float32)
    for sparsity in (0.25, 0.5, 0.75):
        _assert_matches([w, w[::-1].copy()], sparsity)


@pytest.mark.parametrize("sparsity", [0.0, 0.999])
def test_extreme_sparsities(sparsity):
    rng = np.random.default_rng(3)
    _assert_matches(_random_layers(rng, 4, 20), sparsity)


def test_sparsity_that_keeps_nothing():
    # 100 weights at 0.999: round(99.9) = 100 pruned, nothing kept (no crash).
    weights = [np.arange(1, 101, dtype=np.float32).reshape(10, 10)]
    got = masks_fn(weights, 0.999)
    assert np.asarray(got[0]).sum() == 0


def test_min_weights_larger_than_every_layer_keeps_them_dense():
    rng = np.random.default_rng(4)
    weights = [rng.standard_normal(3).astype(np.float32), rng.standard_normal(200).astype(np.float32)]
    got = masks_fn(weights, 0.9, min_weights=5)
    np.testing.assert_array_equal(np.asarray(got[0]), 1)
    _assert_matches(weights, 0.9, min_weights=5)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16, np.float64])
def test_low_and_high_precision_dtypes(dtype):
    rng = np.random.default_rng(5)
    weights = [rng.standard_normal(s).astype(dtype) for s in (50, 7, 300)]
    got = masks_fn(weights, 0.8, 2)
    want = reference_masks(weights, 0.8, 2)
    for g, w, ref in zip(got, weights, want):
        assert g.dtype == tf.as_dtype(w.dtype)
        np.testing.assert_array_equal(np.asarray(g).astype(np.float32).astype(bool), ref)


def test_accepts_tensors_and_variables_of_any_shape():
    rng = np.random.default_rng(6)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in [(2, 3, 4, 5), (7,), (3, 3)]]
    inputs = [tf.constant(arrays[0]), tf.Variable(arrays[1]), arrays[2]]
    got = masks_fn(inputs, 0.7)
    for g, ref in zip(got, reference_masks(arrays, 0.7)):
        np.testing.assert_array_equal(np.asarray(g).astype(bool), ref)


def test_ten_million_weight_layer():
    rng = np.random.default_rng(7)
    big = rng.standard_normal(10_000_000).astype(np.float32)
    small = rng.standard_normal((64, 3)).astype(np.float32)
    got = masks_fn([big, small], 0.9, min_weights=100)
    want = reference_masks([big, small], 0.9, 100)
    np.testing.assert_array_equal(np.asarray(got[0]).astype(bool), want[0])
    np.testing.assert_array_equal(np.asarray(got[1]).astype(bool), want[1])


def test_fraction_form_of_min_threshold():
    rng = np.random.default_rng(8)
    weights = [rng.standard_normal(s).astype(np.float32) for s in (1000, 40, 500)]
    total = 1540
    sigma = int(total * 0.02)  # paper code: int(N * MT% / 100)
    got = masks_fn(weights, 0.9, min_weights_fraction=0.02)
    for g, ref in zip(got, reference_masks(weights, 0.9, sigma)):
        np.testing.assert_array_equal(np.asarray(g).astype(bool), ref)


class TestProportionalRedistribution:
    def _weights(self, seed):
        rng = np.random.default_rng(seed)
        # Layers of very different scales so global MP starves the small-scale one.
        return [
            rng.standard_normal(2000).astype(np.float32),
            0.01 * rng.standard_normal(300).astype(np.float32),
            rng.standard_normal(800).astype(np.float32),
            rng.standard_normal(5).astype(np.float32),
        ]

    @pytest.mark.parametrize("seed", range(3))
    @pytest.mark.parametrize("sparsity", [0.8, 0.95])
    def test_exact_total_floor_and_per_layer_top_k(self, seed, sparsity):
        weights = self._weights(seed)
        sigma = 40
        got = [np.asarray(m).astype(bool) for m in masks_fn(weights, sparsity, sigma, redistribution="proportional")]
        total = sum(w.size for w in weights)
        assert sum(int(g.sum()) for g in got) == n_keep(total, sparsity)
        for g, w in zip(got, weights):
            k = int(g.sum())
            assert k >= min(sigma, w.size)
            np.testing.assert_array_equal(g, layer_top_k(w, k))

    def test_free_layers_scale_global_sparsities_by_one_factor(self):
        weights = self._weights(0)
        sigma, sparsity = 40, 0.9
        plain = [np.asarray(m).astype(bool) for m in masks_fn(weights, sparsity)]
        prop = [np.asarray(m).astype(bool) for m in masks_fn(weights, sparsity, sigma, redistribution="proportional")]
        ratios = []
        for p, q, w in zip(plain, prop, weights):
            if q.sum() == min(sigma, w.size) or p.sum() == w.size:
                continue  # held at the floor, or not pruned by global MP
            ratios.append((w.size - q.sum()) / (w.size - p.sum()))
        assert len(ratios) >= 2
        assert max(ratios) - min(ratios) < 2.0 / 300  # equal up to rounding one weight
        assert min(ratios) > 1.0  # free layers gave up budget to the floored one

    def test_without_mt_equals_plain_global(self):
        weights = self._weights(1)
        for a, b in zip(masks_fn(weights, 0.9), masks_fn(weights, 0.9, redistribution="proportional")):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.2, float("nan"), "0.5x"])
def test_bad_sparsity_names_argument(sparsity):
    with pytest.raises(ValueError, match="sparsity"):
        masks_fn([np.ones(3, np.float32)], sparsity)


def test_nan_names_the_layer():
    weights = [np.ones(3, np.float32), np.array([1.0, np.nan], np.float32)]
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        masks_fn(weights, 0.5)
    with pytest.raises(ValueError, match="conv_b"):
        masks_fn(weights, 0.5, names=["conv_a", "conv_b"])
    with pytest.raises(ValueError, match="NaN or inf"):
        masks_fn([np.array([np.inf, 1.0], np.float32)], 0.5)


def test_finite_weights_whose_sum_overflows_are_accepted_and_inf_pairs_rejected():
    # The finite check sums each layer; an overflowing sum must not be taken for inf.
    huge = np.array([3e38, 3e38, 1.0, -2.0], np.float32)
    _assert_matches([np.ones(3, np.float32), huge], 0.5)
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        masks_fn([huge, np.array([np.inf, -np.inf, 1.0], np.float32)], 0.5)


def test_bad_min_threshold_arguments():
    w = [np.ones(10, np.float32)]
    with pytest.raises(ValueError, match="min_weights"):
        masks_fn(w, 0.5, min_weights=-1)
    with pytest.raises(ValueError, match="min_weights_fraction"):
        masks_fn(w, 0.5, min_weights_fraction=1.5)
    with pytest.raises(ValueError, match="redistribution"):
        masks_fn(w, 0.5, redistribution="uniform")
    with pytest.raises(ValueError, match="at least one"):
        masks_fn([], 0.5)
    with pytest.raises(ValueError, match="floating"):
        masks_fn([np.ones(3, np.int32)], 0.5)


def test_input_arrays_are_not_modified():
    rng = np.random.default_rng(9)
    weights = [rng.standard_normal(20).astype(np.float32)]
    before = weights[0].copy()
    masks_fn(weights, 0.5)
    np.testing.assert_array_equal(weights[0], before)
