"""What a run shows: schedule warnings at fit start, TensorBoard scalars, tfmot summaries."""

import glob
import logging

import numpy as np
import pytest
import tensorflow as tf

import tf_globalmp
from tf_globalmp import _compat

from . import helpers

STEPS_PER_EPOCH = 8  # 256 digits / batch 32


def _fit(digits, schedule, epochs=1, callbacks=()):
    x, y = digits
    model = helpers.compile_model(helpers.wrap(helpers.cnn(seed=2), schedule))
    model.fit(x, y, batch_size=helpers.BATCH, epochs=epochs, shuffle=False, verbose=0,
              callbacks=list(callbacks))
    return model


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_end_step_beyond_the_fit_warns_with_the_numbers(digits, caplog):
    schedule = tf_globalmp.GlobalPolynomialDecay(0.0, 0.8, begin_step=0, end_step=100,
                                                 frequency=2)
    with caplog.at_level(logging.WARNING):
        model = _fit(digits, schedule, callbacks=[tf_globalmp.UpdateGlobalPruningStep()])
    messages = [m for m in _warnings(caplog) if "will not be reached" in m]
    assert len(messages) == 1, _warnings(caplog)
    # Last update of the schedule: step 100; this fit's last step: 7; its last due
    # update: step 6.
    assert "step 100" in messages[0] and "ends at step 7" in messages[0]
    assert "step 6 at sparsity" in messages[0]
    assert 0 < tf_globalmp.sparsity_report(model).total.sparsity < 0.8


def test_begin_step_after_the_fit_warns_that_nothing_is_pruned(digits, caplog):
    schedule = tf_globalmp.GlobalConstantSparsity(0.8, begin_step=50, frequency=10)
    with caplog.at_level(logging.WARNING):
        model = _fit(digits, schedule, callbacks=[tf_globalmp.UpdateGlobalPruningStep()])
    assert any("will not be pruned" in m for m in _warnings(caplog)), _warnings(caplog)
    assert tf_globalmp.sparsity_report(model).total.sparsity == 0.0


def test_schedule_that_fits_inside_the_run_does_not_warn(digits, caplog):
    schedule = tf_globalmp.GlobalPolynomialDecay(0.0, 0.8, begin_step=0, end_step=6,
                                                 frequency=2)
    with caplog.at_level(logging.WARNING):
        _fit(digits, schedule, callbacks=[tf_globalmp.UpdateGlobalPruningStep()])
    assert not [m for m in _warnings(caplog) if "schedule" in m], _warnings(caplog)


def _scalars(log_dir):
    """{tag: [(step, value)]} from the event files under `log_dir`."""
    out = {}
    for path in glob.glob(f"{log_dir}/**/events.out.tfevents.*", recursive=True):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.HasField("tensor"):
                    number = tf.make_ndarray(value.tensor)
                    if number.dtype.kind not in "fiu" or number.size != 1:
                        continue  # e.g. the Keras TensorBoard's model config text
                else:
                    number = value.simple_value
                out.setdefault(value.tag, []).append((event.step, float(number)))
    return out


def test_log_dir_gets_global_and_per_layer_scalars_at_every_update(digits, tmp_path):
    schedule = tf_globalmp.GlobalPolynomialDecay(0.0, 0.9, begin_step=0, end_step=12,
                                                 frequency=4)
    pruning = tf_globalmp.UpdateGlobalPruningStep(log_dir=str(tmp_path / "tb"))
    model = _fit(digits, schedule, epochs=2, callbacks=[pruning])
    scalars = _scalars(str(tmp_path / "tb"))
    due = [0, 4, 8, 12]
    assert [s for s, _ in scalars["global_mp/sparsity"]] == due
    targets = [helpers.schedule_sparsity(schedule, s)[1] for s in due]
    np.testing.assert_allclose([v for _, v in scalars["global_mp/target_sparsity"]], targets,
                               atol=1e-6)
    final = scalars["global_mp/sparsity"][-1][1]
    assert final == pytest.approx(tf_globalmp.sparsity_report(model).total.sparsity, abs=1e-6)
    layer_tags = sorted(t for t in scalars if t.startswith("layer_sparsity/"))
    assert len(layer_tags) == len(helpers.CNN_SIZES)
    rows = {f"layer_sparsity/{r.name}": r.sparsity
            for r in tf_globalmp.sparsity_report(model).rows}
    for tag in layer_tags:
        assert scalars[tag][-1][1] == pytest.approx(rows[tag], abs=1e-6)
    thresholds = [v for _, v in scalars["global_mp/threshold"]]
    assert all(b >= a for a, b in zip(thresholds[1:], thresholds[2:]))  # rises as it prunes
    assert "global_mp/mt_floor_layers" in scalars


def test_tfmot_pruning_summaries_work_alongside(digits, tmp_path):
    tfmot = _compat.tfmot
    schedule = tf_globalmp.GlobalConstantSparsity(0.7, begin_step=0, frequency=4)
    # tfmot writes at each epoch's start: the second epoch shows the pruned model.
    _fit(digits, schedule, epochs=2, callbacks=[
        tf_globalmp.UpdateGlobalPruningStep(log_dir=str(tmp_path / "ours")),
        tfmot.sparsity.keras.PruningSummaries(log_dir=str(tmp_path / "tfmot")),
    ])
    tags = _scalars(str(tmp_path / "tfmot"))
    assert any("sparsity" in t for t in tags), sorted(tags)
    sparsities = [v for t, values in tags.items() if t.endswith("sparsity") for _, v in values]
    # tfmot names its tags after the mask variable ("mask:0/sparsity", one per layer
    # under the same tag in TF2), so only "something pruned was logged" is checkable.
    assert sparsities and max(sparsities) > 0
