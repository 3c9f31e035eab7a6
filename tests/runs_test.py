"""Run directories: resumable state in the on-disk format runs have always written,
config checks on resume, the per-layer table read back from sparsity.json."""

import json
import os

import numpy as np
import pytest

import tf_globalmp  # noqa: F401  (must precede TensorFlow: selects tf-keras)
import tensorflow as tf

from tf_globalmp import _compat
from tf_globalmp import controller
from tf_globalmp import prune
from tf_globalmp import report
from tf_globalmp import runs
from tf_globalmp import schedules

keras = _compat.keras
CONFIG = {"epochs": 3, "learning_rate": 0.1, "threads": 2, "ranks": (4, 2)}


def _model(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _write_state_as_before(workdir, model, config):
    """train_state/ exactly as runs written before tf_globalmp.runs existed have it."""
    state_dir = os.path.join(workdir, runs.STATE_DIR)
    prefix = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(
        os.path.join(state_dir, "step_000000551", "ckpt"))
    with open(os.path.join(state_dir, "state.json"), "w") as f:
        json.dump({"epoch": 1, "step": 551, "prefix": os.path.relpath(prefix, state_dir),
                   "history": [{"epoch": 1, "loss": 0.5}], "extra": {"dense": 0.25},
                   "config": json.loads(json.dumps(config))}, f)


def test_state_written_before_the_layout_change_resumes(tmp_path):
    saved = _model(seed=1)
    saved.train_on_batch(np.ones((4, 6)), np.ones((4, 2)))  # momentum and step != 0
    _write_state_as_before(str(tmp_path), saved, CONFIG)
    fresh = _model(seed=2)
    state = runs.RunState(str(tmp_path), fresh, CONFIG, resumable=("threads",))
    assert state.restore() == (1, [{"epoch": 1, "loss": 0.5}], {"dense": 0.25})
    assert state.step == 551
    for a, b in zip(saved.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(fresh.optimizer.iterations.numpy()) == 1
    for a, b in zip(saved.optimizer.variables(), fresh.optimizer.variables()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # step and momentum


@pytest.mark.parametrize("change, refused", [
    ({"threads": 1}, None),
    ({"learning_rate": 0.5}, "learning_rate=0.1"),
    ({"new_field": True}, "new_field=None"),
])
def test_resume_refuses_a_config_that_differs_outside_the_resumable_fields(
        tmp_path, change, refused):
    _write_state_as_before(str(tmp_path), _model(seed=1), CONFIG)
    state = runs.RunState(str(tmp_path), _model(seed=2), {**CONFIG, **change},
                          resumable=("threads",))
    if refused is None:
        assert state.restore()[0] == 1
    else:
        with pytest.raises(ValueError, match=f"different config.*{refused}"):
            state.restore()


@pytest.mark.parametrize("value, resumes", [("none", True), ("channel", False)])
def test_a_field_added_after_the_run_resumes_only_at_its_default(tmp_path, value, resumes):
    _write_state_as_before(str(tmp_path), _model(seed=1), CONFIG)
    state = runs.RunState(str(tmp_path), _model(seed=2), {**CONFIG, "granularity": value},
                          resumable=("threads",), defaults={"granularity": "none"})
    if resumes:
        assert state.restore()[0] == 1
    else:
        with pytest.raises(ValueError, match="different config.*granularity='none'"):
            state.restore()


def test_save_keeps_only_the_newest_checkpoint(tmp_path):
    state = runs.RunState(str(tmp_path), _model(seed=1), CONFIG, resumable=())
    state.save(1, [], {})
    state.save(1, [], {}, step=7, mid_epoch=True)
    assert sorted(os.listdir(tmp_path / runs.STATE_DIR)) == ["state.json", "step_000000007"]
    assert runs.RunState(str(tmp_path), _model(seed=2), CONFIG, resumable=()).restore()[0] == 1


def test_sparsity_report_reads_back_from_the_run_dir(tmp_path):
    model = prune.prune_low_magnitude_global(
        _model(seed=3), schedules.GlobalConstantSparsity(0.6, begin_step=0))
    controller.GlobalPruner(model).prune_to(0.6, step=0)
    stripped = prune.strip_pruning(model)
    written = report.sparsity_report(stripped)
    runs.write_run_dir(str(tmp_path / "run"), stripped, CONFIG, {"completed": True},
                       written.to_dict())
    assert runs.load_sparsity_report(str(tmp_path / "run")) == written
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp_run_")]
