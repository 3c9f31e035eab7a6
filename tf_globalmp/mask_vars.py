"""Masks held in tf variables: kept counts, masked weights and mask assignment for a
model's (weight, mask, threshold) variables, each as one small compiled loop.

A model has tens to hundreds of prunable weights. A ``tf.function`` with a Python loop
over them unrolls ~20 graph ops per weight, and its first call traces and optimises them
all: about 1 s on ResNet-50 (54 weights), several on NASNet-Mobile (357), where a whole
later update takes 0.1-0.2 s. Eager ops instead pay ~20-50 us of dispatch each at every
update (4x slower updates on NASNet-Mobile). Here each job is a ``tf.while_loop`` over
*stacked resource handles*: a graph of a few dozen ops whatever the number of weights,
traced once per process and dtype, whose iterations run at graph speed.

Under a `tf.distribute` strategy a mirrored variable is one variable per replica
(`experimental_local_results`); reads use the first replica, the primary (what a
cross-replica read gives), and an assignment writes every replica, each from its own
replica's weights (mirrored replicas hold the same values), so all get the same masks.
"""

import functools

import numpy as np
import tensorflow as tf

_HANDLES = tf.TensorSpec([None], tf.resource)
_FLAT = [-1]  # element shape of the masked-weights list

# A float mask holds 0 and 1 only (tfmot starts it at 1; `assign` writes cast(keep)),
# so its sum is its kept count: exactly while the count fits the mantissa. (One pass
# over the mask instead of three for a count of mask > 0.)
_EXACT_SUM_BELOW = {tf.float32: 2**24, tf.float64: 2**53}


def _summed_count(dtype, size):
    """Whether a `dtype` mask of `size` entries is counted exactly by its float sum."""
    return size < _EXACT_SUM_BELOW.get(tf.as_dtype(dtype).base_dtype, 0)


def _read(handles, i, dtype):
    return tf.raw_ops.ReadVariableOp(resource=tf.gather(handles, i), dtype=dtype)


def _write(handles, i, value):
    tf.raw_ops.AssignVariableOp(resource=tf.gather(handles, i), value=value)


def _for_each(n, body, state):
    """Graph: body(i, *state) -> new state for i = 0 .. n - 1; the final state."""
    return tf.while_loop(lambda i, *_: i < n, lambda i, *s: (i + 1, *body(i, *s)),
                         (tf.constant(0), *state))[1:]


@functools.lru_cache(maxsize=None)
def _count_loop(mask_dtype, summed):
    """Compiled: kept count per mask (`summed`: by its sum, see `_summed_count`)."""

    def count(mask):
        if summed:
            return tf.cast(tf.reduce_sum(mask), tf.int64)
        return tf.reduce_sum(tf.cast(mask > 0, tf.int64))

    @tf.function(autograph=False, input_signature=[_HANDLES])
    def kept_counts(masks):
        n = tf.shape(masks)[0]
        (counts,) = _for_each(n, lambda i, out: (out.write(i, count(_read(masks, i, mask_dtype))),),
                              (tf.TensorArray(tf.int64, size=n),))
        return counts.stack()

    return kept_counts


@functools.lru_cache(maxsize=None)
def _value_loops(weight_dtype, mask_dtype, threshold_dtype):
    """Compiled: (masked_weights, assign) for variables of these dtypes."""

    @tf.function(autograph=False, input_signature=[_HANDLES, _HANDLES])
    def masked_weights(weights, masks):
        n = tf.shape(weights)[0]

        def body(i, values):
            value = (tf.cast(_read(weights, i, weight_dtype), tf.float32)
                     * tf.cast(_read(masks, i, mask_dtype), tf.float32))
            return (tf.raw_ops.TensorListSetItem(
                input_handle=values, index=i, item=tf.reshape(value, _FLAT)),)

        (values,) = _for_each(n, body, (tf.raw_ops.TensorListReserve(
            element_shape=_FLAT, num_elements=n, element_dtype=tf.float32),))
        return values  # a TensorList: one flat float32 tensor per variable

    @tf.function(autograph=False, input_signature=[
        _HANDLES, _HANDLES, _HANDLES, tf.TensorSpec([None], tf.bool),
        tf.TensorSpec([None], tf.int64)])
    def assign(weights, masks, thresholds, keep, offsets):
        def body(i):
            kept = keep[offsets[i]:offsets[i + 1]]
            weight = _read(weights, i, weight_dtype)
            new_mask = tf.reshape(tf.cast(kept, mask_dtype), tf.shape(weight))
            _write(masks, i, new_mask)
            new_weight = weight * tf.cast(new_mask, weight_dtype)
            _write(weights, i, new_weight)
            # tfmot's per-wrapper threshold: the smallest kept magnitude (0: none kept).
            magnitude = tf.abs(tf.reshape(tf.cast(new_weight, tf.float32), _FLAT))
            smallest = tf.reduce_min(tf.where(kept, magnitude, np.inf))
            _write(thresholds, i, tf.cast(tf.where(tf.reduce_any(kept), smallest, 0.0),
                                          threshold_dtype))
            return ()

        _for_each(tf.shape(weights)[0], body, ())

    return masked_weights, assign


