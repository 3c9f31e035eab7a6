"""UCI HAR raw inertial signals, as HAR-2 (the FastGRNN paper's binary task). No download.

Reads either the shared `.npz` copy (`DEFAULT_PATH`) or the official "UCI HAR Dataset"
folder that users download (its `train/Inertial Signals/body_acc_x_train.txt`, ...,
`train/y_train.txt`, `train/subject_train.txt`, and the same under `test/`). HAR-2 labels
are ``y % 2 == 0`` ({WALKING_UPSTAIRS, SITTING, LAYING} = 1); every one of the
128 x 9 = 1,152 flattened features is z-scored with training statistics (std < 1e-6 -> 1).
The official train/test split is kept; an optional validation split holds out whole
training subjects (windows of one subject overlap, so a random split would leak), for
tuning without the test set (`validation_subjects`).
"""

import os

import numpy as np
import tensorflow as tf
from absl import logging

from tf_globalmp.data import streams

DEFAULT_PATH = "/work/shared/data/uci_har_raw.npz"
TIMESTEPS = 128
# Channel order of the npz and of this loader (the official Inertial Signals files).
CHANNELS = (
    "body_acc_x", "body_acc_y", "body_acc_z",
    "body_gyro_x", "body_gyro_y", "body_gyro_z",
    "total_acc_x", "total_acc_y", "total_acc_z",
)
STD_FLOOR = 1e-6


def _official_root(path):
    """The folder holding train/ and test/ (accepts the folder or its parent)."""
    for candidate in (path, os.path.join(path, "UCI HAR Dataset")):
        if os.path.isdir(os.path.join(candidate, "train", "Inertial Signals")):
            return candidate
    return None


def _read_split(root, split):
    signals = []
    for channel in CHANNELS:
        name = os.path.join(root, split, "Inertial Signals", f"{channel}_{split}.txt")
        if not os.path.exists(name):
            raise FileNotFoundError(f"UCI HAR file missing: {name!r}")
        values = np.loadtxt(name, dtype=np.float32, ndmin=2)
        if values.shape[1] != TIMESTEPS:
            raise ValueError(
                f"{name!r} must have {TIMESTEPS} values per row, got {values.shape[1]}"
            )
        signals.append(values)
    if len({s.shape[0] for s in signals}) != 1:
        raise ValueError(f"the Inertial Signals files of {split!r} under {root!r} "
                         f"have different row counts {[s.shape[0] for s in signals]}")
    x = np.stack(signals, axis=-1)
    y = np.loadtxt(os.path.join(root, split, f"y_{split}.txt"), dtype=np.int64, ndmin=1)
    subject_file = os.path.join(root, split, f"subject_{split}.txt")
    subjects = (np.loadtxt(subject_file, dtype=np.int64, ndmin=1)
                if os.path.exists(subject_file) else np.zeros(len(y), np.int64))
    if not len(y) == len(subjects) == len(x):
        raise ValueError(f"{split!r} under {root!r}: {len(x)} signal rows, {len(y)} labels, "
                         f"{len(subjects)} subjects")
    return x, y, subjects


def load_arrays(data_dir=None):
    """Raw arrays: X_* (n, 128, 9) float32, y_* labels 1..6, subject_*; official split.

    `data_dir`: None (the shared npz at `DEFAULT_PATH`), an `.npz` file, or the
    official "UCI HAR Dataset" folder (or the folder containing it).
    """
    path = DEFAULT_PATH if data_dir is None else os.fspath(data_dir)
    if os.path.isfile(path):
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        missing = {"X_train", "y_train", "X_test", "y_test"} - set(arrays)
        if missing:
            raise ValueError(f"data_dir {path!r} is an npz without {sorted(missing)}")
        for split in ("train", "test"):
            arrays.setdefault(f"subject_{split}", np.zeros(len(arrays[f"y_{split}"]), np.int64))
        return arrays
    root = _official_root(path) if os.path.isdir(path) else None
    if root is None:
        raise FileNotFoundError(
            f"no UCI HAR data at data_dir={path!r}: pass the npz file or the official "
            "'UCI HAR Dataset' folder (with train/Inertial Signals/*.txt). Nothing is "
            "downloaded."
        )
    arrays = {}
    for split in ("train", "test"):
        x, y, s = _read_split(root, split)
        arrays.update({f"X_{split}": x, f"y_{split}": y, f"subject_{split}": s})
    return arrays


