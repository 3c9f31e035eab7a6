"""scikit-learn's digits: 1,797 real 8x8 grey images of 10 digits (no download)."""

import numpy as np
import tensorflow as tf

from tf_globalmp.data import streams


def load(config, initial_epoch=0):
    """(train_ds, test_ds, info): stratified split, pixels scaled to [0, 1], NHWC.

    `train_ds` is endless from `initial_epoch` (`streams.array_stream`); one epoch is
    `info["steps_per_epoch"]` batches."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., None]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=config.test_fraction, stratify=labels,
        random_state=config.seed,
    )
    train = streams.array_stream(x_train, y_train, config.batch_size, config.seed,
                                 initial_epoch)
    test = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(256)
    info = {"name": "sklearn_digits", "train_examples": len(x_train),
            "test_examples": len(x_test), "input_shape": (8, 8, 1), "num_classes": 10,
            "steps_per_epoch": streams.steps_per_epoch(len(x_train), config.batch_size)}
    return train, test, info
