"""How LiteRT/XNNPACK latency follows the channel count of a convolution on this CPU.

    python benchmarks/conv_width.py --out BENCHMARKS.md --pause_pids <background jobs>

Why a shrunk model's latency can fall more slowly than its FLOPs: for each shape of
`--shapes` (spatial size x channels; the defaults are ResNet-20's three stages on
CIFAR-10: 32x32x16, 16x16x32, 8x8x64) a pair of 3x3 convolutions C -> k -> C, the
unit a channel-pruned residual block keeps, is exported as float32 `.tflite` for
every middle width k of `--fractions` of C, and all files are timed together in
LiteRT with XNNPACK, 1 thread, batch 1, interleaved (`benchmarks/latency.py`). The
pair's multiply-adds are proportional to k, so "time fraction / width fraction" is the
latency-per-FLOP ratio of the pruned pair to the full one (1.00: latency follows
FLOPs). The weights are random: latency does not depend on their values.
"""

import tf_globalmp  # noqa: F401  (selects tf-keras first)

import os
import platform
import time

from absl import app
from absl import flags

import latency  # benchmarks/latency.py, beside this script
import sections  # benchmarks/sections.py

HEADING = "## Convolution width and XNNPACK latency"

_SHAPES = flags.DEFINE_list("shapes", ["32x16", "16x32", "8x64"],
                            "Input shapes SIZExCHANNELS (square maps).")
_FRACTIONS = flags.DEFINE_list("fractions", ["1", "0.75", "0.5625", "0.5", "0.375", "0.25"],
                               "Middle widths as fractions of the channels (rounded).")
_REPEATS = flags.DEFINE_integer("repeats", 200, "Timed invocations per file (interleaved).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/conv_width", "Where the .tflite files go.")
_PAUSE = flags.DEFINE_list("pause_pids", [], "Processes (e.g. background training) stopped "
                           "with SIGSTOP while timing, resumed after.")
_OUT = flags.DEFINE_string("out", None, "Write the Markdown section into this file.")


def parse_shape(text):
    """"32x16" -> (32, 16); ValueError naming the text otherwise."""
    try:
        size, channels = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--shapes entries are SIZExCHANNELS, e.g. 32x16; got {text!r}")
    if size < 1 or channels < 1:
        raise ValueError(f"--shapes entries must be positive, got {text!r}")
    return size, channels


def widths(channels, fractions):
    """Distinct middle widths round(f * channels) >= 1, widest first."""
    return sorted({max(1, int(round(float(f) * channels))) for f in fractions}, reverse=True)


def _pair_file(size, channels, width, workdir):
    import tensorflow as tf

    path = os.path.join(workdir, f"pair_{size}x{channels}_k{width}.tflite")
    if not os.path.exists(path):
        inp = tf.keras.Input((size, size, channels), batch_size=1)
        mid = tf.keras.layers.Conv2D(width, 3, padding="same", activation="relu")(inp)
        model = tf.keras.Model(inp, tf.keras.layers.Conv2D(channels, 3, padding="same")(mid))
        with open(path, "wb") as f:
            f.write(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def main(argv):
    del argv
    import tensorflow as tf

    start = time.time()
    os.makedirs(_WORKDIR.value, exist_ok=True)
    files = {}
    for size, channels in (parse_shape(s) for s in _SHAPES.value):
        for width in widths(channels, _FRACTIONS.value):
            files[size, channels, width] = _pair_file(size, channels, width, _WORKDIR.value)
    with latency.paused([int(p) for p in _PAUSE.value]):
        ms = latency.interleaved_ms(list(files.values()), _REPEATS.value)
    lines = ["| input | middle width k | width fraction | microseconds | time fraction | "
             "time fraction / width fraction |", "|---|---|---|---|---|---|"]
    for (size, channels, width), path in files.items():
        full = ms[files[size, channels, channels]]
        lines.append(f"| {size}x{size}x{channels} | {width} | {width / channels:.3f} | "
                     f"{1e3 * ms[path]:.1f} | {ms[path] / full:.3f} | "
                     f"{ms[path] / full / (width / channels):.2f} |")
    text = [HEADING, "",
            f"Machine: {os.cpu_count()} CPU cores "
            f"({platform.processor() or platform.machine()}); TensorFlow {tf.__version__}. "
            "Two 3x3 convolutions C -> k -> C (ReLU between), float32, LiteRT XNNPACK, 1 "
            f"thread, batch 1, median of {_REPEATS.value} interleaved invocations"
            + (" (other training jobs stopped while timing)" if _PAUSE.value else "")
            + f". Total run {time.time() - start:.0f} s.", "",
            f"Command: `python benchmarks/conv_width.py --shapes {','.join(_SHAPES.value)} "
            f"--fractions {','.join(_FRACTIONS.value)} --repeats {_REPEATS.value} "
            "--out BENCHMARKS.md`", ""] + lines
    if _OUT.value:
        sections.write_section(_OUT.value, HEADING, "\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    app.run(main)
