"""Global sparsity schedules: tfmot-compatible schedules read as network-wide sparsity.

They keep tfmot's step semantics exactly (``__call__(step) -> (should_prune,
sparsity)``, prune at ``begin_step + i * frequency`` while ``step <= end_step`` or
``end_step == -1``) and its ``get_config`` format, and validate their arguments with
messages that echo the bad value. Any other tfmot schedule is accepted too and is
read as a global sparsity.

`latest_update` answers the question a controller needs when it sees the step
only every few steps (``steps_per_execution > 1``, a custom loop that calls it
sparsely, a resumed run): which update was due most recently, and at what sparsity.
"""

import numbers

import numpy as np
import tensorflow as tf

# How far back `latest_update` scans a schedule it cannot reason about in closed form.
_SCAN_LIMIT = 1000


def _check_int(name, value, minimum=None, allow_minus_1=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if allow_minus_1 and value == -1:
        return int(value)
    if minimum is not None and value < minimum:
        hint = " or -1" if allow_minus_1 else ""
        raise ValueError(f"{name} must be >= {minimum}{hint}, got {value}")
    return int(value)


def _check_sparsity(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return float(value)


def _check_steps(begin_step, end_step, frequency, allow_minus_1):
    begin_step = _check_int("begin_step", begin_step, minimum=0)
    end_step = _check_int("end_step", end_step, minimum=0, allow_minus_1=allow_minus_1)
    if end_step != -1 and end_step < begin_step:
        raise ValueError(
            f"end_step must be >= begin_step (or -1), got end_step={end_step} < "
            f"begin_step={begin_step}"
        )
    frequency = _check_int("frequency", frequency, minimum=1)
    return begin_step, end_step, frequency


class _GridSchedule:
    """tfmot's step grid: prune at begin_step + i * frequency, up to end_step (-1: forever).

    Written with TensorFlow ops only (no tfmot import), so Keras 3 code can use the
    same objects; `tf_globalmp._compat` registers the classes as tfmot
    `PruningSchedule`s (``issubclass`` holds) for the tf-keras wrappers.
    """

    def _should_prune_in_step(self, step):
        step = tf.cast(step, tf.int64)
        in_range = tf.logical_and(
            step >= self.begin_step,
            tf.logical_or(step <= self.end_step, tf.constant(self.end_step < 0)),
        )
        on_grid = tf.equal(tf.math.floormod(step - self.begin_step, self.frequency), 0)
        return tf.logical_and(in_range, on_grid)

    _FIELDS = ()  # the attributes get_config returns as "config", in this order

    def get_config(self):
        return {
            "class_name": type(self).__name__,
            "config": {name: getattr(self, name) for name in self._FIELDS},
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config()["config"].items())
        return f"{type(self).__name__}({args})"


class GlobalConstantSparsity(_GridSchedule):
    """One-shot Global MP: prune to `target_sparsity` at `begin_step`.

    Same step semantics as tfmot's `ConstantSparsity`. The mask is computed once;
    later due steps (every `frequency` until `end_step`) find the masks already at
    the target and leave them unchanged, so the mask stays fixed and is only
    re-applied while fine-tuning.
    """

    _FIELDS = ("target_sparsity", "begin_step", "end_step", "frequency")

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=100):
        self.target_sparsity = _check_sparsity("target_sparsity", target_sparsity)
        self.begin_step, self.end_step, self.frequency = _check_steps(
            begin_step, end_step, frequency, True
        )

    def __call__(self, step):
        return (
            self._should_prune_in_step(step),
            tf.constant(self.target_sparsity, dtype=tf.float32),
        )


class GlobalPolynomialDecay(_GridSchedule):
    """Gradual Global MP (Zhu & Gupta): sparsity rises as a polynomial (cubic).

    ``s(t) = s_f + (s_i - s_f) * (1 - (t - begin_step) / (end_step - begin_step))^power``
    for the network as a whole, re-thresholded every `frequency` steps; the same
    values and step semantics as tfmot's `PolynomialDecay`.
    """

    _FIELDS = ("initial_sparsity", "final_sparsity", "power", "begin_step", "end_step",
               "frequency")

    def __init__(
        self, initial_sparsity, final_sparsity, begin_step, end_step, power=3, frequency=100
    ):
        self.initial_sparsity = _check_sparsity("initial_sparsity", initial_sparsity)
        self.final_sparsity = _check_sparsity("final_sparsity", final_sparsity)
        self.begin_step, self.end_step, self.frequency = _check_steps(
            begin_step, end_step, frequency, False
        )
        if self.end_step == self.begin_step:
            raise ValueError(
                f"end_step must be > begin_step for a decay, got both {begin_step}"
            )
        if isinstance(power, bool) or not isinstance(power, numbers.Real) or power <= 0:
            raise ValueError(f"power must be a positive number, got {power!r}")
        self.power = power

    def __call__(self, step):
        progress = tf.math.minimum(
            1.0,
            tf.math.maximum(
                0.0,
                tf.math.divide(
                    tf.cast(tf.cast(step, tf.int64) - self.begin_step, tf.float32),
                    self.end_step - self.begin_step,
                ),
            ),
        )
        sparsity = tf.math.add(
            tf.math.multiply(
                self.initial_sparsity - self.final_sparsity,
                tf.math.pow(1 - progress, self.power),
            ),
            self.final_sparsity,
        )
        return self._should_prune_in_step(step), sparsity


def as_python_sparsity(value):
    """A schedule's float32 sparsity as the shortest decimal that rounds to it.

    Schedules compute in float32, so 0.9 comes back as 0.89999998; ``N - round(s N)``
    with that value can differ by one weight from the Python 0.9 a user passed to
    `GlobalPruner.prune_to` (N = 15 or ResNet-50's 25,502,912), and a one-shot mask
    would then be recomputed and revive a pruned weight. The shortest round-trip
    decimal (numpy's float32 repr) maps the two to the same number.
    """
    return float(str(np.float32(value)))


def sparsity_at(schedule, step):
    """(should_prune, sparsity) of `schedule` at `step`, as Python values."""
    should_prune, sparsity = schedule(tf.constant(step, tf.int64))
    return bool(should_prune), as_python_sparsity(sparsity)


_TFMOT_GRID_CLASSES = ("ConstantSparsity", "PolynomialDecay")


def _has_step_grid(schedule):
    """Ours, or tfmot's own grid schedules (recognised without importing tfmot)."""
    if isinstance(schedule, _GridSchedule):
        return True
    cls = type(schedule)
    return cls.__name__ in _TFMOT_GRID_CLASSES and cls.__module__.startswith(
        "tensorflow_model_optimization"
    )


def last_pruning_step(schedule):
    """The last step at which `schedule` fires, or None if it fires forever/unknown."""
    if not _has_step_grid(schedule) or schedule.end_step < 0:
        return None
    span = schedule.end_step - schedule.begin_step
    return schedule.begin_step + (span // schedule.frequency) * schedule.frequency


def max_sparsity(schedule):
    """The highest sparsity `schedule` prunes to, or None if unknown (not a grid schedule).

    Grid schedules (ours, tfmot's) are constant or monotone between their first and
    last pruning steps, so the maximum is at one of the two.
    """
    if not _has_step_grid(schedule):
        return None
    last = last_pruning_step(schedule)
    steps = {schedule.begin_step, schedule.begin_step if last is None else last}
    return max(sparsity_at(schedule, step)[1] for step in steps)


def latest_update(schedule, after_step, step):
    """The most recent due update in the step window ``(after_step, step]``.

    Returns ``(due_step, sparsity)`` or None. For tfmot's grid schedules (ours
    included) this is closed form; other schedules are probed step by step over at
    most the last `_SCAN_LIMIT` steps of the window.
    """
    if step <= after_step:
        return None
    if _has_step_grid(schedule):
        begin, end, frequency = schedule.begin_step, schedule.end_step, schedule.frequency
        high = step if end < 0 else min(step, end)
        if high < begin:
            return None
        due = begin + ((high - begin) // frequency) * frequency
        if due <= after_step:
            return None
        return due, sparsity_at(schedule, due)[1]
    for due in range(step, max(after_step, step - _SCAN_LIMIT), -1):
        should_prune, sparsity = sparsity_at(schedule, due)
        if should_prune:
            return due, sparsity
    return None


def validate_schedule(schedule):
    """Accepts tfmot `PruningSchedule`s and ours: callables with `get_config`."""
    if not (callable(schedule) and hasattr(schedule, "get_config")) or isinstance(schedule, type):
        raise ValueError(
            "pruning_schedule must be a tfmot PruningSchedule (e.g. "
            "tf_globalmp.GlobalPolynomialDecay), got "
            f"{type(schedule).__name__}: {schedule!r}"
        )
    return schedule
