"""tf_globalmp.configs: the package's names, the shared field groups and their checks."""

import dataclasses
import os
import subprocess
import sys

import pytest

from tf_globalmp import configs
from tf_globalmp.configs import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# pretrained must name an existing path (configs check it); any directory will do.
EXISTING = os.path.dirname(os.path.abspath(__file__))
CONFIGS = (configs.QuickstartConfig, configs.Har2Config, configs.Cifar10Config,
           configs.ImagenetConfig)


def test_the_package_reexports_every_public_name():
    names = ("QuickstartConfig", "quickstart_config", "Har2Config", "har2_config",
             "HAR2_PRESETS", "HAR2_MODES", "Cifar10Config", "cifar10_config",
             "CIFAR10_PRESETS", "CIFAR10_CPU_ROWS", "CIFAR10_MODES",
             "CIFAR10_LAYER_DISTRIBUTIONS", "ImagenetConfig", "imagenet_config",
             "IMAGENET_PRESETS", "IMAGENET_CPU_ROWS", "IMAGENET_MODES",
             "IMAGENET_PRECISIONS", "IMAGENET_DISTRIBUTIONS")
    assert [n for n in names if not hasattr(configs, n)] == []


def test_configs_are_built_and_checked_without_tensorflow():
    # Launchers check their flags before TensorFlow loads (a bad flag fails in a second).
    code = ("import sys; from tf_globalmp import configs; configs.cifar10_config(); "
            "configs.imagenet_config(fake_data=True); configs.har2_config(); "
            "configs.quickstart_config(); print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


@pytest.mark.parametrize("config_class", CONFIGS)
def test_every_field_has_a_help_line(config_class):
    missing = [f.name for f in dataclasses.fields(config_class)
               if not common.metadata(config_class, f.name).get("help")]
    assert missing == []


def test_a_task_default_keeps_the_groups_help_choices_and_resumability():
    assert configs.ImagenetConfig().verbose == 2 and configs.Cifar10Config().verbose == 1
    assert common.metadata(configs.ImagenetConfig, "verbose") == (
        common.metadata(common.Execution, "verbose"))
    assert common.metadata(configs.ImagenetConfig, "distribution")["choices"] == (
        configs.IMAGENET_DISTRIBUTIONS)
    assert common.metadata(configs.Cifar10Config, "distribution")["choices"] == (
        "none", "mirrored")


# The fields a resumed run may change (they do not change what is trained).
@pytest.mark.parametrize("config_class, names", [
    (configs.QuickstartConfig, {"epochs", "export_tflite"}),
    (configs.Har2Config, {"epochs", "budget", "export_tflite", "threads", "unroll"}),
    (configs.Cifar10Config, {"budget", "export_tflite", "quantize", "threads", "verbose",
                             "data_dir", "tfds_data_dir", "cache_dir", "distribution",
                             "checkpoint_every_steps"}),
    (configs.ImagenetConfig, {"budget", "export_tflite", "threads", "verbose", "data_dir",
                              "tfds_data_dir", "distribution", "checkpoint_every_steps"}),
])
def test_resumable_fields(config_class, names):
    assert set(common.resumable_fields(config_class)) == names


def test_config_json_lists_run_then_data_then_shared_groups():
    keys = list(dataclasses.asdict(configs.ImagenetConfig()))
    assert keys[:4] == ["mode", "preset", "budget", "data_dir"]
    assert keys.index("model") < keys.index("pretrained") < keys.index("epochs") < (
        keys.index("distribution")) < keys.index("precision") == len(keys) - 1


@pytest.mark.parametrize("factory, overrides, message", [
    (configs.cifar10_config, dict(redistribution="exact"),
     r"redistribution must be one of \('global', 'proportional'\), got 'exact'"),
    (configs.cifar10_config, dict(distribution="multi_worker"),
     r"distribution must be one of \('none', 'mirrored'\), got 'multi_worker'"),
    (configs.imagenet_config, dict(fake_data=True, lr_schedule="linear"),
     r"lr_schedule must be one of \('cosine', 'step', 'constant'\), got 'linear'"),
    (configs.har2_config, dict(structured_scope="layer"),
     r"structured_scope must be one of \('per_factor', 'global'\), got 'layer'"),
    (configs.quickstart_config, dict(redistribution="exact"), "redistribution must be one of"),
])
def test_a_value_outside_its_choices_is_named(factory, overrides, message):
    with pytest.raises(ValueError, match=message):
        factory(**overrides)


@pytest.mark.parametrize("factory", [configs.cifar10_config, configs.imagenet_config])
@pytest.mark.parametrize("name, value, low", [
    ("min_weights", 2.5, 0), ("min_weights", -1, 0), ("pruning_frequency", -1, 0),
    ("epochs", True, 0), ("batch_size", 0, 1), ("steps_per_execution", 0, 1),
    ("threads", -1, 0), ("checkpoint_every_steps", -1, 0),
])
def test_shared_int_fields_are_checked_once_for_both_tasks(factory, name, value, low):
    with pytest.raises(ValueError, match=f"^{name} must be an int >= {low}, got {value!r}$"):
        factory(fake_data=True, **{name: value}) if factory is configs.imagenet_config else (
            factory(**{name: value}))


@pytest.mark.parametrize("factory", [configs.cifar10_config, configs.imagenet_config])
@pytest.mark.parametrize("overrides, message", [
    (dict(sparsity=1.0), r"^sparsity must be in \[0, 1\), got 1.0$"),
    (dict(mode="gradual", sparsity=0.5, initial_sparsity=0.6),
     r"^initial_sparsity must be <= sparsity \(0.5\), got 0.6$"),
    (dict(pruning_begin=0.7, pruning_end=0.5), "^pruning_begin must be in"),
    (dict(min_weights_fraction=1.0), r"^min_weights_fraction must be in \[0, 1\)"),
    (dict(momentum=1.0), r"^momentum must be in \[0, 1\), got 1.0$"),
    (dict(learning_rate=0.0), "^learning_rate must be > 0, got 0.0$"),
    (dict(epochs=2, warmup_epochs=3.0), r"^warmup_epochs must be in \[0, epochs=2\], got 3.0$"),
    (dict(pretrained="/no/such/dir"), "^pretrained does not exist: '/no/such/dir'$"),
])
def test_shared_value_checks_name_the_field(factory, overrides, message):
    if factory is configs.imagenet_config:
        overrides = dict(fake_data=True, **overrides)
    with pytest.raises(ValueError, match=message):
        factory(**overrides)


def test_a_preset_field_left_to_the_preset_and_none_overrides_are_ignored():
    config = configs.cifar10_config("paper_resnet32_dense", epochs=None, learning_rate=None)
    assert (config.epochs, config.learning_rate) == (300, 0.05)
    with pytest.raises(ValueError, match="preset must be 'custom' or one of .* got 'r99'"):
        configs.cifar10_config("r99")


def test_har2_keeps_the_presets_learning_rate_when_it_is_changed():
    assert configs.har2_config("paper_train", learning_rate=0.001).paper_learning_rate == 0.0064
    assert configs.har2_config("paper_train", learning_rate=0.0064).paper_learning_rate is None
    assert configs.har2_config("paper_train").paper_learning_rate is None
    assert configs.har2_config(learning_rate=0.001).paper_learning_rate is None  # no preset
    assert configs.har2_config(
        "paper_r9_8", pretrained=EXISTING, learning_rate=0.001,
        paper_learning_rate=0.4).paper_learning_rate == 0.4  # given: kept


def test_quickstart_checks_its_minimum_threshold_fraction():
    with pytest.raises(ValueError, match=r"min_weights_fraction must be in \[0, 1\), got 1.5"):
        configs.quickstart_config(min_weights_fraction=1.5)


def test_channel_options_are_inert_and_resumable_only_without_channel_granularity():
    from tf_globalmp import configs

    weight = configs.cifar10_config("cpu_resnet32_gmp90", pretrained="/tmp")
    channel = configs.cifar10_config("cpu_resnet20_channel30", pretrained="/tmp")
    assert {"min_channels", "channel_score"} <= set(common.resumable_fields(weight))
    assert not {"min_channels", "channel_score"} & set(common.resumable_fields(channel))
    # the class (no values) lists only the fields marked resumable
    assert "channel_score" not in common.resumable_fields(type(weight))
