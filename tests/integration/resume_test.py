"""Kill a gradual-pruning run with SIGKILL mid-schedule, restart the same command, and
get what an uninterrupted run gets: identical masks and identical weights
(`--deterministic`: op determinism, and a data stream that is a pure function of
(seed, epoch), so the resumed epochs see the same batches)."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

import tf_globalmp
from tf_globalmp import export

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "tests", "testdata", "cifar10_tiny")
EPOCHS = 8
KILL_AFTER_EPOCH = 3  # pruning runs from 10% to 60% of training: epochs 1-4


def _command(workdir):
    return [
        sys.executable, os.path.join(ROOT, "launchers", "cifar10.py"), "--model=resnet8",
        "--mode=gradual", f"--data_dir={FIXTURE}", f"--epochs={EPOCHS}", "--batch_size=10",
        "--sparsity=0.8", "--learning_rate=0.05", "--deterministic", "--threads=1",
        "--verbose=0", f"--workdir={workdir}",
    ]


def _epochs_done(workdir):
    try:
        with open(os.path.join(workdir, "train_state", "state.json")) as f:
            return json.load(f)["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


def _final(workdir):
    model = export.load_model(workdir)
    return [w.numpy() for w in model.weights], tf_globalmp.sparsity_report(model)


def test_killed_and_restarted_run_equals_the_uninterrupted_run(tmp_path):
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    subprocess.run(_command(straight), check=True, capture_output=True, timeout=900, cwd=ROOT)

    proc = subprocess.Popen(_command(killed), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.time() + 600
    while _epochs_done(killed) < KILL_AFTER_EPOCH and proc.poll() is None:
        assert time.time() < deadline, "the run never reached the kill point"
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _epochs_done(killed)
    assert KILL_AFTER_EPOCH <= done < EPOCHS
    assert not os.path.exists(os.path.join(killed, "metrics.json"))  # nothing half-written

    resumed = subprocess.run(_command(killed), capture_output=True, text=True, timeout=900,
                             cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"after epoch {done}" in resumed.stderr

    (want, want_report), (got, got_report) = _final(straight), _final(killed)
    assert [r.nonzero for r in got_report.rows] == [r.nonzero for r in want_report.rows]
    assert got_report.total.sparsity == want_report.total.sparsity > 0.79
    assert len(got) == len(want)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a != 0, b != 0)  # identical masks
        np.testing.assert_array_equal(a, b)  # identical weights
