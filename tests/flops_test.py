"""FLOPs accounting: pure counts, a hand-computed model, the paper's totals."""

import numpy as np
import pytest

import tf_globalmp
import tf_keras as keras

from tf_globalmp import controller
from tf_globalmp import flops
from tf_globalmp import prune
from tf_globalmp import wrapping
from tf_globalmp.models import imagenet

L = keras.layers


def _tiny():
    inp = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="conv")(inp)  # 3*3*3*4 = 108 weights x 8*8
    x = L.BatchNormalization(name="bn")(x)  # not counted
    x = L.ReLU()(x)
    x = L.DepthwiseConv2D(3, strides=2, padding="same", name="dw")(x)  # 36 x 4*4
    x = L.SeparableConv2D(6, 3, padding="same", name="sep")(x)  # 36 x 16 + 24 x 16
    x = L.MaxPooling2D(1, name="maxpool")(x)  # not counted
    x = L.GlobalAveragePooling2D(name="gap")(x)  # 4*4*6 adds
    out = L.Dense(5, name="fc")(x)  # 6 x 5
    return keras.Model(inp, out)


HAND = {"conv/kernel": 6912, "dw/depthwise_kernel": 576, "sep/depthwise_kernel": 576,
        "sep/pointwise_kernel": 384, "gap": 96, "fc/kernel": 30}


def test_pure_counts():
    assert flops.conv_macs((3, 3, 16, 32), (10, 10)) == 3 * 3 * 16 * 32 * 100
    assert flops.dense_macs((128, 10)) == 1280
    assert flops.dense_macs((128, 10), (7,)) == 8960
    assert flops.pooling_ops((7, 7, 2048)) == 100_352


def test_hand_computed_tiny_model():
    report = flops.flops_report(_tiny())
    assert {r.name: r.macs for r in report.rows} == HAND
    assert report.dense == sum(HAND.values()) == 8574
    assert report.sparse == report.dense  # random init: no zero weights
    assert report.pruned_fraction == 0.0


def test_sparse_flops_weight_each_layer_by_its_density():
    model = _tiny()
    kernel = model.get_layer("conv").kernel
    values = kernel.numpy().ravel()
    values[:54] = 0.0  # half of the conv kernel
    kernel.assign(values.reshape(kernel.shape))
    report = flops.flops_report(model)
    assert report.sparse == pytest.approx(8574 - 6912 / 2)
    assert report.pruned_fraction == pytest.approx((6912 / 2) / 8574)
    assert "FLOPs pruned: 40.31%" in report.to_table()


def test_wrapped_and_stripped_models_agree():
    model = _tiny()
    wrapped = tf_globalmp.prune_low_magnitude_global(
        model, tf_globalmp.GlobalConstantSparsity(0.7))
    dense = flops.flops_report(wrapped)
    assert dense.dense == 8574 and dense.pruned_fraction == 0.0
    controller.GlobalPruner(wrapped).prune_to(0.7)
    pruned = flops.flops_report(wrapped)
    expected = 96 + sum(
        np.count_nonzero(m.numpy()) / m.numpy().size * HAND[f"{wr.layer.name}/{w.name.split('/')[-1].split(':')[0]}"]
        for wr in wrapping.collect_wrappers(wrapped) for w, m, _ in wr.pruning_vars)
    assert pruned.sparse == pytest.approx(expected)
    assert 0.0 < pruned.pruned_fraction < 1.0
    stripped = flops.flops_report(prune.strip_pruning(wrapped))
    assert stripped.sparse == pytest.approx(pruned.sparse)
    assert stripped.dense == pruned.dense


def test_shared_layer_counted_per_call_and_nested_model():
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, L.Dense(3, name="inner_fc")(inner_in), name="inner")
    inp = keras.Input((4,))
    shared = L.Dense(4, name="shared")
    out = inner(shared(shared(inp)))
    report = flops.flops_report(keras.Model(inp, out))
    assert [r.name for r in report.rows] == ["shared/kernel", "shared/kernel", "inner_fc/kernel"]
    assert report.dense == 16 + 16 + 12


def test_dense_on_sequence_counts_every_position():
    inp = keras.Input((7, 8))
    report = flops.flops_report(keras.Model(inp, L.Dense(2)(inp)))
    assert report.dense == 7 * 8 * 2


def test_subclassed_model_is_rejected_with_its_name():
    class Net(keras.Model):
        def __init__(self):
            super().__init__(name="net")
            self.fc = L.Dense(2)

        def call(self, x):
            return self.fc(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(ValueError, match="functional or Sequential.*'net'"):
        flops.flops_report(net)


def test_resnet50_matches_the_paper_exactly():
    report = flops.flops_report(imagenet.build("resnet50"))
    assert report.dense == 4_089_284_608
    assert sum(r.macs for r in report.rows if r.kind != "avgpool") == 4_089_184_256
    assert sum(r.weights for r in report.rows) == 25_502_912


def test_mobilenet_v1_is_569m():
    report = flops.flops_report(imagenet.build("mobilenet_v1"))
    assert report.dense == 568_790_528
    assert round(report.dense / 1e6) == 569
    kinds = [r.kind for r in report.rows if r.weights]
    assert len(kinds) == 28 and kinds.count("depthwise") == 13
