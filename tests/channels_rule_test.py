"""prune_low_magnitude_global(granularity="channel"): the driver, wrappers, callback,
GlobalPruner and checkpoints with whole channel groups."""

import numpy as np
import pytest

import channels_reference as ref
import tf_globalmp
from tf_globalmp import _compat
from tf_globalmp import wrapping
from tf_globalmp.channels import graph
from tf_globalmp.channels import rule as rule_lib

keras = _compat.keras
tf = _compat.tf
L = keras.layers


def _net(seed=0):
    """Residual + depthwise + concat + flatten head, biases and BatchNorm everywhere."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((6, 6, 3))
    x = L.ReLU()(L.BatchNormalization(name="bn1")(L.Conv2D(6, 3, padding="same", name="c1")(inp)))
    y = L.BatchNormalization(name="bn2")(L.Conv2D(6, 3, padding="same", name="c2")(x))
    x = L.ReLU()(L.Add()([x, y]))
    d = L.BatchNormalization(name="bn3")(L.DepthwiseConv2D(3, padding="same", name="dw")(x))
    x = L.Concatenate()([x, L.ReLU()(d)])
    x = L.MaxPooling2D()(L.Conv2D(5, 1, name="c3")(x))
    out = L.Dense(3, name="head")(L.Flatten()(x))
    model = keras.Model(inp, out)
    for layer in model.layers:  # non-trivial statistics
        if isinstance(layer, L.BatchNormalization):
            layer.set_weights([np.random.default_rng(seed).uniform(0.5, 1.5, w.shape)
                               for w in layer.get_weights()])
    return model


def _wrapped(sparsity=0.5, model=None, **kwargs):
    model = model or _net()
    schedule = tf_globalmp.GlobalConstantSparsity(sparsity, begin_step=0, frequency=1000)
    return tf_globalmp.prune_low_magnitude_global(model, schedule, granularity="channel",
                                                  **kwargs)


def _pruned_groups(model, g):
    """Bool (n_groups,): groups whose producers' output kernel slices are masked."""
    masks = {id(w): m.numpy() for wr in wrapping.collect_wrappers(model)
             for w, m, _ in wr.pruning_vars}
    pruned = np.zeros(g.n_groups, bool)
    for spec in g.kernels:
        if spec.out_axis is None or id(g.variables[spec.name]) not in masks:
            continue
        mask = masks[id(g.variables[spec.name])]
        other = tuple(a for a in range(mask.ndim) if a != spec.out_axis)
        dead = mask.max(axis=other) == 0
        pruned[spec.out_groups[(spec.out_groups >= 0) & dead]] = True
    return pruned


def _group_parameters_zero(g, pruned):
    """True if every kernel entry, bias and BatchNorm value of the pruned groups is 0."""
    for spec in g.specs():
        if getattr(spec, "role", None) == "slice":
            continue
        value = g.variables[spec.name].numpy()
        axes = spec.axes() if hasattr(spec, "axes") else [(spec.axis, spec.groups)]
        for axis, groups in axes:
            index = np.flatnonzero((groups >= 0) & pruned[np.maximum(groups, 0)])
            if np.any(np.take(value, index, axis=axis) != 0):
                return False
    return True


def assert_masks_are_the_reference(wrapped, g, keep):
    """Every kernel mask of `wrapped` is the numpy reference's for `keep`, and every
    parameter of the removed groups is zero."""
    masks = {id(w): m.numpy() > 0 for wr in wrapping.collect_wrappers(wrapped)
             for w, m, _ in wr.pruning_vars}
    for spec in g.kernels:
        np.testing.assert_array_equal(masks[id(g.variables[spec.name])],
                                      ref.kernel_mask(spec, keep))
    assert _group_parameters_zero(g, ~keep)


@pytest.mark.parametrize("score", [None, "mean", "l2"])  # None: the default ("relative")
@pytest.mark.parametrize("sparsity", [0.3, 0.8])
def test_prune_to_removes_exact_group_count_with_reference_masks(sparsity, score):
    model = _net()
    g = graph.analyze(model)
    arrays = [g.variables[s.name].numpy() for s in g.kernels]
    expected_keep = ref.select(
        ref.group_scores(g.kernels, arrays, g.n_groups, score or "relative"),
        int(round(sparsity * g.n_groups)), g.producer_groups(), 1)
    wrapped = _wrapped(sparsity, model, **({"channel_score": score} if score else {}))
    result = tf_globalmp.GlobalPruner(wrapped).prune_to(sparsity, step=0)
    assert round(sparsity * g.n_groups) == g.n_groups - expected_keep.sum()
    assert result.achieved_sparsity == pytest.approx(1 - expected_keep.sum() / g.n_groups)
    assert result.target_sparsity == sparsity
    assert_masks_are_the_reference(wrapped, g, expected_keep)


def test_biases_and_batchnorm_are_wrapped_and_zeroed():
    wrapped = _wrapped(0.5)
    names = {w.name.split(":")[0] for wr in wrapping.collect_wrappers(wrapped)
             for w, _, _ in wr.pruning_vars}
    assert {"bn1/gamma", "bn1/beta", "bn1/moving_mean", "bn1/moving_variance", "c1/bias",
            "dw/bias", "bn3/gamma", "head/kernel"} <= names
    assert "head/bias" not in names  # the network's output channels are never pruned


