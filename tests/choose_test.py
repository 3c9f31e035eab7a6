"""choose: prunable=/exclude= matching and the coverage table (pure, no Keras)."""

import pytest

from tf_globalmp import choose


class Layer:
    def __init__(self, name):
        self.name = name


class Dense(Layer):
    pass


class Block(Layer):
    pass


class Weight:
    def __init__(self, name):
        self.name = name


def _candidate(label, chain, shape=(4, 4), skip=None, weight="kernel"):
    return choose.Candidate(label, tuple(chain), Weight(weight), shape, skip)


BLOCK = Block("block")
INNER = Dense("dense_1")
HEAD = Dense("head")
CANDIDATES = [
    _candidate("dense_1/kernel", [BLOCK, INNER]),
    _candidate("dense_1/bias", [BLOCK, INNER], (4,), (choose.NEVER, "bias (never pruned)"), "bias"),
    _candidate("head/kernel", [HEAD], (4, 2)),
]


def _pruned(prunable=None, exclude=None):
    rows = choose.coverage_rows(CANDIDATES, choose.normalize(prunable, "prunable", Layer),
                                choose.normalize(exclude, "exclude", Layer))
    return [r.label for r in rows if r.pruned]


def test_default_prunes_what_the_policy_allows():
    assert _pruned() == ["dense_1/kernel", "head/kernel"]


@pytest.mark.parametrize("spec", ["block", ["dense_1"], Block, "dense_1/kernel",
                                  lambda layer, weight: layer.name == "dense_1"])
def test_exclude_by_ancestor_name_owner_name_class_label_or_predicate(spec):
    assert _pruned(exclude=spec) == ["head/kernel"]


def test_prunable_selects_and_exclude_wins():
    assert _pruned(prunable=Dense) == ["dense_1/kernel", "head/kernel"]
    assert _pruned(prunable="head") == ["head/kernel"]
    assert _pruned(prunable=[Dense], exclude=["head"]) == ["dense_1/kernel"]


def test_a_choice_never_prunes_what_the_policy_skips():
    assert _pruned(prunable=lambda layer, weight: True) == ["dense_1/kernel", "head/kernel"]


def test_reasons_name_the_argument():
    rows = choose.coverage_rows(CANDIDATES, choose.normalize(["head"], "prunable", Layer),
                                choose.normalize(Block, "exclude", Layer))
    assert [(r.category, r.reason) for r in rows] == [
        (choose.USER, "excluded by exclude="),
        (choose.NEVER, "bias (never pruned)"),
        (choose.PRUNED, ""),
    ]
    rows = choose.coverage_rows(CANDIDATES, ("head",), None)
    assert rows[0].reason == "not selected by prunable="


def test_unknown_names_are_an_error_naming_them():
    with pytest.raises(ValueError, match=r"exclude names \['conv', 'fc'\] match no layer"):
        choose.check_names("exclude", ("conv", Dense, "head", "fc"), {"head", "block"}, "m")
    choose.check_names("prunable", ("head", Dense), {"head"}, "m")  # no error


@pytest.mark.parametrize("item, error", [(3, TypeError), (int, ValueError)])
def test_bad_items_are_rejected(item, error):
    with pytest.raises(error, match="prunable"):
        choose.normalize([item], "prunable", Layer)


def test_large_skips_are_unasked_skips_of_at_least_one_percent():
    rows = [
        choose.Row("a/kernel", "Dense", (50, 10), 500, choose.PRUNED, ""),
        choose.Row("custom/w", "Custom", (10,), 10, choose.UNSUPPORTED, "unsupported"),
        choose.Row("custom/v", "Custom", (5,), 5, choose.UNSUPPORTED, "unsupported"),
        choose.Row("head/kernel", "Dense", (10, 10), 100, choose.USER, "excluded by exclude="),
        choose.Row("bn/gamma", "BatchNormalization", (100,), 100, choose.NEVER, "normalization"),
    ]
    assert [r.label for r in choose.large_skips(rows)] == ["custom/w"]  # 10 / 715 >= 1% > 5 / 715


def test_table_lists_every_weight_with_its_reason():
    rows = choose.coverage_rows(CANDIDATES, None, ("head",))
    table = choose.format_table(rows)
    assert "prunable: 1 weights, 16 of 28 parameters (57.1%); not pruned: 2 weights" in table
    lines = table.splitlines()[3:]
    assert [line.split()[0] for line in lines] == ["dense_1/kernel", "dense_1/bias", "head/kernel"]
    assert lines[0].endswith("pruned") and lines[2].endswith("excluded by exclude=")
