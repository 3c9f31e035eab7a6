"""ImagenetConfig: presets per paper row, budget labels, argument checks."""

import dataclasses
import os

import pytest

import tf_globalmp  # noqa: F401
from tf_globalmp import configs

# pretrained must name an existing path (configs check it); any directory will do.
EXISTING = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("preset", sorted(configs.IMAGENET_PRESETS))
def test_every_preset_validates(preset):
    config = configs.imagenet_config(preset, data_dir="/data", pretrained=EXISTING)
    assert config.preset == preset
    assert (config.budget == "paper") == preset.startswith("paper_")


def test_paper_rows():
    c = configs.imagenet_config("paper_resnet50_oneshot90", data_dir="/d", pretrained=EXISTING)
    assert (c.mode, c.sparsity, c.momentum, c.weight_decay, c.learning_rate, c.label_smoothing,
            c.batch_size, c.epochs) == ("one_shot", 0.9, 0.875, 7e-6, 0.1024, 0.1, 256, 100)
    g = configs.imagenet_config("paper_resnet50_gradual98_05", data_dir="/d")
    assert (g.mode, g.sparsity, g.pruning_begin, g.pruning_end, g.warmup_epochs) == (
        "gradual", 0.9805, 0.2, 0.79, 5.0)
    m = configs.imagenet_config("paper_mobilenet_v1_oneshot90_mt", data_dir="/d", pretrained=EXISTING)
    assert (m.model, m.epochs, m.min_weights_fraction, m.weight_decay, m.learning_rate) == (
        "mobilenet_v1", 120, 0.002, 0.0, 0.0512)


def test_fewer_epochs_is_labelled_reduced():
    c = configs.imagenet_config("paper_resnet50_dense", data_dir="/d", epochs=10)
    assert c.budget == "reduced budget: 10 epochs of 100"


@pytest.mark.parametrize("overrides, message", [
    (dict(mode="prune"), "mode must be one of .* got 'prune'"),
    (dict(precision="float16"), "precision must be one of .* got 'float16'"),
    (dict(distribution="tpu"), "distribution must be one of .* got 'tpu'"),
    (dict(sparsity=1.2), r"sparsity must be in \[0, 1\), got 1.2"),
    (dict(image_size=16), "image_size must be an int >= 32, got 16"),
    (dict(fake_data=False), "data_dir is needed"),
    (dict(mode="one_shot", fake_data=False, data_dir="/d"), "pass pretrained"),
])
def test_bad_values_are_named(overrides, message):
    values = dict(fake_data=True)
    values.update(overrides)
    with pytest.raises(ValueError, match=message):
        configs.imagenet_config(**values)


def test_model_and_preprocessing_choices_match_the_builders_and_the_data():
    from tf_globalmp.data import imagenet as imagenet_data
    from tf_globalmp.models import imagenet as imagenet_models

    fields = {f.name: f for f in dataclasses.fields(configs.ImagenetConfig)}
    assert fields["model"].metadata["choices"] == tuple(sorted(imagenet_models.IMAGENET_MODELS))
    assert fields["preprocessing"].metadata["choices"] == imagenet_data.PREPROCESSING
