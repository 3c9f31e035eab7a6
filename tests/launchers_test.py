"""launchers/: flags generated from the configs (launchers/_flags.py), checked by
running each launcher with a stand-in runner that prints the config it is given."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from tf_globalmp import configs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXISTING = os.path.dirname(os.path.abspath(__file__))
# Runs launchers/<name>.py with stand-ins for tf_globalmp.tasks.<task> (their `run`
# prints the config and workdir it is given) and tf_globalmp.runs: no TensorFlow.
STAND_IN = r'''
import dataclasses, json, os, runpy, sys, types
import tf_globalmp.tasks
path = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(path))
def run(config, workdir, **kwargs):
    print(json.dumps({"config": dataclasses.asdict(config), "workdir": workdir}))
    sys.exit(0)
for name in ("quickstart", "har2", "cifar10", "imagenet", "runs"):
    module = types.ModuleType(name)
    module.run = run
    full = f"tf_globalmp.{name}" if name == "runs" else f"tf_globalmp.tasks.{name}"
    sys.modules[full] = module
    setattr(sys.modules[full.rsplit(".", 1)[0]], name, module)
runpy.run_path(path, run_name="__main__")
'''


def _launch(tmp_path, name, *flags):
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    done = subprocess.run(
        [sys.executable, str(script), os.path.join(ROOT, "launchers", f"{name}.py"), *flags],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    if done.returncode != 0:
        return None, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


@pytest.mark.parametrize("name, factory, flags", [
    ("quickstart", configs.quickstart_config, []),
    ("har2", configs.har2_config, []),
    ("cifar10", configs.cifar10_config, ["--workdir=w"]),
    ("imagenet", configs.imagenet_config, ["--fake_data"]),
])
def test_no_flags_give_the_configs_defaults(tmp_path, name, factory, flags):
    out, stderr = _launch(tmp_path, name, *flags)
    assert out is not None, stderr[-2000:]
    want = factory(**({"fake_data": True} if name == "imagenet" else {}))
    assert out["config"] == json.loads(json.dumps(dataclasses.asdict(want)))


def test_flags_override_the_preset_field_by_field(tmp_path):
    out, stderr = _launch(tmp_path, "cifar10", "--workdir=w", "--preset=cpu_resnet32_gmp90",
                          f"--pretrained={EXISTING}", "--epochs=2", "--nonesterov",
                          "--layer_distribution=tfmot", "--verbose=0")
    assert out is not None, stderr[-2000:]
    want = configs.cifar10_config("cpu_resnet32_gmp90", pretrained=EXISTING, epochs=2,
                                  nesterov=False, layer_distribution="tfmot", verbose=0)
    assert out["config"] == json.loads(json.dumps(dataclasses.asdict(want)))
    assert out["workdir"] == "w"


def test_a_comma_list_flag_becomes_a_tuple_of_ints(tmp_path):
    out, stderr = _launch(tmp_path, "har2", "--ranks=9,7")
    assert out is not None, stderr[-2000:]
    assert out["config"]["ranks"] == [9, 7]
    out, stderr = _launch(tmp_path, "har2", "--ranks=9,x")
    assert out is None and "--ranks: ranks must be comma-separated ints" in stderr


def test_imagenet_batch_size_flag_sets_the_evaluation_batch_too(tmp_path):
    out, stderr = _launch(tmp_path, "imagenet", "--fake_data", "--batch_size=16")
    assert out is not None, stderr[-2000:]
    assert (out["config"]["batch_size"], out["config"]["eval_batch_size"]) == (16, 16)


@pytest.mark.parametrize("name, flags, line", [
    ("quickstart", ["--min_weights_fraction=1.5"], "--min_weights_fraction: "),
    ("har2", ["--mode=structured"], "--mode: mode 'structured' fine-tunes a dense model"),
    ("har2", ["--clipnorm=0"], "--clipnorm: clipnorm must be > 0 or None, got 0.0"),
    ("imagenet", ["--fake_data", "--image_size=16"], "--image_size: image_size must be an int"),
    ("cifar10", ["--workdir=w", "--warmup_epochs=500"], "--warmup_epochs: warmup_epochs"),
])
def test_a_bad_flag_exits_with_one_line_naming_it(tmp_path, name, flags, line):
    out, stderr = _launch(tmp_path, name, *flags)
    assert out is None
    assert stderr.strip().splitlines()[-1].startswith(line), stderr[-2000:]
