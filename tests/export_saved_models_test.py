"""Every committed model under saved_models/ exports through the CLI.

The default suite exports one (the README's CLI example: a ResNet-20 trained under
mixed_bfloat16, which used to fail with "'tf.Conv2D' op is neither a custom op nor a
flex op"); `python -m pytest -m slow tests/export_saved_models_test.py` exports all.
"""

import glob
import json
import os
import subprocess
import sys

import pytest

import tf_globalmp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMITTED = sorted(
    os.path.relpath(os.path.dirname(p), ROOT)
    for p in glob.glob(os.path.join(ROOT, "saved_models", "*", "model.keras"))
)
README_EXAMPLE = os.path.join("saved_models", "cifar10_resnet20_gmp90_cpu")


def _cli(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "tf_globalmp.export", *args],
        capture_output=True, text=True, timeout=1800, cwd=ROOT,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _export(run_dir, out, *flags):
    model = os.path.join(run_dir, "model.keras")
    code, stdout, stderr = _cli("--model", model, "--out", out, *flags)
    assert code == 0, f"{model}: {stderr[-3000:]}"
    assert "TFLite export:" in stdout
    with open(out + ".json") as f:
        return json.load(f)


def test_readme_cli_example_exports_the_mixed_bfloat16_model(tmp_path):
    assert README_EXAMPLE in COMMITTED
    data = _export(README_EXAMPLE, str(tmp_path / "m.tflite"), "--quantize", "dynamic")
    assert data["mixed_precision"] == "mixed_bfloat16" and data["quantize"] == "dynamic"
    assert data["sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert data["sparse_tensors"] >= 1 and data["bytes"] == os.path.getsize(tmp_path / "m.tflite")
    assert data["max_rel_diff"] < 0.1 and data["constant_outputs"] == []


@pytest.mark.exhaustive
@pytest.mark.parametrize("run_dir", COMMITTED)
def test_every_committed_model_loads_and_exports_float32_through_the_cli(tmp_path, run_dir):
    """Loads with `tf_globalmp.load_model` (what the CLI uses), then exports float32:
    the file matches Keras within 1e-5 (the CLI exits 1 otherwise)."""
    tf_globalmp.load_model(os.path.join(ROOT, run_dir))
    data = _export(run_dir, str(tmp_path / "m.tflite"))
    assert data["quantize"] is None and data["max_rel_diff"] <= 1e-5
    assert data["prunable_weights"] > 0
