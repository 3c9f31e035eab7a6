"""tf_globalmp.models.fastgrnn: cell equations, shapes, serialization, pruning wrappers."""

import os

import numpy as np
import pytest

import tf_globalmp
import tf_keras as keras

from tf_globalmp import prune
from tf_globalmp import wrapping
from tf_globalmp.models import fastgrnn


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _small_layer(return_sequences=True):
    cell = fastgrnn.FastGRNNCell(3, w_rank=2, u_rank=2, zeta_init=0.5, nu_init=-1.0)
    layer = fastgrnn.FastGRNN(cell, return_sequences=return_sequences)
    layer.build((None, 2, 2))
    cell.W1.assign([[0.1, -0.2], [0.3, 0.4]])
    cell.W2.assign([[0.5, -0.1, 0.2], [0.0, 0.3, -0.4]])
    cell.U1.assign([[0.2, 0.1], [-0.3, 0.2], [0.1, -0.1]])
    cell.U2.assign([[0.4, 0.0, -0.2], [0.1, 0.2, 0.3]])
    cell.bias_gate.assign([0.1, -0.1, 0.0])
    cell.bias_update.assign([0.0, 0.2, -0.2])
    return layer


def test_cell_matches_hand_computed_two_steps():
    layer = _small_layer()
    x = np.array([[[1.0, -1.0], [0.5, 2.0]]], np.float32)
    # Hand computation, step by step (row-vector convention x @ W1 @ W2).
    w = np.array([[0.1, -0.2], [0.3, 0.4]]) @ np.array([[0.5, -0.1, 0.2], [0.0, 0.3, -0.4]])
    u = np.array([[0.2, 0.1], [-0.3, 0.2], [0.1, -0.1]]) @ np.array(
        [[0.4, 0.0, -0.2], [0.1, 0.2, 0.3]])
    b_z, b_h = np.array([0.1, -0.1, 0.0]), np.array([0.0, 0.2, -0.2])
    zeta, nu = _sigmoid(0.5), _sigmoid(-1.0)
    h = np.zeros(3)
    expected = []
    for t in range(2):
        pre = x[0, t] @ w + h @ u
        z = _sigmoid(pre + b_z)
        c = np.tanh(pre + b_h)
        h = z * h + (zeta * (1 - z) + nu) * c
        expected.append(h)
    # Step 1 written out for the first unit, as a check on the loop above.
    pre0 = x[0, 0] @ w
    z0 = _sigmoid(pre0[0] + 0.1)
    assert expected[0][0] == pytest.approx((zeta * (1 - z0) + nu) * np.tanh(pre0[0]))
    np.testing.assert_allclose(layer(x).numpy()[0], np.array(expected), rtol=1e-5, atol=1e-6)


def test_default_ranks_are_full_and_prunable_weights_are_the_factors():
    model = fastgrnn.build(timesteps=4)
    cell = fastgrnn.cell_of(model)
    assert [tuple(v.shape) for v in cell.factor_weights()] == [
        (9, 9), (9, 80), (80, 80), (80, 80)]
    assert model.get_layer("rnn").get_prunable_weights() == cell.factor_weights()
    assert float(cell.zeta.numpy()[0]) == 1.0 and float(cell.nu.numpy()[0]) == -4.0
    assert model.output_shape == (None, 2)


def test_factors_are_initialised_independently():
    cell = fastgrnn.cell_of(fastgrnn.build(timesteps=2))
    assert not np.allclose(cell.U1.numpy(), cell.U2.numpy())
    assert np.std(cell.U1.numpy()) == pytest.approx(0.1, rel=0.1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(units=0), "units must be a positive int, got 0"),
    (dict(w_rank=-2), "w_rank must be a positive int, got -2"),
    (dict(kernel_stddev=0.0), "kernel_stddev must be > 0"),
])
def test_cell_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fastgrnn.FastGRNNCell(**kwargs)


def test_save_and_load_keras_round_trip(tmp_path):
    model = fastgrnn.build(timesteps=5, w_rank=4, u_rank=6)
    x = np.random.default_rng(0).standard_normal((3, 5, 9)).astype(np.float32)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)
    assert fastgrnn.cell_of(loaded).get_config() == fastgrnn.cell_of(model).get_config()


def test_wrapping_counts_each_factor_once_and_survives_save(tmp_path):
    model = fastgrnn.build(timesteps=3)
    wrapped = prune.prune_low_magnitude_global(
        model, tf_globalmp.GlobalConstantSparsity(0.5, begin_step=0))
    assert sorted(w.layer.name for w in wrapping.collect_wrappers(wrapped)) == ["logits", "rnn"]
    report = tf_globalmp.sparsity_report(wrapped)
    assert report.total.weights == 9 * 9 + 9 * 80 + 2 * 80 * 80 + 80 * 2
    tf_globalmp.GlobalPruner(wrapped).prune_to(0.5)
    path = os.path.join(tmp_path, "wrapped.keras")
    wrapped.save(path)
    with tf_globalmp.prune_scope():
        loaded = keras.models.load_model(path)
    assert tf_globalmp.sparsity_report(loaded).total.nonzero == report.total.weights // 2 + 1


def test_for_tflite_copy_is_rolled_batch_one_with_same_outputs():
    model = fastgrnn.build(timesteps=6, unroll=True)
    copy = fastgrnn.for_tflite(model)
    assert copy.input_shape == (1, 6, 9)
    assert not copy.get_layer("rnn").unroll and copy.get_layer("rnn").per_step_factors
    x = np.random.default_rng(1).standard_normal((1, 6, 9)).astype(np.float32)
    np.testing.assert_allclose(copy(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_for_tflite_rejects_other_models():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="has no FastGRNN layer"):
        fastgrnn.for_tflite(model)


def test_compact_drops_zero_components_and_keeps_outputs():
    model = fastgrnn.build(timesteps=5)
    cell = fastgrnn.cell_of(model)
    u1, u2 = cell.U1.numpy(), cell.U2.numpy()
    u1[:, 7:] = 0.0
    u2[7:, :] = 0.0
    cell.U1.assign(u1)
    cell.U2.assign(u2)
    small = fastgrnn.compact(model)
    assert [tuple(v.shape) for v in fastgrnn.cell_of(small).factor_weights()] == [
        (9, 9), (9, 80), (80, 7), (7, 80)]
    x = np.random.default_rng(2).standard_normal((2, 5, 9)).astype(np.float32)
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
