"""Global schedules: tfmot step semantics, validation, and latest_update."""

import numpy as np
import pytest

import tf_globalmp
import tensorflow as tf
import tensorflow_model_optimization as tfmot

from tf_globalmp import _compat  # noqa: F401  (registers our schedules as tfmot PruningSchedules)
from tf_globalmp import schedules


def _tfmot_should_prune(schedule, step):
    return bool(schedule(tf.constant(step, tf.int64))[0])


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (
            tf_globalmp.GlobalPolynomialDecay(0.1, 0.9, 10, 110, power=3, frequency=7),
            tfmot.sparsity.keras.PolynomialDecay(0.1, 0.9, 10, 110, power=3, frequency=7),
        ),
        (
            tf_globalmp.GlobalConstantSparsity(0.8, begin_step=5, end_step=50, frequency=10),
            tfmot.sparsity.keras.ConstantSparsity(0.8, 5, end_step=50, frequency=10),
        ),
    ],
)
def test_same_values_as_tfmot(ours, theirs):
    for step in range(0, 130):
        a = ours(tf.constant(step, tf.int64))
        b = theirs(tf.constant(step, tf.int64))
        assert bool(a[0]) == bool(b[0])
        assert float(a[1]) == pytest.approx(float(b[1]))


def test_cubic_shape():
    s = tf_globalmp.GlobalPolynomialDecay(0.0, 0.9, 0, 100, frequency=1)
    for step in (0, 25, 50, 100, 150):
        p = min(step, 100) / 100
        assert schedules.sparsity_at(s, step)[1] == pytest.approx(0.9 * (1 - (1 - p) ** 3), abs=1e-6)


def test_get_config_round_trip():
    for s in (
        tf_globalmp.GlobalPolynomialDecay(0.2, 0.95, 3, 300, power=2, frequency=9),
        tf_globalmp.GlobalConstantSparsity(0.9, begin_step=4),
    ):
        config = s.get_config()
        assert config["class_name"] == type(s).__name__
        clone = type(s).from_config(config["config"])
        assert clone.get_config() == config
        assert isinstance(clone, tfmot.sparsity.keras.PruningSchedule)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: tf_globalmp.GlobalConstantSparsity(1.2), "target_sparsity.*1.2"),
        (lambda: tf_globalmp.GlobalConstantSparsity(-0.1), "target_sparsity.*-0.1"),
        (lambda: tf_globalmp.GlobalConstantSparsity(0.5, begin_step=-3), "begin_step.*-3"),
        (lambda: tf_globalmp.GlobalConstantSparsity(0.5, frequency=0), "frequency.*0"),
        (lambda: tf_globalmp.GlobalConstantSparsity(0.5, begin_step=9, end_step=4), "end_step"),
        (lambda: tf_globalmp.GlobalPolynomialDecay(0.0, 1.0, 0, 10), "final_sparsity.*1.0"),
        (lambda: tf_globalmp.GlobalPolynomialDecay(0.0, 0.9, 10, 5), "end_step.*5"),
        (lambda: tf_globalmp.GlobalPolynomialDecay(0.0, 0.9, 0, -1), "end_step.*-1"),
        (lambda: tf_globalmp.GlobalPolynomialDecay(0.0, 0.9, 5, 5), "end_step"),
        (lambda: tf_globalmp.GlobalPolynomialDecay(0.0, 0.9, 0, 10, frequency=-2), "frequency.*-2"),
        (lambda: tf_globalmp.GlobalPolynomialDecay(0.0, 0.9, 0, 10, power=0), "power"),
        (lambda: tf_globalmp.GlobalPolynomialDecay(0.0, 0.9, 0.5, 10), "begin_step"),
    ],
)
def test_bad_arguments_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def _brute_latest(schedule, after, step):
    for s in range(step, after, -1):
        if _tfmot_should_prune(schedule, s):
            return s
    return None


@pytest.mark.parametrize(
    "schedule",
    [
        tf_globalmp.GlobalPolynomialDecay(0.0, 0.9, 7, 60, frequency=5),
        tf_globalmp.GlobalConstantSparsity(0.9, begin_step=3, frequency=4),
        tf_globalmp.GlobalConstantSparsity(0.9, begin_step=3, end_step=20, frequency=4),
        tfmot.sparsity.keras.PolynomialDecay(0.0, 0.5, 0, 30, frequency=3),
    ],
)
def test_latest_update_matches_brute_force(schedule):
    for after in range(-1, 70, 3):
        for width in (1, 2, 3, 7, 30):
            got = schedules.latest_update(schedule, after, after + width)
            want = _brute_latest(schedule, after, after + width)
            assert (got[0] if got else None) == want
            if got:
                assert got[1] == schedules.sparsity_at(schedule, want)[1]


class _EveryOddStep(tfmot.sparsity.keras.PruningSchedule):
    """A schedule with no begin/end/frequency grid: probed step by step."""

    def __call__(self, step):
        return tf.equal(tf.math.floormod(step, 2), 1), tf.constant(0.5)

    def get_config(self):
        return {"class_name": "_EveryOddStep", "config": {}}


def test_latest_update_probes_foreign_schedules():
    assert schedules.latest_update(_EveryOddStep(), 2, 6) == (5, 0.5)
    assert schedules.latest_update(_EveryOddStep(), 3, 4) is None


def test_last_pruning_step():
    assert schedules.last_pruning_step(tf_globalmp.GlobalPolynomialDecay(0, 0.9, 2, 23, frequency=5)) == 22
    assert schedules.last_pruning_step(tf_globalmp.GlobalConstantSparsity(0.9)) is None


@pytest.mark.parametrize(
    "schedule",
    [
        tf_globalmp.GlobalPolynomialDecay(0.0, 0.9, 7, 60, frequency=5),
        tf_globalmp.GlobalPolynomialDecay(0.5, 0.8, 0, 23, frequency=5),  # 23 off the grid
        tf_globalmp.GlobalPolynomialDecay(0.9, 0.2, 0, 20, frequency=5),  # decreasing
        tf_globalmp.GlobalConstantSparsity(0.7, begin_step=3, frequency=4),
        tfmot.sparsity.keras.PolynomialDecay(0.0, 0.5, 0, 30, frequency=3),
    ],
)
def test_max_sparsity_is_the_highest_sparsity_pruned_to(schedule):
    pruned = [schedules.sparsity_at(schedule, step) for step in range(0, 200)]
    assert schedules.max_sparsity(schedule) == max(s for due, s in pruned if due)


def test_max_sparsity_of_a_foreign_schedule_is_unknown():
    assert schedules.max_sparsity(_EveryOddStep()) is None


def test_validate_schedule_rejects_non_schedules():
    with pytest.raises(ValueError, match="pruning_schedule"):
        schedules.validate_schedule(0.9)


def test_schedules_are_tfmot_pruning_schedules():
    for s in (tf_globalmp.GlobalConstantSparsity(0.5), tf_globalmp.GlobalPolynomialDecay(0, 0.5, 0, 9)):
        assert isinstance(s, tfmot.sparsity.keras.PruningSchedule)
    assert issubclass(tf_globalmp.GlobalPolynomialDecay, tfmot.sparsity.keras.PruningSchedule)


def test_schedules_module_does_not_import_tfmot():
    import subprocess, sys

    code = (
        "import sys, tf_globalmp.schedules as s\n"
        "s.GlobalPolynomialDecay(0.0, 0.9, 0, 10)(5)\n"
        "print(sorted(m for m in ('tensorflow_model_optimization',) if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip().endswith("[]"), out.stderr[-2000:]
