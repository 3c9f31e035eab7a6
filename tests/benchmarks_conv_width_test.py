"""benchmarks/conv_width.py, run as a script (it defines absl flags, so it is not
imported here): a tiny run writes its section; a bad shape is named."""

import os
import subprocess
import sys

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")


def _run(tmp_path, *args):
    return subprocess.run([sys.executable, os.path.join(BENCH, "conv_width.py"),
                           "--workdir", str(tmp_path / "w"), "--repeats", "2", *args],
                          capture_output=True, text=True)


def test_script_writes_one_row_per_distinct_width(tmp_path):
    out = tmp_path / "B.md"
    done = _run(tmp_path, "--shapes", "4x4", "--fractions", "1,0.5,0.51,0.01",
                "--out", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "## Convolution width and XNNPACK latency" in text
    rows = [line for line in text.splitlines() if line.startswith("| 4x4x4 |")]
    assert [row.split("|")[2].strip() for row in rows] == ["4", "2", "1"]  # 0.51*4 -> 2


def test_bad_shape_is_named(tmp_path):
    done = _run(tmp_path, "--shapes", "32x")
    assert done.returncode != 0 and "'32x'" in done.stderr
