"""Model builders: parameter counts against the papers, shapes, save/load."""

import numpy as np
import pytest

import tf_globalmp
from tf_globalmp import _compat
from tf_globalmp import models
from tf_globalmp.models import mobilenet_v2_cifar
from tf_globalmp.models import resnet_cifar
from tf_globalmp.models import wide_resnet

keras = _compat.keras


@pytest.mark.parametrize(
    "depth, params, trainable, prunable, paper_millions",
    [
        # He et al. 2016, Table 6: ResNet-20 0.27M, ResNet-32 0.46M, ResNet-56 0.85M
        # (trainable parameters; BatchNorm moving statistics are not counted).
        (20, 271_098, 269_722, 268_336, 0.27),
        (32, 466_426, 464_154, 461_872, 0.46),
        (56, 857_082, 853_018, 848_944, 0.85),
    ],
)
def test_resnet_cifar_parameter_counts_match_the_paper(
    depth, params, trainable, prunable, paper_millions
):
    model = resnet_cifar.resnet(depth)
    assert model.count_params() == params
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
    assert round(trainable / 1e6, 2) == paper_millions
    # Prunable: every conv kernel and the dense kernel (option A has no shortcut conv).
    assert tf_globalmp.sparsity_report(model).total.weights == prunable
    assert model.output_shape == (None, 10)


def test_resnet_cifar_option_b_adds_two_projection_shortcuts():
    a, b = resnet_cifar.resnet(20), resnet_cifar.resnet(20, shortcut="B")
    # 1x1 convs 16->32 and 32->64 plus their BatchNorms (4 parameters per channel).
    assert b.count_params() - a.count_params() == 16 * 32 + 32 * 64 + 4 * (32 + 64)


@pytest.mark.parametrize("depth", [0, 19, 21])
def test_resnet_cifar_rejects_depths_that_are_not_6n_plus_2(depth):
    with pytest.raises(ValueError, match=f"6n \\+ 2.*got {depth}"):
        resnet_cifar.resnet(depth)


def test_resnet_cifar_saves_and_loads_with_the_zero_pad_shortcut(tmp_path):
    model = resnet_cifar.resnet(20, num_classes=3, input_shape=(8, 8, 3))
    path = str(tmp_path / "resnet.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=0, atol=0)


def _trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


@pytest.mark.parametrize(
    "depth, width, trainable, prunable, paper_millions",
    [
        # Zagoruyko & Komodakis 2016, Table 1: WRN-28-10 has 36.5M parameters (36,479,194
        # trainable in the authors' code); WRN-22-8 17.2M.
        (28, 10, 36_479_194, 36_461_232, 36.5),
        (22, 8, 17_158_106, 17_147_312, 17.2),
        (28, 8, 23_354_842, 23_340_464, 23.4),
    ],
)
def test_wide_resnet_parameter_counts_match_the_paper(depth, width, trainable, prunable,
                                                      paper_millions):
    model = wide_resnet.wide_resnet(depth, width)
    assert _trainable(model) == trainable
    assert round(trainable / 1e6, 1) == paper_millions
    assert tf_globalmp.sparsity_report(model).total.weights == prunable
    assert model.output_shape == (None, 10)


def test_wide_resnet_dropout_sits_between_the_two_convs_of_each_block():
    model = wide_resnet.wide_resnet(16, 1, dropout=0.3)
    dropouts = [l for l in model.layers if isinstance(l, keras.layers.Dropout)]
    assert len(dropouts) == 6 and all(l.rate == 0.3 for l in dropouts)
    assert _trainable(model) == _trainable(wide_resnet.wide_resnet(16, 1))


@pytest.mark.parametrize("depth, width, match", [(20, 8, "6n \\+ 4.*got 20"),
                                                 (28, 0, "width.*got 0")])
def test_wide_resnet_rejects_bad_shapes(depth, width, match):
    with pytest.raises(ValueError, match=match):
        wide_resnet.wide_resnet(depth, width)


def test_mobilenet_v2_cifar_matches_the_paper_and_its_mt_count():
    model = mobilenet_v2_cifar.mobilenet_v2_cifar()
    # 2.30M trainable (the PyTorch CIFAR MobileNet-V2 the paper used: 2,296,922).
    assert _trainable(model) == 2_296_922
    layer_report = tf_globalmp.sparsity_report(model)
    # MT 0.02% of all prunable weights is 452 per layer, the paper's number.
    assert int(layer_report.total.weights * 0.02 / 100) == 452
    assert len(layer_report.rows) == 58  # 52 convs (17 depthwise), 5 shortcuts, fc
    # Stride-1 stem: 32x32 inputs reach 4x4 before pooling.
    assert model.get_layer("head_conv").output_shape == (None, 4, 4, 1280)


def test_cifar_models_by_name():
    model = models.build_cifar("resnet8", num_classes=3, input_shape=(16, 16, 3))
    assert model.output_shape == (None, 3)
    with pytest.raises(ValueError, match="model must be one of.*got 'vgg'"):
        models.build_cifar("vgg")
    with pytest.raises(ValueError, match="no dropout.*dropout=0.3"):
        models.build_cifar("resnet20", dropout=0.3)

