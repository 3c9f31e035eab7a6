"""Radix top-k primitive: excluded keys, k at the edges, threshold key."""

import numpy as np
import pytest

import tf_globalmp  # noqa: F401
import tensorflow as tf

from tf_globalmp import selection


def _run(values, k, excluded=()):
    keys = [selection.magnitude_keys(tf.constant(v, tf.float32)) for v in values]
    keys = [
        tf.tensor_scatter_nd_update(key, [[i] for i in ex], [selection.EXCLUDED] * len(ex)) if ex else key
        for key, ex in zip(keys, excluded or [()] * len(values))
    ]
    masks, threshold = selection.top_k_masks(keys, tf.constant(k))
    return [m.numpy() for m in masks], float(selection.keys_to_magnitude(threshold))


def test_threshold_is_kth_largest_magnitude():
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(1000), rng.standard_normal(37)]
    for k in (1, 10, 500, 1037):
        masks, threshold = _run(values, k)
        flat = np.sort(np.abs(np.concatenate(values)).astype(np.float32))[::-1]
        assert threshold == flat[k - 1]
        assert sum(m.sum() for m in masks) == k


def test_excluded_keys_are_never_selected():
    masks, _ = _run([[5.0, 4.0, 3.0], [2.0, 1.0]], 3, excluded=[(0,), (1,)])
    np.testing.assert_array_equal(masks[0], [False, True, True])
    np.testing.assert_array_equal(masks[1], [True, False])


@pytest.mark.parametrize("k", [0, 5])
def test_k_at_edges(k):
    masks, _ = _run([[1.0, 2.0], [3.0, 4.0, 5.0]], k)
    assert sum(m.sum() for m in masks) == k


def test_keys_are_monotone_in_magnitude():
    values = np.array([0.0, 1e-45, 1e-38, 0.5, 1.0, 2.0, 3e38, np.inf], np.float32)
    keys = selection.magnitude_keys(tf.constant(values)).numpy()
    assert np.all(np.diff(keys) > 0)
    keys_neg = selection.magnitude_keys(tf.constant(-values)).numpy()
    np.testing.assert_array_equal(keys, keys_neg)


def test_layer_top_k_mask_shortcuts():
    key = selection.magnitude_keys(tf.constant([3.0, 1.0, 2.0]))
    assert selection.layer_top_k_mask(key, 3, 3).numpy().all()
    assert not selection.layer_top_k_mask(key, 0, 3).numpy().any()
    np.testing.assert_array_equal(selection.layer_top_k_mask(key, 2, 3).numpy(), [True, False, True])


# ------------------------------------------------------------ properties vs numpy
def _numpy_top_k(keys, k):
    """Reference: the k largest keys >= 0, ties lowest position first (a full sort)."""
    keys = np.asarray(keys, np.int64)
    candidates = np.flatnonzero(keys >= 0)
    order = np.lexsort((candidates, -keys[candidates]))
    keep = np.zeros(keys.size, bool)
    keep[candidates[order[:k]]] = True
    return keep


def _numpy_segment_top_k(keys, k, sizes):
    bounds = np.cumsum([0, *sizes])
    return np.concatenate(
        [_numpy_top_k(keys[a:b], min(max(int(kk), 0), b - a)) for a, b, kk in zip(bounds[:-1], bounds[1:], k)]
        or [np.zeros(0, bool)]
    )


def _float_keys(values):
    return selection.magnitude_keys(tf.constant(np.asarray(values, np.float32))).numpy()


def _random_keys(rng, n, mode):
    """int32 keys: distinct magnitudes, heavy ties (4 values), or all zero."""
    if mode == "distinct":
        return _float_keys(rng.standard_normal(n))
    if mode == "ties":
        return _float_keys(rng.integers(0, 4, n) * 0.5)
    return np.zeros(n, np.int32)


def _random_sizes(rng, count):
    """Layer sizes: 1-element layers, small, medium and (rarely) larger ones."""
    kinds = rng.choice(4, size=count, p=[0.2, 0.4, 0.3, 0.1])
    highs = np.array([1, 50, 3000, 20_000])
    return [int(rng.integers(1, highs[c] + 1)) for c in kinds]


def _segment_keys(rng, sizes):
    modes = rng.choice(["distinct", "ties", "zeros"], size=len(sizes), p=[0.5, 0.35, 0.15])
    return np.concatenate([_random_keys(rng, n, m) for n, m in zip(sizes, modes)]).astype(np.int32)


_graph_top_k = tf.function(selection.top_k_mask, autograph=False)
_graph_segment_top_k = tf.function(
    lambda keys, k, sizes: selection.segment_top_k_mask(keys, k, list(sizes)), autograph=False
)