class _CheckZero(keras.callbacks.Callback):
    def __init__(self, g):
        super().__init__()
        self.g = g
        self.checked = 0
        self.pruned = []

    def on_train_batch_end(self, batch, logs=None):
        pruned = _pruned_groups(self.model, self.g)
        assert _group_parameters_zero(self.g, pruned), f"batch {batch}"
        self.pruned.append(pruned)
        self.checked += 1


def test_pruned_groups_stay_exactly_zero_after_every_batch_of_gradual_fit():
    model = _net()
    g = graph.analyze(model)
    schedule = tf_globalmp.GlobalPolynomialDecay(0.0, 0.6, begin_step=0, end_step=6,
                                                 frequency=2)
    wrapped = tf_globalmp.prune_low_magnitude_global(model, schedule, granularity="channel")
    wrapped.compile(keras.optimizers.SGD(0.01, momentum=0.9), "mse")
    rng = np.random.default_rng(0)
    x, y = rng.random((40, 6, 6, 3), np.float32), rng.random((40, 3), np.float32)
    check = _CheckZero(g)
    pruning = tf_globalmp.UpdateGlobalPruningStep()
    wrapped.fit(x, y, batch_size=4, epochs=1, callbacks=[pruning, check], verbose=0)
    assert check.checked == 10
    counts = [int(p.sum()) for p in check.pruned]
    assert counts[-1] == round(0.6 * g.n_groups)
    for before, after in zip(check.pruned, check.pruned[1:]):  # never regrown
        assert np.all(after[before])


def test_checkpoint_resume_keeps_the_mask(tmp_path):
    first = _wrapped(0.5)
    tf_globalmp.GlobalPruner(first).prune_to(0.5, step=0)
    path = tf.train.Checkpoint(model=first).save(str(tmp_path / "ckpt"))
    second = _wrapped(0.5, _net(seed=1))  # other weights: another mask if recomputed
    tf.train.Checkpoint(model=second).restore(path).assert_existing_objects_matched()
    result = tf_globalmp.GlobalPruner(second).prune_to(0.5, step=10)
    assert result.unchanged
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_min_channels_infeasible_at_wrap_names_largest_sparsity():
    with pytest.raises(ValueError, match=r"min_channels=6 keeps .* largest feasible sparsity"):
        _wrapped(0.9, min_channels=6)


def test_min_channels_holds_per_layer():
    wrapped = _wrapped(0.4, min_channels=3)
    pruner = tf_globalmp.GlobalPruner(wrapped)
    pruner.prune_to(0.4, step=0)
    rule = rule_lib.channel_rule(wrapped)
    assert all(kept >= min(3, n) for _, n, kept in rule.layer_table())


@pytest.mark.parametrize("option,value,hint", [
    ("min_weights", 10, "use min_channels"), ("min_weights_fraction", 0.1, "use min_channels"),
    ("prunable", "c1", "use exclude"), ("redistribution", "proportional", ""),
    ("distribution", "erk", "")])
def test_unstructured_options_are_refused(option, value, hint):
    expected = (r"distribution must be one of \('global', 'uniform'\) with granularity="
                "'channel', got 'erk'" if option == "distribution" else
                f"{option} does not apply with granularity='channel'.*{hint}")
    with pytest.raises(ValueError, match=expected):
        _wrapped(0.5, **{option: value})


def test_bad_granularity_is_refused():
    with pytest.raises(ValueError, match="granularity must be 'weight' or 'channel', got 'row'"):
        tf_globalmp.prune_low_magnitude_global(
            _net(), tf_globalmp.GlobalConstantSparsity(0.5, 0), granularity="row")


def test_uniform_distribution_prunes_each_layer_alike():
    wrapped = _wrapped(0.5, distribution="uniform", channel_score="l1")
    tf_globalmp.GlobalPruner(wrapped).prune_to(0.5, step=0)
    rule = rule_lib.channel_rule(wrapped)
    for name, n, kept in rule.layer_table():
        if name in ("c1", "c3"):  # the layers owning their groups
            assert kept == n - round(0.5 * n), name


def test_saving_the_wrapped_model_names_the_routes(tmp_path):
    with pytest.raises(ValueError, match="save_weights.*strip_pruning.*shrink"):
        _wrapped(0.5).save(str(tmp_path / "wrapped.keras"))


@pytest.mark.parametrize("distribution", ["global", "uniform"])
def test_sparsity_for_flops_reaches_the_budget_when_pruned(distribution):
    model = _net()
    sparsity = rule_lib.sparsity_for_flops(model, 0.4, distribution=distribution)
    wrapped = _wrapped(sparsity, model, distribution=distribution)
    tf_globalmp.GlobalPruner(wrapped).prune_to(sparsity, step=0)
    assert rule_lib.channel_rule(wrapped).mask_costs().removed_fraction("flops") >= 0.4
