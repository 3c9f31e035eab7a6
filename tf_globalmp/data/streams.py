"""Endless, epoch-deterministic training streams from in-memory arrays."""

import tensorflow as tf


def array_stream(x, y, batch_size, seed=0, initial_epoch=0):
    """Endless training batches of (x, y) (fit with `steps_per_epoch` =
    ceil(N / batch_size)): epoch e is the data in a stateless shuffle seeded by
    (seed, e), so a run resumed at `initial_epoch` sees exactly the batches an
    uninterrupted run would."""
    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    n = int(y.shape[0])

    def one_epoch(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size).map(
            lambda i: (tf.gather(x, i), tf.gather(y, i)))

    return tf.data.Dataset.range(int(initial_epoch), 2**62).flat_map(one_epoch).prefetch(2)


def steps_per_epoch(n, batch_size):
    return -(-int(n) // int(batch_size))
