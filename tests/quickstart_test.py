"""The README's main job: tasks.quickstart.run and launchers/quickstart.py on real digits."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import tf_globalmp
import tf_keras as keras

from tf_globalmp import configs
from tf_globalmp import runs
from tf_globalmp.tasks import epoch_logs
from tf_globalmp.tasks import quickstart

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_run_writes_exactly_pruned_model_and_metrics(tmp_path):
    config = configs.QuickstartConfig(epochs=1, finetune_epochs=1)
    workdir = str(tmp_path / "run")
    metrics = quickstart.run(config, workdir)
    for name in ("model.keras", "config.json", "metrics.json", "sparsity.json",
                 "layer_sparsity.png"):
        assert os.path.exists(os.path.join(workdir, name))
    with open(os.path.join(workdir, "metrics.json")) as f:
        saved = json.load(f)
    assert saved["budget"] == {"epochs": 1, "finetune_epochs": 1}
    model = keras.models.load_model(os.path.join(workdir, "model.keras"))
    report = tf_globalmp.sparsity_report(model)
    total = report.total.weights
    assert report.total.nonzero == total - round(0.9 * total)
    assert saved["achieved_sparsity"] == report.total.sparsity
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp_run_")]


def _launch(*args):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "launchers", "quickstart.py"), *args],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )


def test_launcher_prints_accuracies_and_table_and_exports_tflite(tmp_path):
    workdir = tmp_path / "q"
    out = _launch("--epochs=1", "--finetune_epochs=1", f"--workdir={workdir}",
                  "--export_tflite")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Dense test accuracy" in out.stdout and "global" in out.stdout
    assert "90.00%" in out.stdout
    assert "model.tflite:" in out.stdout
    with open(workdir / "model.tflite.json") as f:
        exported = json.load(f)
    with open(workdir / "metrics.json") as f:
        metrics = json.load(f)
    assert exported["path"] == str(workdir / "model.tflite")
    assert exported["bytes"] == os.path.getsize(workdir / "model.tflite")
    assert metrics["tflite"]["bytes"] == exported["bytes"]
    assert exported["max_rel_diff"] <= 1e-5 and exported["sparse_tensors"] > 0


def test_launcher_rejects_bad_sparsity_before_work(tmp_path):
    out = _launch("--sparsity=1.5", f"--workdir={tmp_path / 'q'}")
    assert out.returncode != 0
    assert "sparsity" in out.stderr
    assert not (tmp_path / "q").exists()


class _Kill(Exception):
    pass


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("straight") / "run")
    metrics = quickstart.run(configs.QuickstartConfig(epochs=2, finetune_epochs=2), workdir)
    return workdir, metrics


@pytest.mark.parametrize("kill_at", [1, 3])  # epoch-end saves: dense 1, 2; fine-tune 3, 4
def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch,
                                                             straight_run, kill_at):
    original, saves = epoch_logs.AccuracyLog.on_epoch_end, []

    def killed(self, epoch, logs=None):
        original(self, epoch, logs)
        saves.append(epoch)
        if len(saves) == kill_at:
            raise _Kill()

    monkeypatch.setattr(epoch_logs.AccuracyLog, "on_epoch_end", killed)
    config, workdir = configs.QuickstartConfig(epochs=2, finetune_epochs=2), str(tmp_path / "r")
    with pytest.raises(_Kill):
        quickstart.run(config, workdir)
    assert not os.path.exists(os.path.join(workdir, "metrics.json"))
    monkeypatch.setattr(epoch_logs.AccuracyLog, "on_epoch_end", original)
    metrics = quickstart.run(config, workdir)

    straight_dir, want = straight_run
    for key in ("dense_accuracy", "one_shot_accuracy_before_finetune", "pruned_accuracy",
                "achieved_sparsity"):
        assert metrics[key] == pytest.approx(want[key], abs=1e-6), key
    got_model, want_model = (keras.models.load_model(os.path.join(d, "model.keras"))
                             for d in (workdir, straight_dir))
    for a, b in zip(want_model.weights, got_model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-5)
    assert not os.path.exists(os.path.join(workdir, runs.STATE_DIR))
    assert quickstart.run(config, workdir) == metrics  # finished: returned as is
