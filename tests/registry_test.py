"""The tf-keras policy: every weight a user would call prunable is pruned, or listed
as skipped with its reason; the pruner and the reports count the same set."""

from unittest import mock

import numpy as np
import pytest

import tf_globalmp
import tf_keras as keras

from mixed_models import EXPECTED, mixed
from tf_globalmp import choose
from tf_globalmp import registry
from tf_globalmp import weights
from tf_globalmp import wrapping

SCHEDULE = tf_globalmp.GlobalConstantSparsity(0.9)


def _wrap(model=None, **choice):
    return tf_globalmp.prune_low_magnitude_global(model or mixed(), SCHEDULE, **choice)


def _pruned_labels(**choice):
    return [r.label for r in wrapping.plan(mixed(), **choice).rows if r.pruned]


@pytest.fixture(scope="module")
def pruned():
    """The mixed model wrapped and pruned to 90%: (wrapped, pruner, result)."""
    wrapped = _wrap()
    pruner = tf_globalmp.GlobalPruner(wrapped)
    return wrapped, pruner, pruner.prune_to(0.9)


def test_every_prunable_weight_of_the_mixed_model_is_wrapped(pruned):
    wrapped, pruner, _ = pruned
    assert pruner.names == EXPECTED
    kinds = {type(w.layer).__name__ for w in wrapping.collect_wrappers(wrapped)}
    assert kinds == {"Embedding", "MultiHeadAttention", "Bidirectional", "TimeDistributed", "Dense"}


def test_nothing_is_skipped_but_biases_and_norms():
    rows = wrapping.plan(mixed()).rows
    skipped = {r.label: r.reason for r in rows if not r.pruned}
    assert all(r.category == choose.NEVER for r in rows if not r.pruned), skipped
    assert skipped["inner_norm/gamma"] == "normalization (never pruned)"
    assert skipped["bilstm/forward_lstm/lstm_cell/bias"] == "bias (never pruned)"
    assert sum(r.size for r in rows) == mixed().count_params()


def test_mixed_model_prunes_to_exactly_90_percent(pruned):
    wrapped, pruner, result = pruned
    n_keep = pruner.total - round(0.9 * pruner.total)
    assert result.kept == n_keep
    prunables = weights.prunable_weights_of_model(wrapped)
    assert sum(np.count_nonzero(pw.effective()) for pw in prunables) == n_keep
    assert sum(pw.size for pw in prunables) == pruner.total == \
        sum(r.size for r in wrapping.plan(mixed()).rows if r.pruned)


def test_reports_count_the_pruners_set(pruned):
    wrapped, pruner, _ = pruned
    assert [r.name for r in tf_globalmp.sparsity_report(wrapped).rows] == pruner.names
    flops = tf_globalmp.flops_report(wrapped)
    assert [r.name for r in flops.rows if r.kind != "avgpool"] == pruner.names
    # A plain model's report lists the same labels (the policy's set).
    assert [r.name for r in tf_globalmp.sparsity_report(mixed()).rows] == EXPECTED


def test_flops_of_rnn_attention_and_time_distributed_weights():
    rows = {r.name: r for r in tf_globalmp.flops_report(mixed()).rows}
    assert rows["emb/embeddings"].macs == 0  # a lookup
    assert rows["mha/query/kernel"].macs == 16 * 16 * 10  # per position
    assert rows["bilstm/forward_lstm/lstm_cell/recurrent_kernel"].macs == 8 * 32 * 10  # per step
    assert rows["td/td_dense/kernel"].macs == 16 * 16 * 10
    assert rows["list_0/kernel"].macs == 16 * 16 * 10


@pytest.mark.parametrize("choice, dropped", [
    (dict(exclude=["emb", "head"]), {"emb/embeddings", "head/kernel"}),
    (dict(exclude=keras.layers.MultiHeadAttention), {l for l in EXPECTED if l.startswith("mha/")}),
    (dict(exclude="block"), {"list_0/kernel", "list_1/kernel", "dict_a/kernel", "dict_b/kernel",
                             "inner_dense/kernel"}),
    (dict(exclude=lambda layer, weight: "recurrent_kernel" in weight.name),
     {l for l in EXPECTED if l.endswith("recurrent_kernel")}),
    (dict(prunable=keras.layers.Dense),
     {l for l in EXPECTED if not (l.endswith("dense/kernel") or l.split("/")[0] in
                                  ("list_0", "list_1", "dict_a", "dict_b", "head"))}),
])
def test_prunable_and_exclude_by_name_class_and_predicate(choice, dropped):
    assert _pruned_labels(**choice) == [l for l in EXPECTED if l not in dropped]


def test_wrapping_honours_the_choice():
    wrapped = _wrap(exclude=["emb", lambda layer, weight: "recurrent_kernel" in weight.name])
    names = tf_globalmp.GlobalPruner(wrapped).names
    assert names == [l for l in EXPECTED if l != "emb/embeddings" and "recurrent" not in l]
    assert [r.name for r in tf_globalmp.sparsity_report(wrapped).rows] == names


def test_unknown_names_raise_naming_them():
    with pytest.raises(ValueError, match=r"exclude names \['conv1'\] match no layer"):
        _wrap(exclude=["head", "conv1"])
    with pytest.raises(ValueError, match=r"prunable=builtins.int is not a tf_keras layer class"):
        _wrap(prunable=int)


def test_choice_leaving_nothing_is_an_error_with_the_table():
    with pytest.raises(ValueError, match="no prunable layer left by.*\n.*prunable: 0 weights"):
        _wrap(prunable=keras.layers.Conv2D)


def test_wrapping_logs_one_table_and_warns_for_a_large_skipped_weight():
    with mock.patch.object(choose.logging, "info") as info, \
            mock.patch.object(choose.logging, "warning") as warning:
        _wrap(mixed(with_own_kernel=True))
    assert info.call_count == 1
    table = info.call_args[0][-1]
    assert "own/scale" in table and "unsupported layer type OwnKernel" in table
    assert warning.call_count == 1 and warning.call_args[0][1] == "own/scale"


def test_no_warning_for_user_exclusions_and_norms():
    with mock.patch.object(choose.logging, "warning") as warning:
        _wrap(exclude=["emb"])
    assert warning.call_count == 0


def test_user_prunable_layer_keeps_its_own_choice():
    class Scaled(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(name="w", shape=(input_shape[-1], 4))
            self.v = self.add_weight(name="v", shape=(input_shape[-1], 4))

        def call(self, x):
            return x @ self.w + x @ self.v

        def get_prunable_weights(self):
            return [self.w]

    inputs = keras.Input((6,))
    model = keras.Model(inputs, Scaled(name="scaled")(inputs))
    rows = {r.label: r for r in wrapping.plan(model).rows}
    assert rows["scaled/w"].pruned and rows["scaled/v"].category == choose.USER
    assert rows["scaled/v"].reason == "not returned by Scaled.get_prunable_weights()"
    assert registry.user_prunable(model.layers[1])