class _Group:
    """The variables of one replica, device and loop kind: stacked handles, offsets."""

    def __init__(self, replica, device, dtypes, summed, members, sizes):
        self.replica, self.device = replica, device
        self.indices = [index for index, _ in members]
        self.weights, self.masks, self.thresholds = (
            tf.stack([triple[j].handle for _, triple in members]) for j in range(3))
        ends = np.cumsum([0] + [sizes[i] for i in self.indices])
        self.offsets = tf.constant(ends, tf.int64)
        self.kept_counts = _count_loop(dtypes[1], summed)
        self.masked_weights, self.assign = _value_loops(*dtypes)


class MaskVariables:
    """The (weight, mask, threshold) variable triples of a pruned model.

    Args:
      triples: list of (weight, mask, threshold) variables (tfmot's `pruning_vars`;
        mirrored, auto-cast or plain); the mask has the weight's shape, the threshold
        is a scalar.
      strategy: the `tf.distribute.Strategy` the variables were created under.
    """

    def __init__(self, triples, strategy):
        self.sizes = [int(np.prod(weight.shape)) for weight, _, _ in triples]
        groups = {}
        for index, triple in enumerate(triples):
            replicas = zip(*(strategy.experimental_local_results(v) for v in triple))
            summed = _summed_count(triple[1].dtype, self.sizes[index])
            for replica, local in enumerate(replicas):
                key = (replica, local[0].device, *(v.dtype.base_dtype for v in local), summed)
                groups.setdefault(key, []).append((index, local))
        self._groups = [_Group(key[0], key[1], key[2:5], key[5], members, self.sizes)
                        for key, members in groups.items()]

    def _primary(self):
        return [g for g in self._groups if g.replica == 0]

    def kept_counts(self):
        """Number of mask == 1 entries per triple (Python ints; primary replica)."""
        counts = [0] * len(self.sizes)
        for group in self._primary():
            with tf.device(group.device):
                values = group.kept_counts(group.masks).numpy()
            for index, count in zip(group.indices, values):
                counts[index] = int(count)
        return counts

    def masked_weights(self):
        """Flat float32 ``weight * mask`` per triple (primary replica)."""
        out = [None] * len(self.sizes)
        for group in self._primary():
            with tf.device(group.device):
                values = group.masked_weights(group.weights, group.masks)
                for j, index in enumerate(group.indices):
                    out[index] = tf.raw_ops.TensorListGetItem(
                        input_handle=values, index=j, element_shape=_FLAT,
                        element_dtype=tf.float32)
        return out

    def assign(self, keep):
        """mask <- keep[i], weight <- weight * mask, threshold <- the smallest kept
        magnitude (0 where nothing is kept), on every replica.

        Args:
          keep: one bool tensor or array per triple with the weight's number of entries
            (any shape; read in row-major order).
        """
        keep = [tf.reshape(tf.convert_to_tensor(k, tf.bool), [-1]) for k in keep]
        got = [int(k.shape[0]) for k in keep]
        if got != self.sizes:
            raise ValueError(
                f"keep must hold one mask per weight with its number of entries "
                f"{self.sizes}, got {got}"
            )
        for group in self._groups:
            flat = tf.concat([keep[i] for i in group.indices], axis=0)
            with tf.device(group.device):
                group.assign(group.weights, group.masks, group.thresholds, flat, group.offsets)
