"""Wrapping policy, strip, scope and argument checks (no training)."""

import numpy as np
import pytest

import tf_globalmp
import tf_keras as keras
import tensorflow_model_optimization as tfmot

from tf_globalmp import prune

from tf_globalmp import wrapping
PLM = prune.PruneLowMagnitude
SCHEDULE = tf_globalmp.GlobalConstantSparsity(0.5)


def _zoo():
    inp = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3)(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.DepthwiseConv2D(3)(x)
    x = keras.layers.SeparableConv2D(5, 3)(x)
    x = keras.layers.Conv2DTranspose(3, 3)(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(2)(x)
    return keras.Model(inp, out)


def test_wraps_exactly_the_prunable_layers_including_depthwise():
    wrapped = tf_globalmp.prune_low_magnitude_global(_zoo(), SCHEDULE)
    kinds = {type(l.layer).__name__: len(l.pruning_vars) for l in wrapped.layers if isinstance(l, PLM)}
    assert kinds == {
        "Conv2D": 1,
        "DepthwiseConv2D": 1,
        "SeparableConv2D": 2,
        "Conv2DTranspose": 1,
        "Dense": 1,
    }
    names = tf_globalmp.GlobalPruner(wrapped).names
    assert any("depthwise_kernel" in n for n in names)
    assert not any("bias" in n or "gamma" in n for n in names)


def test_wrapped_model_keeps_weights_and_outputs():
    model = _zoo()
    x = np.random.default_rng(0).standard_normal((2, 12, 12, 3)).astype("float32")
    before = model.predict(x, verbose=0)
    wrapped = tf_globalmp.prune_low_magnitude_global(model, SCHEDULE)
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), before, rtol=1e-5, atol=1e-6)


def test_per_layer_update_is_off_and_global_prune_is_exact():
    wrapped = tf_globalmp.prune_low_magnitude_global(_zoo(), SCHEDULE)
    pruner = tf_globalmp.GlobalPruner(wrapped)
    result = pruner.prune_to(0.7)
    assert result.kept == pruner.total - round(0.7 * pruner.total)
    assert tf_globalmp.sparsity_report(wrapped).total.nonzero == result.kept
    for w in wrapping.collect_wrappers(wrapped):
        assert w.pruning_obj.conditional_mask_update is wrapping._no_layer_update


def test_options_are_carried_and_validated():
    wrapped = tf_globalmp.prune_low_magnitude_global(_zoo(), SCHEDULE, min_weights=4, redistribution="proportional")
    pruner = tf_globalmp.GlobalPruner(wrapped)
    assert (pruner.sigma, pruner.options.redistribution) == (4, "proportional")
    assert tf_globalmp.GlobalPruner(wrapped, min_weights=2).sigma == 2
    with pytest.raises(ValueError, match="redistribution"):
        tf_globalmp.prune_low_magnitude_global(_zoo(), SCHEDULE, redistribution="lamp")
    with pytest.raises(ValueError, match="min_weights_fraction"):
        tf_globalmp.prune_low_magnitude_global(_zoo(), SCHEDULE, min_weights_fraction=2.0)


def test_unbuilt_model_is_rejected():
    model = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="not built"):
        tf_globalmp.prune_low_magnitude_global(model, SCHEDULE)


def test_model_without_prunable_layer_is_rejected():
    model = keras.Sequential([keras.Input((4,)), keras.layers.BatchNormalization(), keras.layers.ReLU()])
    with pytest.raises(ValueError, match="no prunable layer"):
        tf_globalmp.prune_low_magnitude_global(model, SCHEDULE)


def test_bad_schedule_and_bad_model_types():
    with pytest.raises(ValueError, match="pruning_schedule"):
        tf_globalmp.prune_low_magnitude_global(_zoo(), 0.9)
    with pytest.raises(TypeError, match="tf_keras.Model"):
        tf_globalmp.prune_low_magnitude_global("model", SCHEDULE)
    with pytest.raises(ValueError, match="no pruning wrapper"):
        tf_globalmp.GlobalPruner(_zoo())


def test_strip_pruning_gives_plain_model_with_masks_applied():
    wrapped = tf_globalmp.prune_low_magnitude_global(_zoo(), SCHEDULE)
    tf_globalmp.GlobalPruner(wrapped).prune_to(0.8)
    # Perturb a pruned weight as an optimizer step would; strip must re-mask.
    wrapper = wrapping.collect_wrappers(wrapped)[0]
    weight, mask, _ = wrapper.pruning_vars[0]
    weight.assign(weight + 1.0)
    stripped = tf_globalmp.strip_pruning(wrapped)
    assert not any(isinstance(l, PLM) for l in stripped.layers)
    report = tf_globalmp.sparsity_report(stripped)
    total = report.total.weights
    assert report.total.nonzero == total - round(0.8 * total)


def test_prune_scope_round_trip_keeps_depthwise_masks(tmp_path):
    wrapped = tf_globalmp.prune_low_magnitude_global(_zoo(), tf_globalmp.GlobalPolynomialDecay(0.0, 0.8, 0, 10, frequency=2))
    tf_globalmp.GlobalPruner(wrapped).prune_to(0.8)
    path = str(tmp_path / "m.keras")
    wrapped.save(path)
    with tf_globalmp.prune_scope():
        loaded = keras.models.load_model(path)
    assert isinstance(wrapping.collect_wrappers(loaded)[0].pruning_schedule, tf_globalmp.GlobalPolynomialDecay)
    a = tf_globalmp.sparsity_report(wrapped).to_dict()
    b = tf_globalmp.sparsity_report(loaded).to_dict()
    assert a == b
    # tfmot's registry is restored after the scope: depthwise is not prunable for tfmot.
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry
    assert prune_registry.PruneRegistry._LAYERS_WEIGHTS_MAP[keras.layers.DepthwiseConv2D] == []


