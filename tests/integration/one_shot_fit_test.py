"""One-shot Global MP through model.fit: exact, global top-K, frozen, zeros stay zero."""

import numpy as np
import pytest

import tf_globalmp

from . import helpers

BEGIN = 5  # the one-shot update happens at the start of step 5 (inside epoch 1)
FREQUENCY = 4  # later due steps (9, 13, ...) must find the mask at target and keep it
SPARSITY = 0.9
EPOCHS = 3  # 8 batches per epoch -> steps 0..23


@pytest.fixture(scope="module")
def run(digits):
    schedule = tf_globalmp.GlobalConstantSparsity(SPARSITY, begin_step=BEGIN, frequency=FREQUENCY)
    run = helpers.recorded_fit(digits, schedule, 0, EPOCHS)
    return dict(run, n_keep=helpers.n_keep(run["total"], SPARSITY))


def _record_after_step(run, step):
    """The batch-end record of training step `step` (optimizer iterations == step + 1)."""
    return next(r for r in run["after"].records if r["step"] == step + 1)


def test_prunable_weights_are_exactly_the_kernels(run):
    assert run["total"] == sum(helpers.CNN_SIZES)
    names = run["pruning"].pruner.names
    assert len(names) == 4 and any("depthwise_kernel" in n for n in names)


def test_masks_are_all_ones_before_the_update_step(run):
    for record in run["after"].records:
        if record["step"] <= BEGIN:
            assert helpers.kept(record["masks"]) == run["total"], record["step"]


def test_sparsity_is_exact_right_after_the_update(run):
    record = _record_after_step(run, BEGIN)
    assert helpers.kept(record["masks"]) == run["n_keep"]
    result = record["result"]
    assert (result.step, result.kept, result.total, result.unchanged) == (
        BEGIN, run["n_keep"], run["total"], False
    )
    assert result.achieved_sparsity == pytest.approx(1 - run["n_keep"] / run["total"], abs=0)


def test_kept_weights_are_the_global_top_k_at_the_update_moment(run):
    weights_at_update, masks_at_update = run["before"].snapshots[BEGIN]
    assert helpers.kept(masks_at_update) == run["total"]  # still dense when captured
    expected = helpers.reference_masks(weights_at_update, SPARSITY)
    got = _record_after_step(run, BEGIN)["masks"]
    helpers.assert_same_arrays([m.astype(bool) for m in got], expected, "masks vs numpy reference")


def test_mask_never_changes_after_the_one_shot_update(run):
    final = _record_after_step(run, BEGIN)["masks"]
    later = [r for r in run["after"].records if r["step"] > BEGIN + 1]
    assert later, "the fit should run past the update"
    for record in later:
        helpers.assert_same_arrays(record["masks"], final, f"masks at step {record['step']}")


def test_later_due_steps_leave_the_mask_unchanged(run):
    results = run["after"].results()
    assert [r.step for r in results] == helpers.due_steps(run["schedule"], 0, 8 * EPOCHS - 1)
    assert not results[0].unchanged
    assert all(r.unchanged and r.kept == run["n_keep"] for r in results[1:])


def test_pruned_weights_are_exactly_zero_at_every_batch_end(run):
    helpers.assert_pruned_weights_zero(run["after"].records)


def test_final_model_reports_the_exact_sparsity(run):
    report = tf_globalmp.sparsity_report(run["model"])
    assert (report.total.weights, report.total.nonzero) == (run["total"], run["n_keep"])
    assert helpers.pruning_steps(run["model"]) == [8 * EPOCHS] * 4


def test_float32_schedule_value_does_not_change_a_python_one_shot_mask():
    """N = 15 at 0.9: round(0.9 * 15) = 14 but round(float32(0.9) * 15) = 13, so a
    schedule read naively would keep one more weight and revive a pruned one."""
    import tf_keras as keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3, use_bias=False)])
    wrapped = helpers.compile_model(
        helpers.wrap(model, tf_globalmp.GlobalConstantSparsity(0.9, frequency=1)))
    tf_globalmp.GlobalPruner(wrapped).prune_to(0.9, step=0)
    before = helpers.masks(wrapped)
    assert helpers.kept(before) == 1
    x = np.random.default_rng(0).standard_normal((64, 5)).astype("float32")
    y = np.zeros(64, "int32")
    wrapped.fit(x, y, batch_size=16, epochs=1, verbose=0,
                callbacks=[tf_globalmp.UpdateGlobalPruningStep()])
    for a, b in zip(before, helpers.masks(wrapped)):
        np.testing.assert_array_equal(a, b)
