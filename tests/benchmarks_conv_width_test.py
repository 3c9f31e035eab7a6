"""benchmarks/conv_width.py: shape parsing, widths, and a tiny end-to-end run."""

import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
sys.path.insert(0, BENCH)
import conv_width  # noqa: E402


def test_parse_shape():
    assert conv_width.parse_shape("32x16") == (32, 16)
    assert conv_width.parse_shape("8X64") == (8, 64)
    for bad in ("32", "ax16", "0x16", "32x16x2"):
        with pytest.raises(ValueError, match=bad):
            conv_width.parse_shape(bad)


def test_widths_are_distinct_rounded_and_at_least_one():
    assert conv_width.widths(16, ["1", "0.5", "0.51", "0.01"]) == [16, 8, 1]
    assert conv_width.widths(64, ["0.5625", "0.25"]) == [36, 16]


def test_script_writes_its_section(tmp_path):
    out = tmp_path / "B.md"
    subprocess.run([sys.executable, os.path.join(BENCH, "conv_width.py"), "--shapes", "4x4",
                    "--fractions", "1,0.5", "--repeats", "2", "--workdir", str(tmp_path / "w"),
                    "--out", str(out)], check=True, capture_output=True)
    text = out.read_text()
    assert text.count("| 4x4x4 |") == 2 and conv_width.HEADING in text
