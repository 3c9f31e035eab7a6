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
import pytest

import tf_globalmp
from tf_globalmp import export
from tf_globalmp import runs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(ROOT, "tests", "testdata", "cifar10_tiny")
EPOCHS = 8
KILL_AFTER_EPOCH = 3  # pruning runs from 10% to 60% of training: epochs 1-4


STEPS_PER_EPOCH = 5  # 50 fixture images, batch 10


def _command(workdir, *extra):
    return [
        sys.executable, os.path.join(ROOT, "launchers", "cifar10.py"), "--model=resnet8",
        "--mode=gradual", f"--data_dir={FIXTURE}", f"--epochs={EPOCHS}", "--batch_size=10",
        "--sparsity=0.8", "--learning_rate=0.05", "--deterministic", "--threads=1",
        "--verbose=0", f"--workdir={workdir}", *extra,
    ]


def _state(workdir):
    try:
        with open(os.path.join(workdir, "train_state", "state.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _epochs_done(workdir):
    return _state(workdir).get("epoch", 0)


def _final(workdir):
    model = runs.load_model(workdir)
    return [w.numpy() for w in model.weights], tf_globalmp.sparsity_report(model)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("straight") / "run")
    subprocess.run(_command(workdir), check=True, capture_output=True, timeout=900, cwd=ROOT)
    return _final(workdir)


def _assert_same_run(want_run, got_run):
    (want, want_report), (got, got_report) = want_run, got_run
    assert [r.nonzero for r in got_report.rows] == [r.nonzero for r in want_report.rows]
    assert got_report.total.sparsity == want_report.total.sparsity > 0.79
    assert len(got) == len(want)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a != 0, b != 0)  # identical masks
        np.testing.assert_array_equal(a, b)  # identical weights


def test_killed_and_restarted_run_equals_the_uninterrupted_run(tmp_path, straight):
    killed = str(tmp_path / "killed")

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
    _assert_same_run(straight, _final(killed))


def test_killed_inside_an_epoch_resumes_from_the_step_checkpoint(tmp_path, straight):
    """--checkpoint_every_steps=2: killed between two epoch ends, mid-schedule, the run
    resumes at the saved step (data stream skipped to the same batch)."""
    killed = str(tmp_path / "killed")
    command = _command(killed, "--checkpoint_every_steps=2")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            cwd=ROOT)
    deadline = time.time() + 600
    while True:  # freeze the run as soon as a mid-epoch save inside the ramp is seen
        assert time.time() < deadline, "the run never reached the kill point"
        assert proc.poll() is None, "the run finished before it could be killed"
        step = _state(killed).get("step") or 0
        if 2 * STEPS_PER_EPOCH < step < 4 * STEPS_PER_EPOCH and step % STEPS_PER_EPOCH:
            os.kill(proc.pid, signal.SIGSTOP)
            step = _state(killed).get("step") or 0  # the last save before the freeze
            if step % STEPS_PER_EPOCH:
                break
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(os.path.join(killed, "metrics.json"))

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"(step {step})" in resumed.stderr
    assert f"after {step % STEPS_PER_EPOCH} of its {STEPS_PER_EPOCH} steps" in resumed.stderr
    _assert_same_run(straight, _final(killed))
