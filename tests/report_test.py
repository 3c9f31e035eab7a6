"""sparsity_report: rows, global row, table and JSON."""

import json

import numpy as np
import pytest

import tf_globalmp
import tf_keras as keras


def _model():
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="d1"), keras.layers.Dense(3, name="d2")])
    model.layers[0].kernel.assign(np.arange(24, dtype="float32").reshape(6, 4))  # one zero
    return model


def test_plain_model_counts_nonzeros():
    report = tf_globalmp.sparsity_report(_model())
    assert [r.weights for r in report.rows] == [24, 12]
    assert report.rows[0].nonzero == 23
    assert report.total.weights == 36
    assert report.rows[0].sparsity == pytest.approx(1 / 24)


def test_wrapped_model_counts_effective_weights_and_serialises():
    wrapped = tf_globalmp.prune_low_magnitude_global(_model(), tf_globalmp.GlobalConstantSparsity(0.5))
    tf_globalmp.GlobalPruner(wrapped).prune_to(0.5)
    report = tf_globalmp.sparsity_report(wrapped)
    assert report.total.nonzero == 18
    data = json.loads(report.to_json())
    assert data["global"]["sparsity"] == pytest.approx(0.5)
    assert [row["name"] for row in data["layers"]] == ["d1/kernel", "d2/kernel"]
    table = report.to_table()
    assert "global" in table and "50.00%" in table and "d2/kernel" in table


def test_plot_layer_sparsity_writes_an_image_with_a_comparison(tmp_path):
    wrapped = tf_globalmp.prune_low_magnitude_global(_model(), tf_globalmp.GlobalConstantSparsity(0.5))
    tf_globalmp.GlobalPruner(wrapped).prune_to(0.5)
    path = tf_globalmp.plot_layer_sparsity(
        wrapped, str(tmp_path / "layers.png"), compare=tf_globalmp.sparsity_report(_model()),
        labels=("global 50%", "dense"),
    )
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_layer_sparsity_rejects_reports_of_different_models(tmp_path):
    other = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4)])
    with pytest.raises(ValueError, match="compare has 1 prunable weights.*has 2"):
        tf_globalmp.plot_layer_sparsity(_model(), str(tmp_path / "x.png"), compare=other)
    with pytest.raises(TypeError, match="model_or_report must be"):
        tf_globalmp.plot_layer_sparsity("model.keras", str(tmp_path / "x.png"))


def test_report_with_flops_matches_flops_report_and_hand_counts():
    # Dense 6->4 and 4->3 at batch 1: 24 and 12 multiply-adds.
    wrapped = tf_globalmp.prune_low_magnitude_global(_model(), tf_globalmp.GlobalConstantSparsity(0.5))
    tf_globalmp.GlobalPruner(wrapped).prune_to(0.5)
    report = tf_globalmp.sparsity_report(wrapped, flops=True)
    assert [r.macs for r in report.rows] == [24, 12] and report.total.macs == 36
    remaining = sum(r.nonzero for r in report.rows)  # dense: one MAC per weight
    assert report.flops_pruned == pytest.approx(1 - remaining / 36)
    assert report.flops_pruned == pytest.approx(
        tf_globalmp.flops.flops_report(wrapped).pruned_fraction)
    assert "FLOPs pruned" in report.to_table()
    assert json.loads(report.to_json())["layers"][0]["macs"] == 24


def test_plot_of_a_nested_model_is_a_valid_png(tmp_path):
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="inner_dense")],
                             name="inner")
    inputs = keras.Input((6,))
    outer = keras.Model(inputs, keras.layers.Dense(2, name="head")(inner(inputs)))
    wrapped = tf_globalmp.prune_low_magnitude_global(outer, tf_globalmp.GlobalConstantSparsity(0.6))
    tf_globalmp.GlobalPruner(wrapped).prune_to(0.6)
    assert len(tf_globalmp.sparsity_report(wrapped).rows) == 2
    path = tf_globalmp.plot_layer_sparsity(wrapped, str(tmp_path / "nested.png"), log_scale=False)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
