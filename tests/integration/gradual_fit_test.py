"""Gradual (cubic) Global MP through model.fit, with and without steps_per_execution."""

import numpy as np
import pytest

import tf_globalmp

from . import helpers

FINAL = 0.9
EPOCHS = 3
STEPS = 8 * EPOCHS  # 256 digits / batch 32 -> 8 steps per epoch; steps 0..23


def _fit(digits, schedule, steps_per_execution=1):
    return helpers.recorded_fit(digits, schedule, 1, EPOCHS, steps_per_execution)


@pytest.fixture(scope="module")
def run(digits):
    # Due steps 2, 5, 8, ..., 20 (end_step is on the grid, so the last one is at FINAL).
    schedule = tf_globalmp.GlobalPolynomialDecay(0.0, FINAL, begin_step=2, end_step=20, frequency=3)
    return _fit(digits, schedule)


@pytest.fixture(scope="module")
def run_spe3(digits):
    # frequency 4 is not a multiple of steps_per_execution 3: the callback sees steps
    # 0, 3, 6, ... and the due steps 1, 5, 9, 13, 17, 21 fall between its calls.
    schedule = tf_globalmp.GlobalPolynomialDecay(0.0, FINAL, begin_step=1, end_step=21, frequency=4)
    return _fit(digits, schedule, steps_per_execution=3)


def _expected_kept(run, step):
    return helpers.n_keep(run["total"], helpers.schedule_sparsity(run["schedule"], step)[1])


def test_every_due_step_updates_once_to_the_schedule_sparsity(run):
    results = run["after"].results()
    due = helpers.due_steps(run["schedule"], 0, STEPS - 1)
    assert due == [2, 5, 8, 11, 14, 17, 20]
    assert [r.step for r in results] == due
    for result in results:
        assert result.kept == _expected_kept(run, result.step), result
        # The same float32 value (the library reports its shortest decimal).
        assert np.float32(result.target_sparsity) == np.float32(
            helpers.schedule_sparsity(run["schedule"], result.step)[1])


def test_masks_hold_the_exact_count_after_every_update(run):
    for record in run["after"].records:
        last_due = max(d for d in [-1] + helpers.due_steps(run["schedule"], 0, record["step"] - 1))
        expected = run["total"] if last_due < 0 else _expected_kept(run, last_due)
        assert helpers.kept(record["masks"]) == expected, record["step"]


def test_each_update_keeps_the_global_top_k_of_the_masked_weights(run):
    for step in helpers.due_steps(run["schedule"], 0, STEPS - 1):
        masked_weights, _ = run["before"].snapshots[step]
        sparsity = helpers.schedule_sparsity(run["schedule"], step)[1]
        got = next(r["masks"] for r in run["after"].records if r["step"] == step + 1)
        expected = helpers.reference_masks(masked_weights, sparsity)
        helpers.assert_same_arrays([m.astype(bool) for m in got], expected, f"step {step}")


def test_masks_are_fixed_between_updates(run):
    records = run["after"].records
    due = set(helpers.due_steps(run["schedule"], 0, STEPS - 1))
    for prev, cur in zip(records, records[1:]):
        if not any(prev["step"] <= d < cur["step"] for d in due):
            helpers.assert_same_arrays(cur["masks"], prev["masks"], f"step {cur['step']}")


def test_pruned_weights_never_come_back(run):
    records = run["after"].records
    for prev, cur in zip(records, records[1:]):
        for a, b in zip(prev["masks"], cur["masks"]):
            assert np.all(b <= a), cur["step"]


def test_pruned_weights_are_exactly_zero_at_every_batch_end(run):
    helpers.assert_pruned_weights_zero(run["after"].records)


def test_final_sparsity_is_exact(run):
    report = tf_globalmp.sparsity_report(run["model"])
    assert report.total.nonzero == helpers.n_keep(run["total"], FINAL)
    assert helpers.kept(helpers.masks(run["model"])) == helpers.n_keep(run["total"], FINAL)


def test_steps_per_execution_applies_every_due_update(run_spe3):
    results = run_spe3["after"].results()
    due = helpers.due_steps(run_spe3["schedule"], 0, STEPS - 1)
    assert due == [1, 5, 9, 13, 17, 21]
    assert [r.step for r in results] == due  # none skipped, none twice
    for result in results:
        assert result.kept == _expected_kept(run_spe3, result.step), result


def test_steps_per_execution_due_steps_fall_between_callback_calls(run_spe3):
    # Guards the test above: the callback runs once per execution (3, 3, 2 steps per
    # epoch of 8), so most due steps are only seen late and must still be applied.
    ends = [r["step"] for r in run_spe3["after"].records]
    assert ends == [3, 6, 8, 11, 14, 16, 19, 22, 24]
    seen = set([0] + ends[:-1])  # steps at which on_train_batch_begin ran
    late = [d for d in helpers.due_steps(run_spe3["schedule"], 0, STEPS - 1) if d not in seen]
    assert late == [1, 5, 9, 13, 17, 21]


def test_steps_per_execution_reaches_the_exact_final_sparsity(run_spe3):
    final = helpers.masks(run_spe3["model"])
    assert helpers.kept(final) == helpers.n_keep(run_spe3["total"], FINAL)
    for weight, mask in zip(helpers.raw_weights(run_spe3["model"]), final):
        assert np.all(weight[mask == 0] == 0.0)


def test_steps_per_execution_masks_are_monotone(run_spe3):
    records = run_spe3["after"].records
    for prev, cur in zip(records, records[1:]):
        for a, b in zip(prev["masks"], cur["masks"]):
            assert np.all(b <= a), cur["step"]