def har2_labels(y):
    """HAR-2: 1 for labels {2, 4, 6} (upstairs, sitting, laying), else 0."""
    y = np.asarray(y)
    if y.size and (y.min() < 1 or y.max() > 6):
        raise ValueError(f"UCI HAR labels must be in 1..6, got range [{y.min()}, {y.max()}]")
    return (y % 2 == 0).astype(np.int32)


def zscore_stats(x_train):
    """Mean and std of each flattened feature; std < 1e-6 becomes 1."""
    flat = np.asarray(x_train, np.float64).reshape(len(x_train), -1)
    mean, std = flat.mean(axis=0), flat.std(axis=0)
    std[std < STD_FLOOR] = 1.0
    return mean, std


def normalize(x, mean, std):
    flat = np.asarray(x, np.float64).reshape(len(x), np.size(mean))
    return ((flat - mean) / std).astype(np.float32).reshape(np.shape(x))


def validation_subjects(subjects, fraction, seed=0):
    """Whole training subjects holding about `fraction` of the windows, sorted.

    Deterministic: the subject ids are visited in the order of a numpy
    `default_rng(seed)` permutation and taken until the next would bring the windows
    taken above `fraction` of all (the first is always taken; at least one subject
    stays for training). The test subjects are never involved. On UCI HAR (21 training subjects),
    fraction 0.3 with seed 0 holds out subjects 5, 7, 17, 21, 26, 28: 2,160 of the
    7,352 windows.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation_fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return np.array([], np.int64)
    ids, counts = np.unique(subjects, return_counts=True)
    if len(ids) < 2:
        raise ValueError(f"validation_fraction={fraction} needs at least 2 training "
                         f"subjects, got {len(ids)}")
    order = np.random.default_rng(seed).permutation(len(ids))
    chosen, total = [], 0
    for i in order:
        if chosen and total + counts[i] > fraction * len(subjects):
            break
        chosen.append(ids[i])
        total += counts[i]
        if len(chosen) == len(ids) - 1:
            break
    return np.sort(np.array(chosen, np.int64))


def har2_arrays(data_dir=None, validation_fraction=0.0, seed=0):
    """HAR-2 numpy arrays, z-scored with the (remaining) training set's statistics.

    Returns a dict with x_train/y_train, x_val/y_val (empty without a validation
    split), x_test/y_test, and `info` (counts, held-out subjects, data path).
    """
    raw = load_arrays(data_dir)
    x_train, y_train = raw["X_train"], har2_labels(raw["y_train"])
    held = validation_subjects(raw["subject_train"], validation_fraction, seed)
    in_val = np.isin(raw["subject_train"], held)
    mean, std = zscore_stats(x_train[~in_val])
    out = {
        "x_train": normalize(x_train[~in_val], mean, std), "y_train": y_train[~in_val],
        "x_val": normalize(x_train[in_val], mean, std), "y_val": y_train[in_val],
        "x_test": normalize(raw["X_test"], mean, std), "y_test": har2_labels(raw["y_test"]),
    }
    out["info"] = {
        "name": "uci_har2",
        "path": os.path.abspath(DEFAULT_PATH if data_dir is None else os.fspath(data_dir)),
        "train_examples": int(len(out["y_train"])),
        "validation_examples": int(len(out["y_val"])),
        "test_examples": int(len(out["y_test"])),
        "validation_subjects": [int(s) for s in held],
        "input_shape": tuple(x_train.shape[1:]),
        "num_classes": 2,
    }
    logging.info("HAR-2 from %s: %d train, %d validation, %d test windows",
                 out["info"]["path"], len(out["y_train"]), len(out["y_val"]),
                 len(out["y_test"]))
    return out


def load(config, initial_epoch=0):
    """(train_ds, test_ds, info) like the other data modules: `train_ds` is endless
    (see `streams.array_stream`; one epoch is `info["steps_per_epoch"]` batches); info also
    has the validation arrays (`x_val`, `y_val`): the subjects `validation_subjects`
    picks for `config.validation_fraction` and `config.validation_seed` (the training
    `config.seed` shuffles batches only, so every seed sees the same split)."""
    arrays = har2_arrays(config.data_dir, config.validation_fraction, config.validation_seed)
    train = streams.array_stream(arrays["x_train"], arrays["y_train"], config.batch_size,
                                 config.seed, initial_epoch)
    test = tf.data.Dataset.from_tensor_slices((arrays["x_test"], arrays["y_test"])).batch(500)
    info = dict(arrays["info"], x_val=arrays["x_val"], y_val=arrays["y_val"],
                x_test_sample=arrays["x_test"][:8],
                steps_per_epoch=streams.steps_per_epoch(len(arrays["y_train"]),
                                                        config.batch_size))
    return train, test, info
