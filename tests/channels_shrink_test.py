"""tf_globalmp.shrink: the smaller model computes what the channel-masked one does."""

import numpy as np
import pytest

import tf_globalmp
from tf_globalmp import _compat
from tf_globalmp.channels import graph
from tf_globalmp.channels import layers as channel_layers
from tf_globalmp.channels import select
from tf_globalmp.channels import shrink as shrink_lib
from tf_globalmp.models import resnet_cifar

keras = _compat.keras
tf = _compat.tf
L = keras.layers


def _bn(x, rng):
    return L.BatchNormalization(center=bool(rng.random() < 0.8),
                                scale=bool(rng.random() < 0.8))(x)


def random_model(seed):
    """A random residual / depthwise / separable / concat / multiply CNN."""
    rng = np.random.default_rng(seed)
    keras.utils.set_random_seed(seed)
    inp = keras.Input((8, 8, 3))
    width = int(rng.integers(2, 6))
    x = L.ReLU()(_bn(L.Conv2D(width, 3, padding="same")(inp), rng))
    pools = 0
    for _ in range(int(rng.integers(3, 6))):
        block = rng.choice(["residual", "depthwise", "separable", "concat", "multiply",
                            "pool", "prelu", "pad"])
        if block == "residual":
            y = L.ReLU(max_value=6.0)(_bn(L.Conv2D(int(rng.integers(1, 5)), 1)(x), rng))
            y = _bn(L.Conv2D(width, 3, padding="same", use_bias=bool(rng.random() < 0.5))(y),
                    rng)
            x = L.ReLU()(L.Add()([x, y]))
        elif block == "depthwise":
            m = int(rng.integers(1, 3))
            x = L.ReLU()(_bn(L.DepthwiseConv2D(3, depth_multiplier=m, padding="same")(x), rng))
            width *= m
        elif block == "separable":
            width = int(rng.integers(2, 6))
            x = L.Activation("swish")(L.SeparableConv2D(width, 3, padding="same")(x))
        elif block == "concat":
            a = L.Conv2D(int(rng.integers(1, 4)), 1)(x)
            x = L.Concatenate()([a, x] if rng.random() < 0.5 else [x, a])
            width += int(a.shape[-1])
        elif block == "multiply":
            x = L.Multiply()([x, L.Conv2D(width, 1)(x)])
        elif block == "pool" and pools < 2:
            pools += 1
            x = (L.MaxPooling2D() if rng.random() < 0.5 else L.AveragePooling2D())(x)
        elif block == "prelu":
            x = L.PReLU(shared_axes=[1, 2] if rng.random() < 0.5 else None)(x)
        elif block == "pad":
            left, right = int(rng.integers(0, 3)), int(rng.integers(0, 3))
            padded = channel_layers.ChannelZeroPad(1, left, right)(x)
            width += left + right
            x = L.Add()([padded, L.Conv2D(width, 1)(x)])
    head = L.Flatten()(x) if rng.random() < 0.5 else L.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, L.Dense(3)(head))
    for layer in model.layers:  # non-trivial BatchNorm statistics and PReLU slopes
        if layer.weights and not isinstance(layer, (L.Conv2D, L.Dense)):
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) for w in layer.get_weights()])
    return model


def prune_randomly(model, seed, fraction=0.5):
    """Zeroes a random set of channel groups the way the masks do (kernels, biases,
    BatchNorm); returns the number of groups zeroed."""
    g = graph.analyze(model)
    keep = np.random.default_rng(seed).random(g.n_groups) >= fraction
    for spec in g.kernels:
        v = g.variables[spec.name]
        v.assign(v.numpy() * select.kernel_mask(spec, keep))
    for spec in g.params:
        if spec.role != "slice":
            v = g.variables[spec.name]
            v.assign(v.numpy() * select.param_mask(spec, keep))
    return int((~keep).sum())


def _max_rel_diff(a, b, x):
    ya, yb = a(x, training=False).numpy(), b(x, training=False).numpy()
    return float(np.max(np.abs(ya - yb)) / max(float(np.max(np.abs(ya))), 1e-30))


_X = np.random.default_rng(7).standard_normal((4, 8, 8, 3)).astype(np.float32)


@pytest.mark.parametrize("seed", range(6))
def test_shrunk_random_graph_equals_masked(seed):
    model = random_model(seed)
    removed = prune_randomly(model, seed)
    small = tf_globalmp.shrink(model)
    assert _max_rel_diff(model, small, _X) <= 1e-5
    if removed:
        assert small.count_params() < model.count_params()


def test_resnet_option_a_shortcut_shrinks_to_uneven_zero_pad():
    model = resnet_cifar.resnet(8)
    prune_randomly(model, 3)
    small = tf_globalmp.shrink(model)
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    assert _max_rel_diff(model, small, x) <= 1e-5
    assert any(isinstance(l, channel_layers.ChannelZeroPad) for l in small.layers)


def test_shrunk_model_saves_loads_and_exports(tmp_path):
    model = random_model(1)
    prune_randomly(model, 1)
    small = tf_globalmp.shrink(model)
    small.save(tmp_path / "small.keras")
    loaded = tf_globalmp.load_model(str(tmp_path / "small.keras"))
    assert _max_rel_diff(small, loaded, _X) == 0.0
    report = tf_globalmp.export_tflite(small, str(tmp_path / "small.tflite"))
    assert report.bytes > 0


def test_unpruned_model_shrinks_to_the_same_size():
    model = random_model(2)
    assert tf_globalmp.shrink(model).count_params() == model.count_params()


def test_layer_with_every_channel_dead_keeps_one_zero_channel():
    inp = keras.Input((4, 4, 2))
    a = L.Conv2D(3, 1, name="a")(inp)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(L.Conv2D(2, 1, name="b")(a))))
    model.get_layer("a").set_weights([np.zeros((1, 1, 2, 3)), np.zeros(3)])
    small = tf_globalmp.shrink(model)
    assert small.get_layer("a").filters == 1
    x = np.ones((1, 4, 4, 2), np.float32)
    np.testing.assert_allclose(small(x).numpy(), model(x).numpy(), rtol=1e-6)


def test_group_with_nonzero_batchnorm_beta_is_kept():
    inp = keras.Input((4, 4, 2))
    a = L.BatchNormalization(name="bn")(L.Conv2D(2, 1, use_bias=False, name="a")(inp))
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(L.ReLU()(a))))
    model.get_layer("a").set_weights([np.zeros((1, 1, 2, 2))])
    model.get_layer("bn").set_weights([np.zeros(2), np.array([0.0, 1.0]), np.zeros(2),
                                       np.ones(2)])
    assert shrink_lib.dead_groups(graph.analyze(model)).tolist() == [True, False]


def test_wrapped_model_is_refused():
    model = random_model(0)
    wrapped = tf_globalmp.prune_low_magnitude_global(
        model, tf_globalmp.GlobalConstantSparsity(0.5, 0), granularity="channel")
    with pytest.raises(ValueError, match="strip_pruning"):
        tf_globalmp.shrink(wrapped)


def test_unknown_layer_is_refused_by_name():
    inp = keras.Input((4, 4, 2))
    x = L.Lambda(lambda t: t + 1.0, name="plus_one")(L.Conv2D(2, 1)(inp))
    with pytest.raises(ValueError, match="'plus_one'"):
        tf_globalmp.shrink(keras.Model(inp, L.Dense(2)(L.Flatten()(x))))
