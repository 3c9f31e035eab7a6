"""Save mid-training, reload, continue: .keras, h5 and tf.train.Checkpoint.

Saving happens at an epoch boundary (fit 1 epoch, save, fit 2 more on the restored
model), so the resumed run sees the same batches as an uninterrupted 3-epoch run
and must reach the same masks. A mid-epoch save (from a callback) is checked too.
"""

import numpy as np
import pytest
import tensorflow as tf

import tf_globalmp
import tf_keras as keras

from . import helpers

pytestmark = pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")

STEPS_PER_EPOCH = 8
FINAL = 0.9
FORMATS = ["keras", "h5", "checkpoint"]


def _one_shot():
    # Update at 5 (inside epoch 1); later due steps 9, 13, 17, 21 find it at target.
    return tf_globalmp.GlobalConstantSparsity(FINAL, begin_step=5, frequency=4)


def _gradual():
    # Due 2, 5 in epoch 1; 8, 11, 14, 17, 20 after the restore.
    return tf_globalmp.GlobalPolynomialDecay(0.0, FINAL, begin_step=2, end_step=20, frequency=3)


def _new_model(schedule, seed=4):
    return helpers.compile_model(helpers.wrap(helpers.cnn(seed=seed), schedule))


def _fit(model, digits, epochs, extra=()):
    x, y = digits
    pruning = tf_globalmp.UpdateGlobalPruningStep()
    after = helpers.AfterBatch(pruning)
    model.fit(x, y, batch_size=helpers.BATCH, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[pruning, after, *extra])
    return after


def _save_and_restore(model, fmt, tmp_path, schedule_fn):
    """Saves `model`; returns the restored model (a new object)."""
    if fmt == "checkpoint":
        prefix = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(
            str(tmp_path / "ckpt")
        )
        fresh = _new_model(schedule_fn(), seed=99)  # different initial weights
        fresh.optimizer.build(fresh.trainable_variables)
        status = tf.train.Checkpoint(model=fresh, optimizer=fresh.optimizer).restore(prefix)
        status.assert_existing_objects_matched()
        return fresh
    path = str(tmp_path / f"model.{fmt}")
    model.save(path)
    with tf_globalmp.prune_scope():
        return keras.models.load_model(path)


def _results_since(after, resume_step):
    """Updates due at or after `resume_step`.

    The first update after a restore may re-visit the last due step before it (the
    controller's window starts empty); that one must find the restored mask at its
    target and leave it unchanged.
    """
    results = after.results()
    revisits = [r for r in results if r.step < resume_step]
    assert len(revisits) <= 1 and all(r.unchanged for r in revisits), revisits
    return [r for r in results if r.step >= resume_step]


def _state(model):
    return dict(
        masks=helpers.masks(model),
        weights=helpers.all_weights(model),
        steps=helpers.pruning_steps(model),
        iterations=int(model.optimizer.iterations.numpy()),
    )


@pytest.fixture(scope="module")
def uninterrupted(digits):
    """3 epochs without stopping, for each schedule: the reference for resumed runs."""
    out = {}
    for name, schedule_fn in [("one_shot", _one_shot), ("gradual", _gradual)]:
        model = _new_model(schedule_fn())
        after = _fit(model, digits, epochs=3)
        out[name] = dict(masks=helpers.masks(model), records=after.records)
    return out


def _resumed(schedule_fn, fmt, digits, tmp_dir):
    """Train 1 epoch, save in `fmt`, restore, train 2 more: the states along the way."""
    model = _new_model(schedule_fn())
    _fit(model, digits, epochs=1)
    saved = _state(model)
    restored = _save_and_restore(model, fmt, tmp_dir, schedule_fn)
    loaded = _state(restored)
    after = _fit(restored, digits, epochs=2)
    return dict(format=fmt, saved=saved, loaded=loaded, after=after, model=restored)


@pytest.fixture(scope="module", params=FORMATS)
def resumed_one_shot(request, digits, tmp_path_factory):
    return _resumed(_one_shot, request.param, digits, tmp_path_factory.mktemp("one_shot"))


@pytest.fixture(scope="module", params=FORMATS)
def resumed_gradual(request, digits, tmp_path_factory):
    return _resumed(_gradual, request.param, digits, tmp_path_factory.mktemp("gradual"))


def test_one_shot_restore_brings_back_masks_weights_and_steps(resumed_one_shot):
    saved, loaded = resumed_one_shot["saved"], resumed_one_shot["loaded"]
    assert helpers.kept(saved["masks"]) == helpers.n_keep(sum(helpers.CNN_SIZES), FINAL)
    helpers.assert_same_arrays(loaded["masks"], saved["masks"], "masks")
    helpers.assert_same_arrays(loaded["weights"], saved["weights"], "all weights")
    assert loaded["steps"] == saved["steps"] == [STEPS_PER_EPOCH] * 4
    assert loaded["iterations"] == saved["iterations"] == STEPS_PER_EPOCH


