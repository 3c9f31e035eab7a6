"""LiteRT latency of .tflite files: 1 thread, batch as in the file (or `batch`), interleaved.

`interleaved_ms(paths, repeats)` times every file round-robin in one process (one
invocation of each file per round, after 3 warm-up invocations), so a machine whose
load changes during the measurement slows all files alike; it returns the median
milliseconds per file. XNNPACK (LiteRT's default delegate) unless `builtin`.
`interleaved({key: runner(...)}, repeats)` does the same for any mix of files and
interpreter settings. `paused(pids)` stops other jobs (background training) for the
duration of a measurement, so shared cores do not distort it.
"""

import contextlib
import os
import signal
import statistics
import time

import numpy as np


def interpreter(path, builtin=False, threads=1, batch=None):
    """A LiteRT interpreter of `path`, tensors allocated and inputs filled with fixed
    random values, or None if it cannot prepare the file. `batch`: the first dimension
    of every input is resized to it (the file's own batch, usually 1, if None)."""
    from ai_edge_litert import interpreter as litert

    kwargs = {"num_threads": threads}
    if builtin:
        kwargs["experimental_op_resolver_type"] = (
            litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp = litert.Interpreter(model_path=path, **kwargs)
    try:
        if batch is not None:
            for detail in interp.get_input_details():
                interp.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
        interp.allocate_tensors()
    except RuntimeError:
        return None
    for detail in interp.get_input_details():
        x = np.random.default_rng(0).uniform(-1, 1, detail["shape"]).astype(detail["dtype"])
        interp.set_tensor(detail["index"], x)
    return interp


def runner(path, builtin=False, threads=1, batch=None):
    """A zero-argument callable timing one invocation of `path` (ms), or None if the
    interpreter cannot prepare the file (arguments as `interpreter`)."""
    interp = interpreter(path, builtin, threads, batch)
    if interp is None:
        return None

    def run():
        start = time.perf_counter()
        interp.invoke()
        return 1e3 * (time.perf_counter() - start)

    return run


def interleaved(runners, repeats):
    """{key: median ms} of `runners` ({key: `runner(...)`, None if not runnable: its
    value is None}) over `repeats` round-robin rounds after 3 warm-up invocations."""
    live = {k: r for k, r in runners.items() if r is not None}
    for run in live.values():
        for _ in range(3):
            run()
    times = {k: [] for k in live}
    for _ in range(repeats):
        for key, run in live.items():
            times[key].append(run())
    return {k: (statistics.median(times[k]) if k in live else None) for k in runners}


def interleaved_ms(paths, repeats, builtin=False, threads=1, batch=None):
    """{path: median ms} over `repeats` round-robin rounds (None: not runnable)."""
    return interleaved({path: runner(path, builtin, threads, batch) for path in paths},
                       repeats)


@contextlib.contextmanager
def paused(pids):
    """SIGSTOPs the processes `pids` for the block and SIGCONTs them after (also on an
    error). A pid that does not exist (any more) is skipped, and so is one already
    stopped (it stays stopped after the block)."""
    stopped = []
    try:
        for pid in pids:
            if _state(pid) in (None, "T"):
                continue
            try:
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)
            except ProcessLookupError:
                pass
        yield stopped
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def _state(pid):
    """The process state letter of `pid` ("R", "S", "T", ...) or None if it is gone
    ("" where /proc is not available: then it is stopped and resumed regardless)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None if os.path.isdir("/proc/self") else ""
