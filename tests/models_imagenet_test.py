"""ImageNet builders: parameter counts, ResNet-50 v1.5 layout, pretrained loading."""

import numpy as np
import pytest

import tf_globalmp
import tf_keras as keras

from tf_globalmp import controller
from tf_globalmp import registry
from tf_globalmp.models import imagenet


def _prunable(model):
    return sum(int(np.prod(w.shape)) for l in model.layers for w in registry.prunable_weights(l))


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def test_resnet50_v1_5_counts_match_torchvision():
    model = imagenet.build("resnet50")
    assert _trainable(model) == 25_557_032  # torchvision's count (no BN statistics)
    assert _prunable(model) == 25_502_912  # the paper's prunable weights
    assert model.output_shape == (None, 1000)


def test_resnet50_v1_5_downsamples_on_the_3x3_conv():
    model = imagenet.build("resnet50", input_shape=(64, 64, 3))
    for stage in (2, 3, 4):
        assert model.get_layer(f"layer{stage}_0_conv1").strides == (1, 1)
        assert model.get_layer(f"layer{stage}_0_conv2").strides == (2, 2)
        assert model.get_layer(f"layer{stage}_0_downsample_conv").strides == (2, 2)
    assert not any(getattr(l, "use_bias", False) for l in model.layers
                   if isinstance(l, keras.layers.Conv2D))


@pytest.mark.parametrize("name, params, prunable", [
    ("mobilenet_v1", 4_253_864, 4_209_088),
    ("mobilenet_v2", 3_538_984, None),
])
def test_mobilenet_parameter_counts(name, params, prunable):
    model = imagenet.build(name)
    assert model.count_params() == params
    if prunable:
        assert _prunable(model) == prunable


def test_unknown_model_and_unavailable_weights_name_the_argument():
    with pytest.raises(ValueError, match="model must be one of .* got 'vgg'"):
        imagenet.build("vgg")
    with pytest.raises(ValueError, match="pretrained='imagenet' is not available.*resnet50"):
        imagenet.build("resnet50", pretrained="imagenet")
    with pytest.raises(ValueError, match="needs num_classes=1000"):
        imagenet.build("mobilenet_v1", num_classes=10, pretrained="imagenet")
    with pytest.raises(ValueError, match="existing path, got '/no/such'"):
        imagenet.build("mobilenet_v2", input_shape=(32, 32, 3), pretrained="/no/such")


def test_pretrained_local_path_copies_weights_and_masks(tmp_path):
    source = imagenet.build("mobilenet_v1", 10, (32, 32, 3))
    wrapped = tf_globalmp.prune_low_magnitude_global(
        source, tf_globalmp.GlobalConstantSparsity(0.5))
    controller.GlobalPruner(wrapped).prune_to(0.5)
    path = str(tmp_path / "m.keras")
    wrapped.save(path)
    loaded = imagenet.build("mobilenet_v1", 10, (32, 32, 3), pretrained=path)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x), wrapped(x), rtol=1e-4, atol=1e-5)
    kept = sum(np.count_nonzero(w.numpy()) for l in loaded.layers
               for w in registry.prunable_weights(l))
    assert kept == _prunable(loaded) // 2
