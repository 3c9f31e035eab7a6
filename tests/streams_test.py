"""Epoch-deterministic array streams (digits, HAR-2)."""

import numpy as np

import tf_globalmp  # noqa: F401  (must precede TensorFlow: selects tf-keras)

from tf_globalmp.data import streams


def test_array_stream_reshuffles_each_epoch_and_resumes_at_an_epoch():
    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10, dtype=np.int32)

    def epochs(ds, count):
        batches = [b[1].numpy() for b in ds.take(count * 3)]  # 3 batches of <= 4
        return [np.concatenate(batches[3 * e:3 * e + 3]) for e in range(count)]

    first, second, third = epochs(streams.array_stream(x, y, 4, seed=3), 3)
    for order in (first, second, third):
        assert sorted(order) == list(range(10))
    assert list(first) != list(second) != list(third)
    resumed = epochs(streams.array_stream(x, y, 4, seed=3, initial_epoch=1), 2)
    np.testing.assert_array_equal(resumed[0], second)
    np.testing.assert_array_equal(resumed[1], third)


def test_steps_per_epoch_counts_the_last_partial_batch():
    assert [streams.steps_per_epoch(n, 4) for n in (1, 4, 5, 8, 9)] == [1, 1, 2, 2, 3]
