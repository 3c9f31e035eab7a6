"""Shared building blocks of the integration tests: data, models, recorders, references.

Everything here is plain Python/numpy except the model builders and callbacks. The
mask reference is an independent, sort-based numpy implementation (np.lexsort by
(-|w|, global position)); it shares no code with the library.
"""

import numpy as np

import tf_globalmp  # noqa: F401  (selects tf-keras before TensorFlow is imported)
import tensorflow as tf
import tf_keras as keras

from tf_globalmp import prune

from tf_globalmp import wrapping
from numpy_reference import layer_top_k, reference_masks  # noqa: F401  (re-exported)

NUM_CLASSES = 10
BATCH = 32


# --------------------------------------------------------------------- data
def digits(n=256):
    """The first `n` sklearn 8x8 digits: (x float32 (n, 8, 8, 1) in [0, 1], y int32)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images[:n] / 16.0).astype("float32")[..., None]
    y = data.target[:n].astype("int32")
    return x, y


# ------------------------------------------------------------------- models
def cnn(seed=0):
    """Conv2D + BN + DepthwiseConv2D + BN + Dense + Dense on 8x8x1 inputs (4,560 prunable)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, padding="same", name="conv"),
            keras.layers.BatchNormalization(name="bn1"),
            keras.layers.ReLU(),
            keras.layers.DepthwiseConv2D(3, padding="same", name="depthwise"),
            keras.layers.BatchNormalization(name="bn2"),
            keras.layers.ReLU(),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu", name="fc1"),
            keras.layers.Dense(NUM_CLASSES, name="logits"),
        ],
        name="digits_cnn",
    )


CNN_SIZES = (3 * 3 * 1 * 8, 3 * 3 * 8 * 1, 4 * 4 * 8 * 32, 32 * NUM_CLASSES)


def compile_model(model, lr=0.05, **kwargs):
    model.compile(
        optimizer=keras.optimizers.SGD(lr, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **kwargs,
    )
    return model


def wrap(model, schedule, **options):
    return tf_globalmp.prune_low_magnitude_global(model, schedule, **options)


# ------------------------------------------------------------ state access
def wrappers(model):
    return wrapping.collect_wrappers(model)


def pruning_vars(model):
    """(weight, mask) variables of every prunable kernel, in wrapper order."""
    return [(w, m) for wrapper in wrappers(model) for w, m, _ in wrapper.pruning_vars]


def masks(model):
    return [m.numpy().copy() for _, m in pruning_vars(model)]


def raw_weights(model):
    return [w.numpy().copy() for w, _ in pruning_vars(model)]


def effective_weights(model):
    return [w.numpy() * m.numpy() for w, m in pruning_vars(model)]


def all_weights(model):
    """Every variable of the model (trainable or not, masks and steps included)."""
    return [np.array(v) for v in model.get_weights()]


def pruning_steps(model):
    return [int(w.pruning_step.numpy()) for w in wrappers(model)]


def assert_pruned_weights_zero(records):
    """Every recorded weight whose mask is 0 is exactly 0 (records of `AfterBatch`)."""
    for record in records:
        for weight, mask in zip(record["weights"], record["masks"]):
            assert np.all(weight[mask == 0] == 0.0), record["step"]


def kept(mask_list):
    return int(sum(int(np.count_nonzero(m)) for m in mask_list))


def total_size(arrays):
    return int(sum(np.size(a) for a in arrays))


def n_keep(total, sparsity):
    """The library's contract, restated: N - round(s * N) (Python rounding)."""
    return int(total) - int(round(float(sparsity) * int(total)))


def schedule_sparsity(schedule, step):
    should, sparsity = schedule(tf.constant(step, tf.int64))
    return bool(should), float(sparsity)


def due_steps(schedule, first, last):
    """Steps in [first, last] at which `schedule` says to prune."""
    return [s for s in range(first, last + 1) if schedule_sparsity(schedule, s)[0]]


def assert_same_arrays(a, b, what="arrays"):
    assert len(a) == len(b), f"{what}: {len(a)} vs {len(b)}"
    for i, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_array_equal(x, y, err_msg=f"{what}[{i}] differ")


# --------------------------------------------------------------- reference
# --------------------------------------------------------------- callbacks
class BeforeUpdate(keras.callbacks.Callback):
    """Put BEFORE UpdateGlobalPruningStep: records the masked weights each batch begins with.

    `snapshots[step]` holds weight * mask (what the update thresholds) keyed by the
    global step (optimizer iterations at batch begin), plus the masks.
    """

    def __init__(self):
        super().__init__()
        self.snapshots = {}

    def on_train_batch_begin(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        self.snapshots[step] = (effective_weights(self.model), masks(self.model))


class AfterBatch(keras.callbacks.Callback):
    """Put AFTER UpdateGlobalPruningStep: records masks, raw weights, update results.

    `records` is a list of dicts, one per batch end: step (optimizer iterations so
    far), masks, raw weights (the variables themselves, not weight * mask), and the
    pruner's `last_result` (from the UpdateGlobalPruningStep given).
    """

    def __init__(self, pruning_callback=None):
        super().__init__()
        self.pruning_callback = pruning_callback
        self.records = []

    def on_train_batch_end(self, batch, logs=None):
        pruner = getattr(self.pruning_callback, "pruner", None)
        self.records.append(
            dict(
                step=int(self.model.optimizer.iterations.numpy()),
                masks=masks(self.model),
                weights=raw_weights(self.model),
                result=None if pruner is None else pruner.last_result,
            )
        )

    def results(self):
        """The distinct UpdateResults seen, in order (one per mask update)."""
        out = []
        for r in self.records:
            if r["result"] is not None and (not out or r["result"] is not out[-1]):
                out.append(r["result"])
        return out


# --------------------------------------------------------------------- runs
def recorded_fit(digits, schedule, seed, epochs, steps_per_execution=1):
    """Fits the wrapped `cnn(seed)` on `digits` with BeforeUpdate, UpdateGlobalPruningStep
    and AfterBatch; a dict of model, before, after, pruning, total (prunable weights)
    and schedule."""
    x, y = digits
    model = compile_model(wrap(cnn(seed=seed), schedule), steps_per_execution=steps_per_execution)
    pruning = tf_globalmp.UpdateGlobalPruningStep()
    before, after = BeforeUpdate(), AfterBatch(pruning)
    model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0,
              callbacks=[before, pruning, after])
    return dict(model=model, before=before, after=after, pruning=pruning,
                total=total_size(masks(model)), schedule=schedule)
