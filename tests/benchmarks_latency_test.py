"""benchmarks/latency.py: `paused` stops other jobs for a measurement and always resumes them."""

import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))
import latency  # noqa: E402


def _wait_state(pid, wanted):
    for _ in range(100):
        if latency._state(pid) in wanted:  # noqa: SLF001
            return latency._state(pid)  # noqa: SLF001
        time.sleep(0.02)
    return latency._state(pid)  # noqa: SLF001


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_paused_stops_then_resumes_even_on_error():
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(RuntimeError):
            with latency.paused([job.pid, 2 ** 22 + 12345]) as stopped:  # 2nd: no such pid
                assert stopped == [job.pid]
                assert _wait_state(job.pid, "T") == "T"
                raise RuntimeError("measurement failed")
        assert _wait_state(job.pid, "SR") in "SR"
    finally:
        job.kill()
        job.wait()


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_paused_leaves_a_job_stopped_before_it_stopped():
    job = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        job.send_signal(signal.SIGSTOP)
        assert _wait_state(job.pid, "T") == "T"
        with latency.paused([job.pid]) as stopped:
            assert stopped == []
        time.sleep(0.1)
        assert latency._state(job.pid) == "T"  # noqa: SLF001
    finally:
        job.kill()
        job.wait()


def test_runner_resizes_the_batch(tmp_path):
    import tf_globalmp  # noqa: F401  (selects tf-keras first)
    import tensorflow as tf

    inp = tf.keras.Input((4, 4, 2), batch_size=1)
    model = tf.keras.Model(inp, tf.keras.layers.Conv2D(3, 3, padding="same")(inp))
    path = str(tmp_path / "conv.tflite")
    with open(path, "wb") as f:
        f.write(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    assert latency.interpreter(path).get_input_details()[0]["shape"].tolist() == [1, 4, 4, 2]
    interp = latency.interpreter(path, batch=5)
    assert interp.get_input_details()[0]["shape"].tolist() == [5, 4, 4, 2]
    interp.invoke()
    assert interp.get_output_details()[0]["shape"].tolist() == [5, 4, 4, 3]
    assert latency.runner(path, batch=5)() > 0
    ms = latency.interleaved_ms([path], 2, batch=5)
    assert ms[path] > 0