@pytest.mark.parametrize("seed", range(8))
def test_top_k_mask_equals_numpy_on_random_buffers(seed):
    rng = np.random.default_rng(1000 + seed)
    keys = _segment_keys(rng, _random_sizes(rng, int(rng.integers(1, 40))))
    excluded = rng.random(keys.size) < 0.2
    keys[excluded] = selection.EXCLUDED
    candidates = int((keys >= 0).sum())
    for k in {0, 1, candidates // 3, candidates // 2, candidates - 1, candidates} - {-1}:
        got = _graph_top_k(tf.constant(keys), tf.constant(k))[0].numpy()
        np.testing.assert_array_equal(got, _numpy_top_k(keys, k), err_msg=f"k={k}")


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("count", [1, 5, 64, 65, 300])  # 64 / 65: both digit plans
def test_segment_top_k_mask_equals_numpy_per_segment(seed, count):
    rng = np.random.default_rng(2000 + 10 * count + seed)
    sizes = _random_sizes(rng, count)
    keys = _segment_keys(rng, sizes)
    # k per segment: 0, all (and beyond: clipped), or a random count.
    k = [int(rng.choice([0, n, n + 7, rng.integers(0, n + 1)])) for n in sizes]
    got = _graph_segment_top_k(tf.constant(keys), tf.constant(k, tf.int32), sizes).numpy()
    np.testing.assert_array_equal(got, _numpy_segment_top_k(keys, k, sizes))


@pytest.mark.parametrize("k", [0, 1, 4095, 4096, 4097, 8192, 12_000, 12_293, 12_294])
def test_all_equal_keys_keep_lowest_positions(k):
    keys = np.zeros(3 * 4096 + 6, np.int32)
    got = selection.top_k_mask(tf.constant(keys), k)[0].numpy()
    np.testing.assert_array_equal(got, np.arange(keys.size) < k)


@pytest.mark.parametrize("k_first", [0, 1, 4000, 5000])
def test_all_zero_segments_each_keep_their_lowest_positions(k_first):
    sizes = [5000, 3, 9000]
    keys = np.zeros(sum(sizes), np.int32)
    k = [k_first, 2, 4097]
    got = selection.segment_top_k_mask(tf.constant(keys), tf.constant(k), sizes).numpy()
    np.testing.assert_array_equal(got, _numpy_segment_top_k(keys, k, sizes))


def test_empty_segments_keep_nothing():
    sizes = [0, 4, 0, 3, 0]
    keys = np.array([5, 1, 5, 2, 7, 7, 0], np.int32)
    got = selection.segment_top_k_mask(tf.constant(keys), tf.constant([3, 2, 1, 2, 4]), sizes).numpy()
    np.testing.assert_array_equal(got, [True, False, True, False, True, True, False])


@pytest.mark.parametrize("mode", ["distinct", "ties"])
def test_two_million_key_segment_equals_numpy(mode):
    rng = np.random.default_rng(3000)
    sizes = [2_000_003, 1, 5000]
    keys = np.concatenate([_random_keys(rng, n, mode) for n in sizes]).astype(np.int32)
    total = keys.size
    for k in (total // 10, total // 2 + 3):
        got = selection.top_k_mask(tf.constant(keys), k)[0].numpy()
        np.testing.assert_array_equal(got, _numpy_top_k(keys, k))
    k = [700_001, 1, 4000]
    got = selection.segment_top_k_mask(tf.constant(keys), tf.constant(k), sizes).numpy()
    np.testing.assert_array_equal(got, _numpy_segment_top_k(keys, k, sizes))


def test_threshold_key_is_smallest_kept_key():
    rng = np.random.default_rng(4000)
    keys = _random_keys(rng, 10_000, "ties")
    for k in (1, 2500, 7777, 10_000):
        mask, threshold = selection.top_k_mask(tf.constant(keys), k)
        assert int(threshold) == keys[mask.numpy()].min()


def _graph_nodes(fn, count):
    """Nodes of `fn` traced for `count` segments of 10 keys, cond branches included."""
    traced = tf.function(fn, autograph=False).get_concrete_function(
        tf.TensorSpec([count * 10], tf.int32), tf.TensorSpec([count], tf.int32)
    )
    graph = traced.graph.as_graph_def()
    return len(graph.node) + sum(len(f.node_def) for f in graph.library.function)


# One selection over the concatenated buffer: per tensor only a few ops (split,
# sizes, per-segment fills), not a selection subgraph each (~75+ ops per layer,
# which took tens of seconds to trace on a ResNet).
def test_global_selection_graph_grows_by_a_few_nodes_per_tensor():
    def fn(count):
        return lambda x, k: selection.top_k_masks(tf.split(x, count), k[0])

    assert _graph_nodes(fn(41), 41) - _graph_nodes(fn(1), 1) <= 4 * 40


def test_segmented_selection_graph_grows_by_a_few_nodes_per_segment():
    def fn(count):
        return lambda x, k: selection.segment_top_k_mask(x, k, [10] * count)

    assert _graph_nodes(fn(41), 41) - _graph_nodes(fn(1), 1) <= 16 * 40
