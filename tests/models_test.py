"""Model builders: parameter counts against the papers, shapes, save/load."""

import numpy as np
import pytest

import tf_globalmp
from tf_globalmp import _compat
from tf_globalmp.models import resnet_cifar

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
