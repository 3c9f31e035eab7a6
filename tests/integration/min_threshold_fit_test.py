"""Minimum Threshold (MT) through model.fit: floors held, total exact, budget errors."""

import numpy as np
import pytest

import tf_globalmp

from . import helpers

SPARSITY = 0.95  # keeps 228 of 4,560: plain Global MP starves the big, low-magnitude fc1
SIGMA = 40  # floors 40 + 40 + 40 + 40 = 160 <= 228
BEGIN = 3


def _fit(digits, **options):
    x, y = digits
    schedule = tf_globalmp.GlobalConstantSparsity(SPARSITY, begin_step=BEGIN, frequency=5)
    model = helpers.compile_model(helpers.wrap(helpers.cnn(seed=2), schedule, **options))
    pruning = tf_globalmp.UpdateGlobalPruningStep()
    before, after = helpers.BeforeUpdate(), helpers.AfterBatch(pruning)
    model.fit(
        x, y, batch_size=helpers.BATCH, epochs=2, shuffle=False, verbose=0,
        callbacks=[before, pruning, after],
    )
    total = helpers.total_size(helpers.masks(model))
    return dict(model=model, before=before, after=after, pruning=pruning, total=total,
                n_keep=helpers.n_keep(total, SPARSITY))


@pytest.fixture(scope="module")
def run_global(digits):
    return _fit(digits, min_weights=SIGMA)


@pytest.fixture(scope="module")
def run_proportional(digits):
    return _fit(digits, min_weights=SIGMA, redistribution="proportional")


def _update_masks(run):
    return next(r["masks"] for r in run["after"].records if r["step"] == BEGIN + 1)


def _layer_kept(mask_list):
    return [int(np.count_nonzero(m)) for m in mask_list]


def test_plain_global_mp_would_put_a_layer_below_sigma(run_global):
    # Precondition of the MT tests: without MT, some layer keeps fewer than sigma.
    weights, _ = run_global["before"].snapshots[BEGIN]
    plain = _layer_kept(helpers.reference_masks(weights, SPARSITY))
    assert sum(plain) == run_global["n_keep"]
    assert any(k < min(SIGMA, np.size(w)) for k, w in zip(plain, weights)), plain


def test_global_redistribution_holds_every_layer_at_or_above_its_floor(run_global):
    kept = _layer_kept(_update_masks(run_global))
    assert all(k >= min(SIGMA, n) for k, n in zip(kept, helpers.CNN_SIZES)), kept
    assert sum(kept) == run_global["n_keep"]
    result = run_global["pruning"].pruner.last_result
    assert result.floor_layers >= 1 and result.kept == run_global["n_keep"]


def test_global_redistribution_matches_the_numpy_reference(run_global):
    weights, _ = run_global["before"].snapshots[BEGIN]
    expected = helpers.reference_masks(weights, SPARSITY, min_weights=SIGMA)
    got = [m.astype(bool) for m in _update_masks(run_global)]
    helpers.assert_same_arrays(got, expected, "MT masks vs numpy reference")


def test_global_redistribution_mask_stays_fixed_and_exact_to_the_end(run_global):
    final = helpers.masks(run_global["model"])
    helpers.assert_same_arrays(final, _update_masks(run_global), "final vs update masks")
    assert tf_globalmp.sparsity_report(run_global["model"]).total.nonzero == run_global["n_keep"]


def test_proportional_redistribution_is_exact_and_respects_the_floor(run_proportional):
    kept = _layer_kept(_update_masks(run_proportional))
    assert sum(kept) == run_proportional["n_keep"]
    assert all(k >= min(SIGMA, n) for k, n in zip(kept, helpers.CNN_SIZES)), kept


def test_proportional_redistribution_keeps_each_layers_own_top_k(run_proportional):
    weights, _ = run_proportional["before"].snapshots[BEGIN]
    for w, m in zip(weights, _update_masks(run_proportional)):
        np.testing.assert_array_equal(m.astype(bool), helpers.layer_top_k(w, int(m.sum())))


def test_mt_that_cannot_fit_the_budget_raises_naming_min_weights(digits):
    # Floors 72 + 72 + 80 + 80 = 304 > 228 kept at 95%: fails at the update step.
    # (Given to prune_low_magnitude_global, it fails at wrapping: min_threshold_test.)
    x, y = digits
    schedule = tf_globalmp.GlobalConstantSparsity(SPARSITY, begin_step=BEGIN)
    model = helpers.compile_model(helpers.wrap(helpers.cnn(seed=2), schedule))
    pruning = tf_globalmp.UpdateGlobalPruningStep(min_weights=80)
    before = helpers.BeforeUpdate()
    with pytest.raises(ValueError, match="min_weights"):
        model.fit(x, y, batch_size=helpers.BATCH, epochs=1, shuffle=False, verbose=0,
                  callbacks=[before, pruning])
    # Nothing was modified by the failed update: masks dense, weights as captured.
    weights_then, masks_then = before.snapshots[BEGIN]
    assert max(before.snapshots) == BEGIN
    helpers.assert_same_arrays(helpers.masks(model), masks_then, "masks")
    helpers.assert_same_arrays(helpers.effective_weights(model), weights_then, "weights")
    assert helpers.kept(helpers.masks(model)) == sum(helpers.CNN_SIZES)


def test_gradual_mt_fraction_holds_the_floor_at_every_update(digits):
    # sigma = int(4,560 * 0.008) = 36 per layer while the sparsity rises to 95%.
    x, y = digits
    schedule = tf_globalmp.GlobalPolynomialDecay(0.0, SPARSITY, begin_step=2, end_step=14, frequency=3)
    model = helpers.compile_model(
        helpers.wrap(helpers.cnn(seed=2), schedule, min_weights_fraction=0.008)
    )
    pruning = tf_globalmp.UpdateGlobalPruningStep()
    before, after = helpers.BeforeUpdate(), helpers.AfterBatch(pruning)
    model.fit(x, y, batch_size=helpers.BATCH, epochs=2, shuffle=False, verbose=0,
              callbacks=[before, pruning, after])
    sigma, total = 36, sum(helpers.CNN_SIZES)
    assert pruning.pruner.sigma == sigma
    results = after.results()
    assert [r.step for r in results] == [2, 5, 8, 11, 14]
    assert results[-1].floor_layers >= 1
    for result in results:
        masks = next(r["masks"] for r in after.records if r["step"] == result.step + 1)
        assert helpers.kept(masks) == helpers.n_keep(total, result.target_sparsity)
        assert all(k >= min(sigma, n) for k, n in zip(_layer_kept(masks), helpers.CNN_SIZES))
        expected = helpers.reference_masks(
            before.snapshots[result.step][0], result.target_sparsity, min_weights=sigma
        )
        helpers.assert_same_arrays([m.astype(bool) for m in masks], expected, f"step {result.step}")
