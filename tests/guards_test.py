"""Guards on wrapped models: fit needs UpdateGlobalPruningStep; save says which route."""

import numpy as np
import pytest

import tf_globalmp
import tf_keras as keras
import tensorflow_model_optimization as tfmot

from tf_globalmp import guards
from tf_globalmp import prune

from tf_globalmp import wrapping
X = np.random.default_rng(0).normal(size=(64, 8)).astype("float32")
Y = np.random.default_rng(1).integers(0, 3, size=64)
SPARSITY = 0.75


@pytest.fixture(autouse=True)
def _fresh_session():
    keras.utils.set_random_seed(0)
    yield
    keras.backend.clear_session()


def _sequential():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(3)], name="seq")


def _compiled(model):
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def _wrapped(model=None):
    schedule = tf_globalmp.GlobalConstantSparsity(SPARSITY, begin_step=1, frequency=2)
    return _compiled(tf_globalmp.prune_low_magnitude_global(model or _sequential(), schedule))


def _kernels(model):
    return [v.numpy().copy() for v in model.trainable_variables]


def _kept_fraction(model):
    masks = [m.numpy() for w in wrapping.collect_wrappers(model) for _, m, _ in w.pruning_vars]
    return sum(m.sum() for m in masks) / sum(m.size for m in masks)


@pytest.mark.parametrize("callbacks", [None, [], [keras.callbacks.History()]])
def test_fit_without_the_global_callback_fails_before_training(callbacks):
    model = _wrapped()
    before = _kernels(model)
    with pytest.raises(ValueError, match=r"callbacks=\[tf_globalmp\.UpdateGlobalPruningStep\(\)"):
        model.fit(X, Y, epochs=1, verbose=0, callbacks=callbacks)
    assert int(model.optimizer.iterations) == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, _kernels(model)))


def test_fit_with_tfmots_update_pruning_step_fails_naming_ours():
    model = _wrapped()
    with pytest.raises(ValueError, match=r"tfmot's UpdatePruningStep.*"
                                         r"tf_globalmp\.UpdateGlobalPruningStep\(\)"):
        model.fit(X, Y, epochs=1, verbose=0,
                  callbacks=[tfmot.sparsity.keras.UpdatePruningStep(),
                             tf_globalmp.UpdateGlobalPruningStep()])
    assert int(model.optimizer.iterations) == 0


def test_callbacks_given_by_position_are_checked():
    model = _wrapped()
    with pytest.raises(ValueError, match="UpdateGlobalPruningStep"):
        model.fit(X, Y, 32, 1, 0, [keras.callbacks.History()])  # callbacks is the 6th
    model.fit(X, Y, 32, 1, 0, [tf_globalmp.UpdateGlobalPruningStep()])
    assert _kept_fraction(model) == 1 - SPARSITY


def test_fit_with_the_global_callback_prunes_and_evaluate_predict_work():
    model = _wrapped()
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0,
              callbacks=[tf_globalmp.UpdateGlobalPruningStep()])
    assert _kept_fraction(model) == 1 - SPARSITY
    model.evaluate(X, Y, verbose=0)  # no callback needed
    assert model.predict(X, verbose=0).shape == (64, 3)


def test_a_callback_list_is_looked_into():
    model = _wrapped()
    guards.check_fit_callbacks(
        model, keras.callbacks.CallbackList([tf_globalmp.UpdateGlobalPruningStep()]))
    with pytest.raises(ValueError, match="UpdatePruningStep"):
        guards.check_fit_callbacks(
            model, keras.callbacks.CallbackList([tfmot.sparsity.keras.UpdatePruningStep()]))


def test_the_tfmot_baseline_still_trains_with_tfmots_callback():
    schedule = tf_globalmp.GlobalConstantSparsity(SPARSITY, begin_step=1, frequency=2)
    model = _compiled(prune.prune_low_magnitude_tfmot(_sequential(), schedule))
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0,
              callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    assert _kept_fraction(model) == 1 - SPARSITY


def test_a_wrapped_functional_model_still_saves_and_loads(tmp_path):
    model = _wrapped()
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0,
              callbacks=[tf_globalmp.UpdateGlobalPruningStep()])
    model.save(tmp_path / "m.keras")
    with tf_globalmp.prune_scope():
        loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), model.predict(X, verbose=0))


class _Sub(keras.Model):
    def __init__(self):
        super().__init__(name="sub")
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.logits = keras.layers.Dense(3)

    def call(self, x):
        return self.logits(self.hidden(x))


def _subclassed():
    model = _Sub()
    model(X[:1])
    return model


def _pruned_subclassed():
    model = _wrapped(_subclassed())
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0,
              callbacks=[tf_globalmp.UpdateGlobalPruningStep()])
    return model


@pytest.mark.parametrize("path", ["m.keras", "saved_model_dir", "m.h5"])
def test_saving_a_subclassed_model_wrapped_in_place_names_the_routes(tmp_path, path):
    model = _pruned_subclassed()
    with pytest.raises(ValueError, match=r"'sub' \(_Sub\).*save_weights.*"
                                         r"tf_globalmp\.strip_pruning\(model\)\.save"):
        model.save(tmp_path / path)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_a_custom_layer_holding_wrappers_is_named_too(tmp_path):
    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(16)

        def call(self, x):
            return self.dense(x)

    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(3)(Block(name="block")(inputs)))
    wrapped = _wrapped(model)
    with pytest.raises(ValueError, match=r"'block' \(Block\)"):
        wrapped.save(tmp_path / "m.keras")


def test_the_save_weights_route_restores_masks_and_outputs(tmp_path):
    model = _pruned_subclassed()
    model.save_weights(tmp_path / "ckpt.weights.h5")
    restored = _wrapped(_subclassed())
    restored.load_weights(tmp_path / "ckpt.weights.h5")
    for a, b in zip(wrapping.collect_wrappers(model), wrapping.collect_wrappers(restored)):
        for (_, mask_a, _), (_, mask_b, _) in zip(a.pruning_vars, b.pruning_vars):
            np.testing.assert_array_equal(mask_a.numpy(), mask_b.numpy())
    np.testing.assert_array_equal(restored(X).numpy(), model(X).numpy())


def test_the_strip_route_saves_and_the_guards_step_aside(tmp_path):
    model = _pruned_subclassed()
    expected = model(X).numpy()
    stripped = tf_globalmp.strip_pruning(model)  # the same object, unwrapped in place
    assert stripped is model and not guards.has_wrappers(model)
    stripped.save_weights(tmp_path / "w.weights.h5")
    stripped.save(tmp_path / "saved_model_dir")  # no wrappers left: Keras' own save
    stripped.fit(X, Y, epochs=1, verbose=0)  # and a plain fit is allowed again
    assert np.isfinite(expected).all()
