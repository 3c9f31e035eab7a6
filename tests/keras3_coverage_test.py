"""tf_globalmp.keras3 coverage: the mixed model of issue 16 (Embedding, MultiHeadAttention,
Bidirectional(LSTM), TimeDistributed(Dense), Dense layers in a custom layer's list and
dict, a nested custom layer) is pruned entirely, choices work, nothing is silent.

Runs in a fresh Keras 3 process (see keras3_test.py)."""

import pytest

import models_for_tests
from keras3_test import _n_keep, _run

_MIXED = """
from unittest import mock
from tf_globalmp import choose
import models_for_tests


def mixed(with_own_kernel=False):
    return models_for_tests.mixed(keras, with_own_kernel=with_own_kernel)


def names(**choice):
    return [n for n, _ in k3.prunable_kernels(mixed(), log=False, **choice)]


out = {}
model = mixed()
_, rows = k3.coverage(model)
out["skipped"] = {r.label: [r.category, r.reason] for r in rows if not r.pruned}
out["rows_total"] = sum(r.size for r in rows)
out["params"] = int(model.count_params())
pruner = k3.GlobalPruner(model, schedules.GlobalConstantSparsity(0.9))
result = pruner.prune_to(0.9)
out["names"] = pruner.names
out["kept"], out["total"] = result.kept, result.total
out["nonzero"] = int(sum(np.count_nonzero(keras.ops.convert_to_numpy(k)) for k in pruner.kernels))

out["exclude_name"] = names(exclude=["emb", "head"])
out["exclude_class"] = names(exclude=keras.layers.MultiHeadAttention)
out["exclude_block"] = names(exclude="block")
out["exclude_predicate"] = names(exclude=lambda layer, w: "recurrent" in w.path)
out["prunable_dense"] = names(prunable=keras.layers.Dense)
out["pruner_exclude"] = k3.GlobalPruner(
    mixed(), schedules.GlobalConstantSparsity(0.9), exclude=["emb"]).names
try:
    names(exclude=["head", "conv1"])
except ValueError as e:
    out["unknown"] = str(e)

with mock.patch.object(choose.logging, "info") as info, \\
        mock.patch.object(choose.logging, "warning") as warning:
    k3.prunable_kernels(mixed(with_own_kernel=True))
out["infos"] = info.call_count
out["table_has_own"] = "own/scale" in info.call_args[0][-1]
out["warnings"] = [c[0][1] for c in warning.call_args_list]
emit(out)
"""

EXPECTED = models_for_tests.mixed_labels(keras3=True)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("mixed"), "mixed", _MIXED)


def test_every_prunable_weight_is_found(mixed):
    assert mixed["names"] == EXPECTED


def test_nothing_is_skipped_but_biases_and_norms(mixed):
    assert {category for category, _ in mixed["skipped"].values()} == {"never"}
    assert mixed["skipped"]["block/inner/inner_norm/gamma"][1] == "normalization (never pruned)"
    assert mixed["rows_total"] == mixed["params"]


def test_prunes_to_exactly_90_percent(mixed):
    assert mixed["kept"] == mixed["nonzero"] == _n_keep(mixed["total"], 0.9)


@pytest.mark.parametrize("key, dropped", [
    ("exclude_name", {"emb/embeddings", "head/kernel"}),
    ("exclude_class", {n for n in EXPECTED if n.startswith("mha/")}),
    ("exclude_block", {n for n in EXPECTED if n.startswith("block/")}),
    ("exclude_predicate", {n for n in EXPECTED if n.endswith("recurrent_kernel")}),
    ("prunable_dense", {n for n in EXPECTED if n.startswith(("emb/", "mha/", "bilstm/"))}),
    ("pruner_exclude", {"emb/embeddings"}),
])
def test_prunable_and_exclude(mixed, key, dropped):
    assert mixed[key] == [n for n in EXPECTED if n not in dropped]


def test_unknown_name_raises_naming_it(mixed):
    assert "exclude names ['conv1'] match no layer" in mixed["unknown"]


def test_one_table_and_a_warning_for_a_large_skipped_weight(mixed):
    assert mixed["infos"] == 1 and mixed["table_has_own"]
    assert mixed["warnings"] == ["own/scale"]
