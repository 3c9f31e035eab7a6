"""The compiled graphs of masks.py (`_global_fn`, `_per_layer_fn` and the graph
builders `global_keep_masks` / `per_layer_keep_masks`) against plain numpy.

Property tests: random layer sizes (1-element layers included), all-zero layers,
heavy ties, MT at or above a layer's size, a ~2M-weight layer, k = 0 and k = N.
"""

import numpy as np
import pytest

import tf_globalmp  # noqa: F401
import tensorflow as tf

from numpy_reference import layer_top_k, magnitudes
from tf_globalmp import masks
from tf_globalmp import selection


def _best(mags, positions, k):
    """Positions of the k best: largest magnitude, then lowest position (a sort)."""
    return positions[np.lexsort((positions, -mags))[:k]]


def _reference(weights, n_keep, forced):
    """Flat bool masks: each layer its `forced[l]` best, then the n_keep - sum(forced)
    best of the rest network-wide; and the smallest magnitude of that shared part."""
    mags = [magnitudes(w) for w in weights]
    flat = np.concatenate(mags)
    keep = np.zeros(flat.size, bool)
    offset = 0
    for m, f in zip(mags, forced):
        keep[_best(m, np.arange(offset, offset + m.size), f)] = True
        offset += m.size
    candidates = np.flatnonzero(~keep)
    shared = _best(flat[candidates], candidates, n_keep - int(keep.sum()))
    keep[shared] = True
    threshold = flat[shared].min() if shared.size else None
    return np.split(keep, np.cumsum([m.size for m in mags])[:-1]), threshold


def _layers(rng, count, big=False):
    """Flat float32 layers: normal, heavy ties (9 values), all zero; sizes from 1."""
    sizes = [int(rng.choice([1, rng.integers(2, 40), rng.integers(40, 3000)])) for _ in range(count)]
    if big:
        sizes[int(rng.integers(count))] = 2_000_003
    layers = []
    for size in sizes:
        kind = rng.choice(["normal", "ties", "zeros"], p=[0.5, 0.35, 0.15])
        if kind == "normal":
            w = rng.standard_normal(size)
        elif kind == "ties":
            w = rng.integers(-4, 5, size) * 0.5
        else:
            w = np.zeros(size)
        layers.append(w.astype(np.float32))
    return layers


def _check_global(layers, n_keep, forced):
    got, threshold = masks._global_fn(
        [tf.constant(w) for w in layers], tf.constant(n_keep, tf.int32), tf.constant(forced, tf.int32)
    )
    want, want_threshold = _reference(layers, n_keep, forced)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g.numpy(), w)
    assert sum(int(g.numpy().sum()) for g in got) == n_keep
    if want_threshold is not None:
        assert float(threshold) == want_threshold


@pytest.mark.parametrize("seed", range(6))
def test_global_fn_equals_numpy_without_mt(seed):
    rng = np.random.default_rng(500 + seed)
    layers = _layers(rng, int(rng.integers(1, 30)))
    total = sum(w.size for w in layers)
    for n_keep in sorted({0, 1, total // 10, total // 2, total - 1, total}):
        _check_global(layers, n_keep, [0] * len(layers))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sigma", [1, 7, 5000])  # 5000: at or above every layer's size
def test_global_fn_equals_numpy_with_mt(seed, sigma):
    rng = np.random.default_rng(600 + seed)
    layers = _layers(rng, int(rng.integers(1, 30)))
    total = sum(w.size for w in layers)
    forced = [min(sigma, w.size) for w in layers]
    for n_keep in sorted({sum(forced), (sum(forced) + total) // 2, total}):
        _check_global(layers, n_keep, forced)


@pytest.mark.parametrize("count", [65, 130])  # more segments than the two-pass plan
def test_global_fn_with_mt_over_many_layers(count):
    rng = np.random.default_rng(700 + count)
    layers = _layers(rng, count)
    forced = [min(3, w.size) for w in layers]
    total = sum(w.size for w in layers)
    _check_global(layers, (sum(forced) + total) // 3, forced)


@pytest.mark.parametrize("sigma", [0, 1000])
def test_global_fn_with_a_two_million_weight_layer(sigma):
    rng = np.random.default_rng(800)
    layers = _layers(rng, 6, big=True)
    forced = [min(sigma, w.size) for w in layers]
    total = sum(w.size for w in layers)
    _check_global(layers, total // 10 + sum(forced), forced)


def test_global_fn_inside_a_caller_graph_equals_eager_dispatch():
    # Symbolic forced counts take the graph with the MT part even when all are 0.
    rng = np.random.default_rng(900)
    layers = [tf.constant(w) for w in _layers(rng, 12)]
    n_keep = tf.constant(sum(int(w.shape[0]) for w in layers) // 4)
    for forced in ([0] * 12, [min(2, int(w.shape[0])) for w in layers]):
        forced = tf.constant(forced, tf.int32)
        eager, eager_threshold = masks._global_fn(layers, n_keep, forced)
        graph, graph_threshold = tf.function(masks._global_fn)(layers, n_keep, forced)
        for a, b in zip(eager, graph):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert float(eager_threshold) == float(graph_threshold)


def test_global_fn_stays_exact_after_retracing_for_new_shapes():
    # reduce_retracing: the third shape set runs a trace with unknown lengths.
    rng = np.random.default_rng(1000)
    for count in (3, 3, 3):
        layers = _layers(rng, count)
        total = sum(w.size for w in layers)
        _check_global(layers, total // 3, [0] * count)
        _check_global(layers, total // 3 + 2, [min(1, w.size) for w in layers])


@pytest.mark.parametrize("seed", range(6))
def test_per_layer_fn_equals_numpy(seed):
    rng = np.random.default_rng(1100 + seed)
    layers = _layers(rng, int(rng.integers(1, 80)), big=seed == 0)
    # 0, everything, beyond the size (clipped to it), or a random count.
    counts = [int(rng.choice([0, w.size, w.size + 3, rng.integers(0, w.size + 1)])) for w in layers]
    got = masks._per_layer_fn([tf.constant(w) for w in layers], tf.constant(counts, tf.int32))
    for g, w, k in zip(got, layers, counts):
        np.testing.assert_array_equal(g.numpy(), layer_top_k(w, min(k, w.size)))


def test_graph_builders_under_a_callers_autograph_equal_the_compiled_functions():
    # The controller and Keras 3 pruner call the builders inside their own
    # tf.function (AutoGraph on) on their own keys.
    rng = np.random.default_rng(1200)
    layers = [tf.constant(w) for w in _layers(rng, 9)]
    sizes = [int(w.shape[0]) for w in layers]
    n_keep, forced = sum(sizes) // 3, [min(2, s) for s in sizes]

    @tf.function
    def caller(weights):
        keys = [selection.magnitude_keys(w) for w in weights]
        keep, threshold, _ = masks.global_keep_masks(keys, n_keep, tf.constant(forced), sizes)
        per_layer = masks.per_layer_keep_masks(keys, tf.constant(forced), sizes)
        return keep, selection.keys_to_magnitude(threshold), per_layer

    keep, threshold, per_layer = caller(layers)
    want, want_threshold = masks._global_fn(layers, tf.constant(n_keep), tf.constant(forced))
    for a, b in zip(keep, want):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert float(threshold) == float(want_threshold)
    want_per_layer = masks._per_layer_fn(layers, tf.constant(forced))
    for a, b in zip(per_layer, want_per_layer):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
