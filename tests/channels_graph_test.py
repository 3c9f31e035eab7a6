"""tf_globalmp.channels.graph: which channels form a group, which are never pruned,
and what is refused."""

import numpy as np
import pytest

import tf_globalmp  # noqa: F401  (selects tf-keras)
from tf_globalmp import _compat
from tf_globalmp.channels import graph
from tf_globalmp.models import resnet_cifar

keras = _compat.keras
L = keras.layers


def _spec(g, name):
    for s in g.specs():
        if s.name == name:
            return s
    raise KeyError(name)


def _out(g, layer):
    return _spec(g, f"{layer}/kernel").out_groups


def _model(build, shape=(6, 6, 3)):
    inp = keras.Input(shape)
    return keras.Model(inp, build(inp))


def test_add_joins_producers_index_wise():
    def build(x):
        a = L.Conv2D(4, 1, name="a")(x)
        b = L.Conv2D(4, 1, name="b")(x)
        y = L.ReLU()(L.Add()([a, b]))
        return L.Dense(2, name="head")(L.GlobalAveragePooling2D()(y))

    g = graph.analyze(_model(build))
    np.testing.assert_array_equal(_out(g, "a"), _out(g, "b"))
    np.testing.assert_array_equal(_spec(g, "head/kernel").in_groups, _out(g, "a"))
    assert g.n_groups == 4


def test_concatenate_keeps_offsets():
    def build(x):
        a = L.Conv2D(2, 1, name="a")(x)
        b = L.Conv2D(3, 1, name="b")(x)
        y = L.Conv2D(4, 1, name="c")(L.Concatenate()([a, b]))
        return L.Dense(2)(L.Flatten()(y))

    g = graph.analyze(_model(build))
    np.testing.assert_array_equal(_spec(g, "c/kernel").in_groups,
                                  np.concatenate([_out(g, "a"), _out(g, "b")]))
    assert len(set(_out(g, "a")) | set(_out(g, "b"))) == 5


def test_depthwise_follows_its_input_and_repeats_for_multiplier():
    def build(x):
        a = L.Conv2D(3, 1, name="a")(x)
        d = L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(a)
        b = L.BatchNormalization(name="bn")(d)
        return L.Dense(2)(L.GlobalAveragePooling2D()(L.Conv2D(4, 1, name="c")(b)))

    g = graph.analyze(_model(build))
    a = _out(g, "a")
    dw = _spec(g, "dw/depthwise_kernel")
    np.testing.assert_array_equal(dw.in_groups, a)
    assert dw.out_axis is None
    np.testing.assert_array_equal(_spec(g, "dw/bias").groups, np.repeat(a, 2))
    np.testing.assert_array_equal(_spec(g, "bn/gamma").groups, np.repeat(a, 2))
    np.testing.assert_array_equal(_spec(g, "c/kernel").in_groups, np.repeat(a, 2))


def test_flatten_into_dense_repeats_channels_per_position():
    def build(x):
        a = L.Conv2D(3, 3, name="a")(x)  # 4x4x3
        return L.Dense(2, name="head")(L.Flatten()(L.MaxPooling2D()(a)))  # 2x2x3

    g = graph.analyze(_model(build))
    np.testing.assert_array_equal(_spec(g, "head/kernel").in_groups, np.tile(_out(g, "a"), 4))


def test_network_output_channels_are_never_pruned():
    def build(x):
        return L.Conv2D(2, 1, name="last")(L.Conv2D(3, 1, name="first")(x))

    g = graph.analyze(_model(build))
    assert np.all(_out(g, "last") == -1)
    assert np.all(_out(g, "first") >= 0)


def test_batchnorm_parameters_and_roles():
    g = graph.analyze(_model(lambda x: L.Dense(2)(L.Flatten()(
        L.BatchNormalization(name="bn")(L.Conv2D(3, 1, name="a")(x))))))
    roles = {s.name: s.role for s in g.params if not s.name.startswith("dense")}
    assert roles == {"a/bias": "bias", "bn/gamma": "bias", "bn/beta": "bias",
                     "bn/moving_mean": "stat", "bn/moving_variance": "stat"}
    for name in roles:
        np.testing.assert_array_equal(_spec(g, name).groups, _out(g, "a"))


@pytest.mark.parametrize("barrier", [
    lambda: L.LayerNormalization(), lambda: L.Activation("sigmoid"), lambda: L.Softmax(),
    lambda: L.Reshape((6, 6, 2, 2)), lambda: L.Activation("softmax")])
def test_channel_mixing_layers_stop_pruning(barrier):
    g = graph.analyze(_model(lambda x: L.Dense(2)(L.Flatten()(barrier()(
        L.Conv2D(4, 1, name="a")(x))))))
    assert np.all(_out(g, "a") == -1)


