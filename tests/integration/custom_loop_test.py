"""Global MP in a custom training loop: GradientTape + GlobalPruner.update/apply_masks."""

import numpy as np
import pytest
import tensorflow as tf

import tf_globalmp
import tf_keras as keras

from . import helpers

FINAL = 0.9
EPOCHS = 3
STEPS = 8 * EPOCHS


def _schedule():
    return tf_globalmp.GlobalPolynomialDecay(0.0, FINAL, begin_step=2, end_step=20, frequency=3)


def _custom_loop(digits):
    x, y = digits
    schedule = _schedule()
    model = helpers.wrap(helpers.cnn(seed=3), schedule)
    pruner = tf_globalmp.GlobalPruner(model)
    optimizer = keras.optimizers.SGD(0.05, momentum=0.9)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    before, records, results = {}, [], []
    step = 0
    for _ in range(EPOCHS):
        for start in range(0, len(x), helpers.BATCH):
            before[step] = helpers.effective_weights(model)
            result = pruner.update(step)
            if result is not None:
                results.append(result)
            train_step(x[start:start + helpers.BATCH], y[start:start + helpers.BATCH])
            pruner.apply_masks()
            step += 1
            records.append(dict(step=step, masks=helpers.masks(model),
                                weights=helpers.raw_weights(model)))
    return dict(model=model, pruner=pruner, before=before, records=records,
                results=results, schedule=schedule, total=pruner.total)


def _fit(digits):
    x, y = digits
    model = helpers.compile_model(helpers.wrap(helpers.cnn(seed=3), _schedule()))
    pruning = tf_globalmp.UpdateGlobalPruningStep()
    after = helpers.AfterBatch(pruning)
    model.fit(x, y, batch_size=helpers.BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[pruning, after])
    return dict(model=model, records=after.records)


@pytest.fixture(scope="module")
def run(digits):
    return _custom_loop(digits)


def _kept_for(run, step):
    return helpers.n_keep(run["total"], helpers.schedule_sparsity(run["schedule"], step)[1])


def test_every_due_step_updates_to_the_exact_schedule_count(run):
    due = helpers.due_steps(run["schedule"], 0, STEPS - 1)
    assert [r.step for r in run["results"]] == due
    for result in run["results"]:
        assert result.kept == _kept_for(run, result.step)
        record = run["records"][result.step]  # batch end of that step
        assert helpers.kept(record["masks"]) == result.kept


def test_each_update_keeps_the_global_top_k_of_the_masked_weights(run):
    for result in run["results"]:
        expected = helpers.reference_masks(run["before"][result.step], result.target_sparsity)
        got = [m.astype(bool) for m in run["records"][result.step]["masks"]]
        helpers.assert_same_arrays(got, expected, f"step {result.step}")


def test_masks_are_fixed_between_updates_and_monotone(run):
    due = {r.step for r in run["results"]}
    records = run["records"]
    for prev, cur in zip(records, records[1:]):
        for a, b in zip(prev["masks"], cur["masks"]):
            assert np.all(b <= a), cur["step"]
        if cur["step"] - 1 not in due:
            helpers.assert_same_arrays(cur["masks"], prev["masks"], f"step {cur['step']}")


def test_pruned_weights_are_exactly_zero_after_every_step(run):
    helpers.assert_pruned_weights_zero(run["records"])


def test_final_sparsity_is_exact(run):
    assert sum(run["pruner"].layer_kept()) == helpers.n_keep(run["total"], FINAL)
    report = tf_globalmp.sparsity_report(run["model"])
    assert report.total.nonzero == helpers.n_keep(run["total"], FINAL)


def test_custom_loop_masks_equal_model_fit_masks(run, digits):
    # Same seed, data order, optimizer and schedule: the two drivers must agree.
    fitted = _fit(digits)
    assert [r["step"] for r in fitted["records"]] == [r["step"] for r in run["records"]]
    for a, b in zip(fitted["records"], run["records"]):
        helpers.assert_same_arrays(a["masks"], b["masks"], f"masks at step {a['step']}")
