"""Nested, shared-layer and subclassed models: wrap, fit, exact sparsity, strip."""

import numpy as np
import pytest

import tf_globalmp
import tf_keras as keras

from tf_globalmp import prune
from tf_globalmp import registry

from . import helpers

SPARSITY = 0.8


def _nested():
    """A Sequential feature extractor inside a functional model."""
    keras.utils.set_random_seed(5)
    features = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(6, 3, padding="same", name="inner_conv"),
            keras.layers.BatchNormalization(name="inner_bn"),
            keras.layers.ReLU(),
            keras.layers.DepthwiseConv2D(3, name="inner_depthwise"),
            keras.layers.Flatten(),
        ],
        name="features",
    )
    inp = keras.Input((8, 8, 1))
    hidden = keras.layers.Dense(16, activation="relu", name="outer_dense")(features(inp))
    model = keras.Model(inp, keras.layers.Dense(10, name="outer_logits")(hidden), name="nested")
    sizes = [3 * 3 * 1 * 6, 3 * 3 * 6 * 1, 6 * 6 * 6 * 16, 16 * 10]
    return model, sizes


def _shared():
    """One Dense(16) applied twice: one wrapper, one mask, counted once."""
    keras.utils.set_random_seed(6)
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inp)
    x = keras.layers.Dense(16, activation="relu", name="first")(x)
    shared = keras.layers.Dense(16, activation="relu", name="shared")
    x = shared(shared(x))
    model = keras.Model(inp, keras.layers.Dense(10, name="logits")(x), name="shared_model")
    sizes = [64 * 16, 16 * 16, 16 * 10]
    return model, sizes


class _Subclassed(keras.Model):
    """Layers as attributes and in a list; BatchNorm in between."""

    def __init__(self):
        super().__init__(name="subclassed")
        self.conv = keras.layers.Conv2D(4, 3, name="sub_conv")
        self.bn = keras.layers.BatchNormalization(name="sub_bn")
        self.depthwise = keras.layers.DepthwiseConv2D(3, name="sub_depthwise")
        self.flatten = keras.layers.Flatten()
        self.head = [keras.layers.Dense(12, activation="relu", name="sub_dense"),
                     keras.layers.Dense(10, name="sub_logits")]

    def call(self, inputs, training=None):
        x = self.bn(self.conv(inputs), training=training)
        x = self.flatten(self.depthwise(keras.activations.relu(x)))
        for layer in self.head:
            x = layer(x)
        return x


def _subclassed():
    keras.utils.set_random_seed(7)
    model = _Subclassed()
    model(np.zeros((1, 8, 8, 1), "float32"))
    sizes = [3 * 3 * 1 * 4, 3 * 3 * 4 * 1, 4 * 4 * 4 * 12, 12 * 10]
    return model, sizes


BUILDERS = {"nested": _nested, "shared": _shared, "subclassed": _subclassed}


def _all_layers(model):
    """Every layer reachable from `model`, recursively (wrappers' inner layers too)."""
    return list(model._flatten_layers(include_self=True, recursive=True))


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def run(request, digits):
    x, y = digits
    model, sizes = BUILDERS[request.param]()
    schedule = tf_globalmp.GlobalConstantSparsity(SPARSITY, begin_step=3)
    wrapped = helpers.compile_model(helpers.wrap(model, schedule))
    pruning = tf_globalmp.UpdateGlobalPruningStep()
    after = helpers.AfterBatch(pruning)
    wrapped.fit(x[:128], y[:128], batch_size=helpers.BATCH, epochs=2, shuffle=False, verbose=0,
                callbacks=[pruning, after])
    wrapped_masks = helpers.masks(wrapped)
    prediction = wrapped.predict(x[:64], verbose=0)
    direct = wrapped(x[:64], training=False).numpy()
    stripped = tf_globalmp.strip_pruning(wrapped)  # subclassed: unwrapped in place
    return dict(kind=request.param, wrapped=wrapped, sizes=sizes, pruning=pruning, after=after,
                masks=wrapped_masks, prediction=prediction, direct=direct, stripped=stripped,
                x=x[:64], n_keep=helpers.n_keep(sum(sizes), SPARSITY))


def test_each_prunable_kernel_is_wrapped_once_and_counted_once(run):
    pruner = run["pruning"].pruner
    assert pruner.sizes == run["sizes"]
    assert pruner.total == sum(run["sizes"])
    assert len({id(w) for w in pruner.wrappers}) == len(run["sizes"])


def test_fit_reaches_the_exact_global_sparsity(run):
    assert helpers.kept(run["masks"]) == run["n_keep"]
    result = run["pruning"].pruner.last_result
    assert (result.step, result.kept, result.total) == (3, run["n_keep"], sum(run["sizes"]))
    helpers.assert_pruned_weights_zero(run["after"].records)


@pytest.mark.parametrize("run", ["shared"], indirect=True)
def test_shared_layer_is_one_wrapper_called_at_both_sites(run):
    shared = [w for w in run["pruning"].pruner.wrappers if w.layer.name == "shared"]
    assert len(shared) == 1
    assert len(shared[0]._inbound_nodes) == 2  # both call sites use the one wrapper
    # The wrapper counts each call; the callback still records the true step (8).
    assert helpers.pruning_steps(run["wrapped"]) == [8] * len(run["sizes"])


def test_strip_leaves_no_wrapper(run):
    layers = _all_layers(run["stripped"])
    assert not any(isinstance(l, prune.PruneLowMagnitude) for l in layers)
    assert not any("mask" in v.name or "pruning_step" in v.name for v in run["stripped"].variables)


def test_stripped_kernels_have_exactly_n_keep_nonzeros_where_the_masks_were(run):
    report = tf_globalmp.sparsity_report(run["stripped"])
    assert [r.weights for r in report.rows] == run["sizes"]
    assert report.total.nonzero == run["n_keep"]
    kernels = [w for l in _all_layers(run["stripped"]) if not isinstance(l, keras.Model)
               for w in registry.prunable_weights(l)]
    for kernel, mask in zip(kernels, run["masks"]):
        np.testing.assert_array_equal(kernel.numpy() != 0, mask != 0)


def test_stripped_predictions_equal_the_wrapped_predictions(run):
    stripped = run["stripped"].predict(run["x"], verbose=0)
    np.testing.assert_array_equal(stripped, run["prediction"])
    np.testing.assert_allclose(run["direct"], run["prediction"], rtol=1e-6, atol=1e-6)
