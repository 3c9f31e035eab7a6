"""Saved models load with plain tf_keras load_model after `import tf_globalmp`.

What a fresh process sees is checked in subprocesses (in this one, other tests have
imported the custom layers already).
"""

import glob
import os
import re
import subprocess
import sys
import textwrap
import zipfile

import pytest

import tf_globalmp
from tf_globalmp import serializables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAVED = sorted(glob.glob(os.path.join(ROOT, "saved_models", "*", "model.keras")))
RESNET20 = os.path.join(ROOT, "saved_models", "cifar10_resnet20_dense_cpu", "model.keras")


def _run(code):
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()


def test_import_tf_globalmp_imports_no_tensorflow():
    out = _run("""
        import sys
        import tf_globalmp
        print(sorted(m for m in ("tensorflow", "tf_keras", "tensorflow_model_optimization")
                     if m in sys.modules))
    """)
    assert out == ["[]"]


def test_saved_resnet_loads_with_plain_tf_keras_load_model():
    # The committed model with the option-A shortcut layer and a compiled optimizer
    # whose learning rate is a tf_globalmp.optim.WarmupSchedule.
    out = _run(f"""
        import sys
        import tf_globalmp
        import tf_keras
        print("tfmot" if "tensorflow_model_optimization" in sys.modules else "no tfmot")
        model = tf_keras.models.load_model({RESNET20!r})
        print(sorted({{type(l).__module__ + "." + type(l).__name__ for l in model.layers
                      if type(l).__module__.startswith("tf_globalmp")}}))
        print(type(model.optimizer._learning_rate).__name__, model.count_params())
    """)
    assert out[0] == "no tfmot"  # stand-ins only: the real classes load on first use
    assert out[1] == "['tf_globalmp.models.resnet_cifar.ZeroPadShortcut']"
    assert out[2].split()[0] == "WarmupSchedule"


_LOAD_ALL = """
    import os
    {imports}
    for path in {paths!r}:
        model = tf_keras.models.load_model(path)
        print(os.path.basename(os.path.dirname(path)), model.count_params())
"""


def _custom_classes(path):
    """The registered tf_globalmp names a saved model's config refers to."""
    with zipfile.ZipFile(path) as archive:
        return frozenset(re.findall(r'"(tf_globalmp>\w+)"',
                                    archive.read("config.json").decode()))


def _one_per_class_set(paths):
    """The first of `paths` for each distinct set of custom classes."""
    first = {}
    for path in paths:
        first.setdefault(_custom_classes(path), path)
    return sorted(first.values())


@pytest.mark.slow
@pytest.mark.parametrize("imports,every", [
    ("import tf_globalmp; import tf_keras", True),
    # The other import orders change which classes are registered when, not how a
    # model loads: one model per distinct set of custom classes is enough there.
    ("import tf_globalmp; import tensorflow as tf; tf_keras = tf.keras", False),  # legacy
    ("import tf_keras; import tf_globalmp", False),  # tf-keras loaded first
])
def test_every_saved_model_loads_with_plain_load_model(imports, every):
    assert len(SAVED) >= 20
    paths = SAVED if every else _one_per_class_set(SAVED)
    assert set().union(*map(_custom_classes, paths)) == \
        set().union(*map(_custom_classes, SAVED))
    out = _run(_LOAD_ALL.format(imports=imports, paths=paths))
    assert [line.split()[0] for line in out] == [
        os.path.basename(os.path.dirname(p)) for p in paths]


def test_stand_ins_cover_every_class_the_package_registers():
    pattern = re.compile(
        r'register_keras_serializable\(package="tf_globalmp"\)\s*\nclass (\w+)')
    found = {}
    for path in glob.glob(os.path.join(ROOT, "tf_globalmp", "**", "*.py"), recursive=True):
        module = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
        for name in pattern.findall(open(path).read()):
            found[f"tf_globalmp>{name}"] = (module, name)
    assert found == serializables.SERIALIZABLES


def test_a_stand_in_builds_the_real_class():
    from tf_globalmp.models import resnet_cifar

    stand_in = serializables.stand_in("tf_globalmp>ZeroPadShortcut")
    built = stand_in.from_config({"filters": 8, "stride": 2, "name": "s"})
    assert type(built) is resnet_cifar.ZeroPadShortcut and built.filters == 8
    assert type(stand_in(4, stride=1)) is resnet_cifar.ZeroPadShortcut


def test_a_stand_in_whose_module_fails_names_tf_globalmp_load_model(monkeypatch):
    monkeypatch.setitem(serializables.SERIALIZABLES, "tf_globalmp>Gone",
                        ("tf_globalmp.models.no_such_module", "Gone"))
    with pytest.raises(ImportError, match=r"tf_globalmp\.load_model"):
        serializables.stand_in("tf_globalmp>Gone").from_config({})


def test_import_hook_fires_after_execution_not_on_a_spec_lookup(tmp_path, monkeypatch):
    import importlib.util

    (tmp_path / "hooked_sample_module.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = []
    hook = serializables._AfterImportHook(
        "hooked_sample_module",
        lambda: seen.append(sys.modules["hooked_sample_module"].VALUE))
    monkeypatch.setattr(sys, "meta_path", [hook, *sys.meta_path])
    assert importlib.util.find_spec("hooked_sample_module") is not None
    assert seen == [] and hook in sys.meta_path  # looked up, not loaded: still waiting
    module = importlib.import_module("hooked_sample_module")
    monkeypatch.delitem(sys.modules, "hooked_sample_module")
    assert seen == [1]  # after the module ran
    assert hook not in sys.meta_path
    assert not isinstance(module.__loader__, serializables._LoaderThen)  # its real loader


def test_package_init_installed_the_stand_ins():
    import tf_keras

    objects = tf_keras.saving.get_custom_objects()
    assert set(serializables.SERIALIZABLES) <= set(objects)
    assert tf_globalmp  # imported first, as users do