@pytest.mark.parametrize("schedule", [
    tf_globalmp.GlobalConstantSparsity(0.9, begin_step=0, frequency=4),
    tf_globalmp.GlobalConstantSparsity(0.5, begin_step=3, end_step=11, frequency=2),
    tf_globalmp.GlobalPolynomialDecay(0.1, 0.8, begin_step=2, end_step=14, frequency=3),
])
def test_tfmot_schedule_fires_at_the_same_training_steps(schedule):
    theirs = prune.tfmot_schedule(schedule)
    for step in range(20):  # ours sees step s before the update, tfmot's wrapper s + 1
        ours_due, ours_sparsity = schedule(step)
        their_due, their_sparsity = theirs(step + 1)
        assert bool(ours_due) == bool(their_due), step
        assert float(ours_sparsity) == pytest.approx(float(their_sparsity), abs=1e-6), step


def test_tfmot_baseline_one_shot_is_tfmots_per_layer_top_k():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3)(inp)
    out = keras.layers.Dense(5)(keras.layers.Flatten()(x))
    model = keras.Model(inp, out)
    kernels = {l.name: l.kernel.numpy() for l in model.layers if hasattr(l, "kernel")}
    wrapped = prune.prune_low_magnitude_tfmot(
        model, tf_globalmp.GlobalConstantSparsity(0.75, begin_step=0, frequency=10))
    assert all(not isinstance(w.pruning_schedule, tf_globalmp.GlobalConstantSparsity)
               for w in wrapping.collect_wrappers(wrapped))
    prune.prune_tfmot_now(wrapped)
    pruned = [w for w in wrapping.collect_wrappers(wrapped) if w.pruning_vars]
    assert sorted(w.layer.name for w in pruned) == sorted(kernels)
    for wrapper in pruned:
        weight, mask, _ = wrapper.pruning_vars[0]
        reference = np.abs(kernels[wrapper.layer.name]).ravel()
        keep = int(np.round(reference.size * 0.25))
        expected = reference >= np.sort(reference)[::-1][keep - 1]
        np.testing.assert_array_equal(mask.numpy().ravel().astype(bool), expected)
        assert np.all(weight.numpy().ravel()[~expected] == 0)


# ------------------------------------------- every prunable layer kind (issue 16)
def test_wrapped_mixed_model_keeps_outputs_and_masks_of_embedding():
    from mixed_models import mixed, tokens

    model = mixed(mask_zero=True)  # the wrapped Embedding must still mask the padding
    before = model.predict(tokens(), verbose=0)
    wrapped = tf_globalmp.prune_low_magnitude_global(model, SCHEDULE)
    np.testing.assert_allclose(wrapped.predict(tokens(), verbose=0), before, rtol=1e-5, atol=1e-6)


def test_strip_unwraps_inside_custom_layers():
    from mixed_models import mixed, tokens

    wrapped = tf_globalmp.prune_low_magnitude_global(mixed(), SCHEDULE)
    tf_globalmp.GlobalPruner(wrapped).prune_to(0.9)
    expected = wrapped.predict(tokens(), verbose=0)
    stripped = tf_globalmp.strip_pruning(wrapped)
    assert wrapping.collect_wrappers(stripped) == []
    block = stripped.get_layer("block")
    assert [type(l).__name__ for l in (*block.stack, *block.by_key.values(), block.inner.proj)] \
        == ["Dense"] * 5
    np.testing.assert_allclose(stripped.predict(tokens(), verbose=0), expected, rtol=1e-5, atol=1e-6)


def _sequence_model():
    inputs = keras.Input((10,), dtype="int32")
    x = keras.layers.Embedding(50, 8, name="emb")(inputs)
    x = keras.layers.MultiHeadAttention(2, 4, name="mha")(x, x)
    x = keras.layers.Bidirectional(keras.layers.GRU(4, return_sequences=True), name="bigru")(x)
    x = keras.layers.TimeDistributed(keras.layers.Dense(6), name="td")(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.Flatten()(x)))


@pytest.mark.parametrize("exclude", [None, lambda layer, weight: "recurrent" in weight.name])
def test_prune_scope_round_trip_of_rnn_attention_embedding(tmp_path, exclude):
    wrapped = tf_globalmp.prune_low_magnitude_global(_sequence_model(), SCHEDULE, exclude=exclude)
    tf_globalmp.GlobalPruner(wrapped).prune_to(0.8)
    path = str(tmp_path / "m.keras")
    wrapped.save(path)
    with tf_globalmp.prune_scope(exclude=exclude):
        loaded = keras.models.load_model(path)
    assert tf_globalmp.sparsity_report(loaded).to_dict() == tf_globalmp.sparsity_report(wrapped).to_dict()
    assert tf_globalmp.GlobalPruner(loaded).names == tf_globalmp.GlobalPruner(wrapped).names
    x = np.random.default_rng(0).integers(0, 50, (3, 10))
    np.testing.assert_allclose(loaded.predict(x, verbose=0), wrapped.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry
    assert not prune_registry.PruneRegistry.supports(keras.layers.Bidirectional(keras.layers.GRU(2)))
