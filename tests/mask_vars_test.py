"""MaskVariables (compiled loops over (weight, mask, threshold) variables) vs numpy."""

import numpy as np
import pytest
import tensorflow as tf

from tf_globalmp import mask_vars

SHAPES = [(3, 3, 2, 4), (5,), (7, 6), (1, 1, 4, 3)]


def _triples(dtypes, rng):
    """One (weight, mask, threshold) triple per shape; mask about half ones."""
    out = []
    for shape, dtype in zip(SHAPES, dtypes):
        weight = rng.standard_normal(shape).astype(dtype)
        mask = (rng.random(shape) < 0.5).astype(dtype)
        out.append((tf.Variable(weight), tf.Variable(mask), tf.Variable(np.zeros((), dtype))))
    return out


def _set(triples):
    return mask_vars.MaskVariables(triples, tf.distribute.get_strategy())


# float16 beside float32: two dtype groups, two compiled loops; results in input order.
@pytest.mark.parametrize("dtypes", [["float32"] * 4, ["float32", "float16", "float32", "float16"]])
def test_kept_counts_and_masked_weights_equal_numpy(dtypes):
    triples = _triples(dtypes, np.random.default_rng(0))
    masks = _set(triples)
    assert masks.kept_counts() == [int(np.count_nonzero(m.numpy())) for _, m, _ in triples]
    for got, (w, m, _) in zip(masks.masked_weights(), triples):
        assert got.dtype == tf.float32
        want = w.numpy().astype(np.float32) * m.numpy().astype(np.float32)
        np.testing.assert_array_equal(got.numpy(), want.ravel())


@pytest.mark.parametrize("dtypes", [["float32"] * 4, ["float32", "float16", "float32", "float16"]])
def test_assign_sets_masks_weights_and_smallest_kept_magnitudes(dtypes):
    rng = np.random.default_rng(1)
    triples = _triples(dtypes, rng)
    weights = [w.numpy() for w, _, _ in triples]
    keep = [rng.random(w.shape) < 0.4 for w in weights]
    keep[1][:] = False  # nothing kept: tfmot's threshold is 0
    keep[3][:] = True
    masks = _set(triples)
    masks.assign([k.ravel() for k in keep])
    for (w, m, t), w0, k in zip(triples, weights, keep):
        np.testing.assert_array_equal(m.numpy(), k.astype(w0.dtype))
        np.testing.assert_array_equal(w.numpy(), w0 * k)
        assert t.numpy() == (np.abs(w0[k]).min() if k.any() else 0)
    assert masks.kept_counts() == [int(k.sum()) for k in keep]


def test_assign_of_a_wrong_size_names_the_sizes_and_changes_nothing():
    triples = _triples(["float32"] * 4, np.random.default_rng(2))
    before = [m.numpy().copy() for _, m, _ in triples]
    keep = [np.ones(int(np.prod(s)), bool) for s in SHAPES]
    keep[2] = keep[2][:-1]
    with pytest.raises(ValueError, match=r"keep must hold .*\[72, 5, 42, 12\], got \[72, 5, 41, 12\]"):
        _set(triples).assign(keep)
    for (_, m, _), m0 in zip(triples, before):
        np.testing.assert_array_equal(m.numpy(), m0)


# A float32 mask is counted by its sum, exact below 2**24 ones; an odd count above it,
# or a float16 mask above 2048 ones, would come out wrong from a float sum.
@pytest.mark.parametrize("dtype, size", [("float32", 1000), ("float16", 5000),
                                         ("float32", 2**24 + 8)])
def test_kept_count_is_exact_for_every_mask_dtype_and_size(dtype, size):
    mask = np.ones(size, dtype)
    mask[np.random.default_rng(0).choice(size, 7, replace=False)] = 0
    triple = (tf.Variable(np.zeros(size, dtype)), tf.Variable(mask), tf.Variable(np.zeros((), dtype)))
    assert _set([triple]).kept_counts() == [size - 7]
