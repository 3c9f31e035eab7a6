"""FastGRNN on a slice of the real HAR data: structured fine-tuning and tasks.har2.run."""

import json
import os

import numpy as np
import pytest

import tf_globalmp
import tf_keras as keras

from tf_globalmp import configs
from tf_globalmp import controller
from tf_globalmp import export
from tf_globalmp import prune
from tf_globalmp import runs
from tf_globalmp import structured
from tf_globalmp import wrapping
from tf_globalmp.data import har
from tf_globalmp.models import fastgrnn
from tf_globalmp.tasks import epoch_logs
from tf_globalmp.tasks import har2

pytestmark = pytest.mark.skipif(not os.path.exists(har.DEFAULT_PATH),
                                reason=f"{har.DEFAULT_PATH} not present")


@pytest.fixture(scope="module")
def har_slice():
    data = har.har2_arrays()
    return data["x_train"][:96], data["y_train"][:96], data["x_test"][:64], data["y_test"][:64]


class _MaskRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.masks = []

    def on_train_batch_end(self, batch, logs=None):
        wrappers = wrapping.collect_wrappers(self.model)
        self.masks.append([m.numpy().copy() for w in wrappers for _, m, _ in w.pruning_vars])


def test_structured_finetune_keeps_exact_ranks_and_fixed_masks(har_slice, tmp_path):
    x, y, x_test, _ = har_slice
    keras.utils.set_random_seed(0)
    dense = fastgrnn.build(unroll=False)
    rule = structured.RankMaskRule(ranks=(9, 7))
    schedule = tf_globalmp.GlobalConstantSparsity(0.8, begin_step=0, frequency=2)
    model = prune.prune_low_magnitude_global(dense, schedule, mask_rule=rule)
    model.compile(keras.optimizers.Adam(0.0064),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    recorder = _MaskRecorder()
    model.fit(x, y, batch_size=32, epochs=2, verbose=0,
              callbacks=[controller.UpdateGlobalPruningStep(mask_rule=rule), recorder])
    assert len(recorder.masks) == 6
    for masks in recorder.masks[1:]:
        for a, b in zip(recorder.masks[0], masks):
            np.testing.assert_array_equal(a, b)
    assert har2.factor_ranks(model) == [9, 7]
    stripped = prune.strip_pruning(model)
    cell = fastgrnn.cell_of(stripped)
    w1, w2, u1, u2 = (v.numpy() for v in cell.factor_weights())
    assert np.linalg.matrix_rank(w1 @ w2) == 9 and np.linalg.matrix_rank(u1 @ u2) == 7
    assert int(np.count_nonzero(np.abs(u1).sum(0))) == 7  # whole columns are zero
    path = os.path.join(tmp_path, "m.keras")
    stripped.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded(x_test).numpy(), stripped(x_test).numpy(), rtol=1e-5,
                               atol=1e-6)
    assert har2.factor_ranks(loaded) == [9, 7]


@pytest.fixture(scope="module")
def small_npz(har_slice, tmp_path_factory):
    raw = har.load_arrays()
    path = str(tmp_path_factory.mktemp("har") / "slice.npz")
    np.savez(path, X_train=raw["X_train"][:128], y_train=raw["y_train"][:128],
             subject_train=raw["subject_train"][:128], X_test=raw["X_test"][:64],
             y_test=raw["y_test"][:64], subject_test=raw["subject_test"][:64])
    return path


def _config(path, **kwargs):
    values = dict(data_dir=path, epochs=2, batch_size=32, unroll=False, budget="test")
    return configs.Har2Config(**{**values, **kwargs})


def test_run_har2_each_mode_and_resume(small_npz, tmp_path, monkeypatch):
    dense_dir = str(tmp_path / "dense")
    dense = har2.run(_config(small_npz), dense_dir)
    assert dense["epochs_done"] == 2 and dense["ranks"] == [9, 80]
    for name in ("model.keras", "config.json", "metrics.json", "sparsity.json"):
        assert os.path.exists(os.path.join(dense_dir, name))

    # Structured, interrupted after epoch 1, then resumed by the same call.
    original = epoch_logs.AccuracyLog.on_epoch_end

    def crash_after_first(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            raise KeyboardInterrupt("simulated kill")

    monkeypatch.setattr(epoch_logs.AccuracyLog, "on_epoch_end", crash_after_first)
    config = _config(small_npz, mode="structured", ranks=(8, 7), pretrained=dense_dir)
    workdir = str(tmp_path / "r8_7")
    with pytest.raises(KeyboardInterrupt):
        har2.run(config, workdir)
    monkeypatch.setattr(epoch_logs.AccuracyLog, "on_epoch_end", original)
    metrics = har2.run(config, workdir)
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["ranks"] == [8, 7] and metrics["masks_fixed_during_finetune"]
    assert metrics["nonzero_prunable_weights"] == 8 * 89 + 7 * 160 + 160
    assert metrics["best_test_accuracy"] == max(h["test_accuracy"] for h in metrics["history"])
    assert not os.path.exists(os.path.join(workdir, runs.STATE_DIR))
    assert os.path.getsize(os.path.join(workdir, "layer_sparsity.png")) > 1000
    # The resumed run trained on the same batches as an uninterrupted one.
    straight = str(tmp_path / "r8_7_straight")
    har2.run(config, straight)
    for a, b in zip(runs.load_model(straight).weights, runs.load_model(workdir).weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6)

    unstructured = har2.run(
        _config(small_npz, mode="unstructured", ranks=(8, 7), pretrained=dense_dir),
        str(tmp_path / "unstructured"))
    assert unstructured["nonzero_prunable_weights"] == metrics["nonzero_prunable_weights"]
    with open(os.path.join(tmp_path, "unstructured", "sparsity.json")) as f:
        assert json.load(f)  # written


def test_run_har2_exports_verified_tflite(small_npz, tmp_path):
    workdir = str(tmp_path / "dense")
    metrics = har2.run(_config(small_npz, epochs=1, export_tflite=True), workdir)
    assert os.path.exists(os.path.join(workdir, "model.tflite"))
    assert metrics["tflite_bytes"] < 100_000 and metrics["tflite_max_abs_diff"] < 1e-4


def test_run_har2_global_structured_scope_stays_within_budget(small_npz, tmp_path):
    dense_dir = str(tmp_path / "dense")
    har2.run(_config(small_npz, epochs=1), dense_dir)
    metrics = har2.run(
        _config(small_npz, epochs=1, mode="structured", structured_scope="global",
                ranks=(9, 8), pretrained=dense_dir), str(tmp_path / "global"))
    budget = 9 * 89 + 8 * 160 + 160  # the parameter count of ranks (9, 8)
    assert budget - 160 < metrics["nonzero_prunable_weights"] <= budget
    cell_ranks = metrics["ranks"]
    assert 89 * min(cell_ranks[0], 9) + 160 * cell_ranks[1] + 160 == \
        metrics["nonzero_prunable_weights"]
