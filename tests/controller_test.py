"""GlobalPruner on a wrapped model without training: masks vs numpy, steps, failures."""

import numpy as np
import pytest

import tf_globalmp
import tf_keras as keras

from numpy_reference import reference_masks, layer_top_k


def _wrapped(schedule, **options):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((10, 10, 2)),
            keras.layers.Conv2D(6, 3),
            keras.layers.DepthwiseConv2D(3),
            keras.layers.Flatten(),
            keras.layers.Dense(5),
            keras.layers.Dense(3),
        ]
    )
    return tf_globalmp.prune_low_magnitude_global(model, schedule, **options)


def _vars(pruner):
    return [(w.numpy().copy(), m.numpy().copy()) for w, m, _ in pruner._vars]


@pytest.mark.parametrize("min_weights", [0, 10, 30])
def test_prune_to_matches_numpy_reference(min_weights):
    pruner = tf_globalmp.GlobalPruner(_wrapped(tf_globalmp.GlobalConstantSparsity(0.9), min_weights=min_weights))
    weights = [w for w, _ in _vars(pruner)]
    pruner.prune_to(0.9)
    for (_, mask), ref in zip(_vars(pruner), reference_masks(weights, 0.9, min_weights)):
        np.testing.assert_array_equal(mask.astype(bool), ref)


def test_proportional_via_controller_is_exact_and_per_layer_top_k():
    pruner = tf_globalmp.GlobalPruner(
        _wrapped(tf_globalmp.GlobalConstantSparsity(0.9), min_weights=30, redistribution="proportional")
    )
    weights = [w for w, _ in _vars(pruner)]
    result = pruner.prune_to(0.9)
    assert result.kept == pruner.total - round(0.9 * pruner.total)
    for w, (_, mask) in zip(weights, _vars(pruner)):
        k = int(mask.sum())
        assert k >= min(30, w.size)
        np.testing.assert_array_equal(mask.astype(bool), layer_top_k(w, k))


def test_second_prune_uses_masked_weights_so_pruned_weights_never_return():
    pruner = tf_globalmp.GlobalPruner(_wrapped(tf_globalmp.GlobalConstantSparsity(0.9)))
    pruner.prune_to(0.5)
    first = [m for _, m in _vars(pruner)]
    # An optimizer step grows a pruned weight: it must not come back.
    w0, m0, _ = pruner._vars[0]
    idx = np.argwhere(m0.numpy() == 0)[0]
    bumped = w0.numpy()
    bumped[tuple(idx)] = 1e3
    w0.assign(bumped)
    pruner.prune_to(0.8)
    second = [m for _, m in _vars(pruner)]
    for a, b in zip(first, second):
        assert np.all(b <= a)
    assert second[0][tuple(idx)] == 0


def test_mask_already_at_target_is_left_unchanged():
    pruner = tf_globalmp.GlobalPruner(_wrapped(tf_globalmp.GlobalConstantSparsity(0.9)))
    pruner.prune_to(0.9)
    before = _vars(pruner)
    result = pruner.prune_to(0.9)
    assert result.unchanged
    for (w0, m0), (w1, m1) in zip(before, _vars(pruner)):
        np.testing.assert_array_equal(m0, m1)


def test_update_applies_a_missed_due_step_late_not_never():
    schedule = tf_globalmp.GlobalConstantSparsity(0.9, begin_step=5, frequency=1000)
    pruner = tf_globalmp.GlobalPruner(_wrapped(schedule))
    assert pruner.update(0) is None
    assert pruner.update(4) is None
    result = pruner.update(8)  # step 5 was never seen
    assert result is not None and result.step == 5 and result.kept == pruner.total - round(0.9 * pruner.total)
    assert pruner.update(9) is None


def test_nan_names_layer_and_changes_nothing():
    pruner = tf_globalmp.GlobalPruner(_wrapped(tf_globalmp.GlobalConstantSparsity(0.9)))
    w, _, _ = pruner._vars[2]
    bad = w.numpy()
    bad[0, 0] = np.nan
    w.assign(bad)
    before = _vars(pruner)
    with pytest.raises(ValueError, match=pruner.names[2]):
        pruner.prune_to(0.9)
    for (w0, m0), (w1, m1) in zip(before, _vars(pruner)):
        np.testing.assert_array_equal(m0, m1)
        np.testing.assert_array_equal(w0, w1)


def test_mt_over_budget_names_min_weights_and_changes_nothing():
    # (Given when wrapping, it fails there: min_threshold_test.)
    pruner = tf_globalmp.GlobalPruner(_wrapped(tf_globalmp.GlobalConstantSparsity(0.9)), min_weights=400)
    before = _vars(pruner)
    with pytest.raises(ValueError, match="min_weights=400"):
        pruner.prune_to(0.99)
    for (w0, m0), (w1, m1) in zip(before, _vars(pruner)):
        np.testing.assert_array_equal(m0, m1)


def test_thresholds_are_smallest_kept_magnitudes():
    pruner = tf_globalmp.GlobalPruner(_wrapped(tf_globalmp.GlobalConstantSparsity(0.9)))
    pruner.prune_to(0.9)
    for weight, mask, threshold in pruner._vars:
        kept = np.abs(weight.numpy()[mask.numpy() > 0])
        assert threshold.numpy() == (kept.min() if kept.size else 0.0)


def test_assign_masks_sets_masks_weights_and_thresholds_zero_where_nothing_is_kept():
    pruner = tf_globalmp.GlobalPruner(_wrapped(tf_globalmp.GlobalConstantSparsity(0.9)))
    before = _vars(pruner)
    rng = np.random.default_rng(0)
    keep = [rng.random(w.size) < 0.3 for w, _ in before]
    keep[1][:] = False  # this layer keeps nothing: tfmot's threshold is then 0
    keep[2][:] = True
    pruner.assign_masks(keep)
    for (w0, _), k, (weight, mask, threshold) in zip(before, keep, pruner._vars):
        k = k.reshape(w0.shape)
        np.testing.assert_array_equal(mask.numpy(), k.astype(np.float32))
        np.testing.assert_array_equal(weight.numpy(), w0 * k)
        assert threshold.numpy() == (np.abs(w0[k]).min() if k.any() else 0.0)
    assert pruner.kept_counts() == [int(k.sum()) for k in keep]


def test_for_model_reuses_the_compiled_pruner_unless_options_change():
    wrapped = _wrapped(tf_globalmp.GlobalConstantSparsity(0.5))
    first = tf_globalmp.GlobalPruner.for_model(wrapped, min_weights=None)
    assert tf_globalmp.GlobalPruner.for_model(wrapped, min_weights=None) is first
    other = tf_globalmp.GlobalPruner.for_model(wrapped, min_weights=2)
    assert other is not first and other.sigma == 2
    # Not tracked by Keras: the model saves and lists no extra weights.
    assert all("pruner" not in v.name for v in wrapped.variables)