def test_one_shot_mask_is_kept_not_recomputed_after_restore(resumed_one_shot):
    restored_masks = resumed_one_shot["loaded"]["masks"]
    records = resumed_one_shot["after"].records
    assert [r["step"] for r in records] == list(range(9, 25))  # step count continued
    for record in records:
        helpers.assert_same_arrays(record["masks"], restored_masks, f"step {record['step']}")
    helpers.assert_pruned_weights_zero(records)
    results = _results_since(resumed_one_shot["after"], STEPS_PER_EPOCH)
    assert [r.step for r in results] == [9, 13, 17, 21]
    assert all(r.unchanged for r in resumed_one_shot["after"].results())


def test_one_shot_resume_matches_an_uninterrupted_run(resumed_one_shot, uninterrupted):
    helpers.assert_same_arrays(
        helpers.masks(resumed_one_shot["model"]), uninterrupted["one_shot"]["masks"], "final masks"
    )


def test_gradual_restore_brings_back_masks_and_steps(resumed_gradual):
    saved, loaded = resumed_gradual["saved"], resumed_gradual["loaded"]
    helpers.assert_same_arrays(loaded["masks"], saved["masks"], "masks")
    helpers.assert_same_arrays(loaded["weights"], saved["weights"], "all weights")
    assert loaded["steps"] == saved["steps"] == [STEPS_PER_EPOCH] * 4
    assert helpers.kept(saved["masks"]) == helpers.n_keep(
        sum(helpers.CNN_SIZES), helpers.schedule_sparsity(_gradual(), 5)[1]
    )


def test_gradual_continues_on_schedule_to_the_exact_final_sparsity(resumed_gradual):
    total = sum(helpers.CNN_SIZES)
    results = _results_since(resumed_gradual["after"], STEPS_PER_EPOCH)
    assert [r.step for r in results] == [8, 11, 14, 17, 20]
    for result in results:
        assert result.kept == helpers.n_keep(total, helpers.schedule_sparsity(_gradual(), result.step)[1])
    previous = resumed_gradual["loaded"]["masks"]
    for record in resumed_gradual["after"].records:
        for a, b in zip(previous, record["masks"]):
            assert np.all(b <= a), record["step"]  # nothing restored comes back
        previous = record["masks"]
    assert helpers.kept(helpers.masks(resumed_gradual["model"])) == helpers.n_keep(total, FINAL)


def test_gradual_resume_matches_an_uninterrupted_run(resumed_gradual, uninterrupted):
    helpers.assert_same_arrays(
        helpers.masks(resumed_gradual["model"]), uninterrupted["gradual"]["masks"], "final masks"
    )


class _SaveAt(keras.callbacks.Callback):
    """Saves the model at the end of training step `step` (put after the pruning callback)."""

    def __init__(self, step, path):
        super().__init__()
        self.step, self.path = step, path

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) == self.step + 1:
            self.model.save(self.path)
            self.saved_masks = helpers.masks(self.model)


def test_mid_epoch_keras_save_resumes_at_the_saved_step(digits, tmp_path):
    # Saved at the end of step 11 (mid epoch 2), after the updates at 2, 5, 8, 11.
    path = str(tmp_path / "mid.keras")
    saver = _SaveAt(11, path)
    _fit(_new_model(_gradual()), digits, epochs=2, extra=[saver])
    with tf_globalmp.prune_scope():
        restored = keras.models.load_model(path)
    assert helpers.pruning_steps(restored) == [12] * 4
    helpers.assert_same_arrays(helpers.masks(restored), saver.saved_masks, "masks")
    after = _fit(restored, digits, epochs=2)
    results = _results_since(after, 12)
    assert [r.step for r in results] == [14, 17, 20]
    total = sum(helpers.CNN_SIZES)
    for result in results:
        assert result.kept == helpers.n_keep(total, helpers.schedule_sparsity(_gradual(), result.step)[1])
    assert helpers.kept(helpers.masks(restored)) == helpers.n_keep(total, FINAL)


def _siamese(seed=12):
    """Every prunable layer is shared: one Dense applied to the image and its transpose."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 1))
    shared = keras.layers.Dense(10, name="shared_head")
    flat = keras.layers.Flatten()
    a = shared(flat(inp))
    b = shared(flat(keras.layers.Permute((2, 1, 3))(inp)))
    return keras.Model(inp, keras.layers.Average()([a, b]), name="siamese")


def test_mid_epoch_save_of_an_all_shared_model_resumes_at_the_true_step(digits, tmp_path):
    path = str(tmp_path / "siamese.keras")
    schedule = tf_globalmp.GlobalConstantSparsity(0.5, begin_step=6)
    model = helpers.compile_model(helpers.wrap(_siamese(), schedule))
    saver = _SaveAt(3, path)  # after 4 training steps, before the update at step 6
    _fit(model, digits, epochs=1, extra=[saver])
    with tf_globalmp.prune_scope():
        restored = keras.models.load_model(path)
    assert int(restored.optimizer.iterations.numpy()) == 4
    after = _fit(restored, digits, epochs=1)
    first = next(r for r in after.records if r["result"] is not None)
    # The one-shot update must come after 6 trained steps (iterations 6 -> 7 at batch end).
    assert first["step"] == 7
    assert helpers.pruning_steps(restored) == [4 + 8]