@pytest.mark.parametrize("through", [
    lambda: L.Activation("relu"), lambda: L.ReLU(max_value=6.0), lambda: L.LeakyReLU(),
    lambda: L.Dropout(0.5), lambda: L.ZeroPadding2D(), lambda: L.Reshape((36, 4)),
    lambda: L.UpSampling2D(), lambda: L.Activation("swish")])
def test_channel_wise_layers_pass_groups_on(through):
    g = graph.analyze(_model(lambda x: L.Dense(2, name="head")(L.Flatten()(through()(
        L.Conv2D(4, 1, name="a")(x))))))
    assert np.all(_out(g, "a") >= 0)
    head = _spec(g, "head/kernel").in_groups
    np.testing.assert_array_equal(head, np.tile(_out(g, "a"), len(head) // 4))


def test_broadcast_merge_input_is_never_pruned():
    def build(x):
        a = L.Conv2D(4, 1, name="a")(x)
        s = L.Conv2D(1, 1, name="gate")(x)
        return L.Dense(2)(L.Flatten()(L.Multiply()([a, s])))

    g = graph.analyze(_model(build))
    assert np.all(_out(g, "gate") == -1)
    assert np.all(_out(g, "a") >= 0)


def test_shared_layer_joins_the_inputs_of_its_calls():
    def build(x):
        a = L.Conv2D(3, 1, name="a")(x)
        b = L.Conv2D(3, 1, name="b")(x)
        shared = L.Conv2D(2, 1, name="shared")
        y = L.Concatenate()([shared(a), shared(b)])
        return L.Dense(2)(L.Flatten()(y))

    g = graph.analyze(_model(build))
    np.testing.assert_array_equal(_out(g, "a"), _out(g, "b"))
    assert _spec(g, "shared/kernel").positions == 2 * 36


def test_resnet20_option_a_groups():
    g = graph.analyze(resnet_cifar.resnet(20))
    # residual streams (joined across stages by the zero-padded shortcuts): 64 groups;
    # first conv of each block: 3 x (16 + 32 + 64)
    assert g.n_groups == 64 + 3 * (16 + 32 + 64)
    stem = _out(g, "stem_conv")
    stage3 = _out(g, "stage3_block1_2_conv")
    assert set(stem) <= set(stage3)


def test_subclassed_model_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = L.Conv2D(2, 1)

        def call(self, x):
            return self.conv(x)

    net = Net()
    net(np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(graph.UnsupportedGraphError, match="subclassed model"):
        graph.analyze(net)


def test_unknown_layer_on_prunable_channels_is_refused_by_name():
    model = _model(lambda x: L.Dense(2)(L.Flatten()(
        L.Lambda(lambda t: t * 2.0, name="double")(L.Conv2D(3, 1)(x)))))
    with pytest.raises(graph.UnsupportedGraphError,
                       match=r"layer 'double' \(Lambda\).*exclude=\['double'\]"):
        graph.analyze(model)


def test_excluded_unknown_layer_becomes_a_barrier():
    model = _model(lambda x: L.Dense(2)(L.Flatten()(
        L.Lambda(lambda t: t * 2.0, name="double")(L.Conv2D(3, 1, name="a")(x)))))
    g = graph.analyze(model, exclude=["double"])
    assert np.all(_out(g, "a") == -1)


def test_unknown_layer_on_the_input_only_is_fine():
    model = _model(lambda x: L.Dense(2)(L.Flatten()(L.Conv2D(3, 1, name="a")(
        L.Lambda(lambda t: t / 255.0, name="scale")(x)))))
    assert np.all(_out(graph.analyze(model), "a") >= 0)


def test_excluded_conv_keeps_its_output_channels():
    model = _model(lambda x: L.Dense(2)(L.Flatten()(L.Conv2D(3, 1, name="b")(
        L.Conv2D(3, 1, name="a")(x)))))
    g = graph.analyze(model, exclude=[L.Conv2D])
    assert g.n_groups == 0


def test_exclude_of_unknown_name_raises():
    with pytest.raises(ValueError, match="exclude names no layer .*'nope'"):
        graph.analyze(_model(lambda x: L.Conv2D(2, 1)(x)), exclude="nope")


def test_nested_model_is_refused_by_name():
    inner = _model(lambda x: L.Conv2D(3, 1)(x))
    inner._name = "inner_net"
    with pytest.raises(graph.UnsupportedGraphError, match="nested model 'inner_net'"):
        graph.analyze(_model(lambda x: L.Conv2D(2, 1)(inner(x))))
