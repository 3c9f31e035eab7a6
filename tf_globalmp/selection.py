"""Exact top-k selection in O(N): a radix select over one flat buffer of int32 keys.

Pure graph-building functions (no Keras, no variables, no globals). They take flat
int32 *keys* and return boolean keep masks; callers run them inside their own
``tf.function``.

Why keys: the IEEE-754 bit pattern of a non-negative float32, read as an int32, is
monotone in the float's value. So ``|w|`` -> ``bitcast(float32(|w|), int32)`` turns
"largest magnitudes" into "largest integer keys", and the exact k-th largest key is
found digit by digit with histograms (`tf.math.bincount`): the high digit's
histogram names the bucket that holds the k-th key, the next digit's histogram of
that bucket's keys narrows it down -- a few streaming passes, no sort, no ``top_k``.
float16 and bfloat16 magnitudes convert to float32 exactly, so one key space serves
every float dtype. A negative key (`EXCLUDED`) is never selected.

Many tensors are selected as ONE flat buffer (callers ``tf.concat`` the flat keys
and ``tf.split`` the mask back, both O(N)), so the graph has a fixed number of ops
whatever the number of layers: it traces in well under a second, where a per-layer
graph of a ResNet took tens of seconds. Per-segment selections ("each layer keeps its
own k_l largest keys") run on the same buffer as a *segmented* radix select: each
digit is counted at ``segment * row + digit``, i.e. one histogram per layer from one
`bincount`.

Ties at a threshold key are kept in a fixed order -- lowest position in the buffer
first (so: layers in the order given, elements in C order) -- so exactly k keys are
kept. Only when some ties must be dropped, the ties' positions are listed
(``tf.where``): a tie's rank is its index in that list. (A ``tf.cumsum`` over the
whole buffer would cost ~12 ns a key, more than the whole select.)

The functions use explicit ``tf.cond`` (no Python control flow on tensors) and are
marked ``do_not_convert``: AutoGraph-converting them would cost seconds per trace.
"""

import numbers

import tensorflow as tf

EXCLUDED = -1  # key of an element that must not be selected (e.g. already forced)

# Radix digits (widths in bits, high to low; 31 bits, as candidate keys are >= 0).
_FEW_SEGMENT_DIGITS = (15, 16)  # two passes; up to 65,536 buckets per segment
_MANY_SEGMENT_DIGITS = (11, 10, 10)  # three passes; 2,048 buckets per segment
_MAX_FEW_SEGMENTS = 64  # more segments: smaller histograms, one more pass
_MAX_SEGMENTS = 1 << 19  # segments * 2,048 bins must fit an int32
_GROUP = 256  # buckets per group when locating the k-th key in a histogram


def magnitude_keys(weight):
    """Flat int32 keys ordering elements of `weight` by magnitude (any float dtype)."""
    magnitude = tf.abs(tf.cast(tf.reshape(weight, [-1]), tf.float32))
    return tf.bitcast(magnitude, tf.int32)


def keys_to_magnitude(key):
    """Inverse of `magnitude_keys` for one scalar key: the float32 magnitude."""
    return tf.bitcast(tf.cast(key, tf.int32), tf.float32)


def _u32(value):
    return tf.bitcast(tf.cast(value, tf.int32), tf.uint32)


def _locate_in_rows(hist, k):
    at_or_above = tf.cumsum(hist, axis=1, reverse=True)
    bucket = tf.reduce_sum(tf.cast(at_or_above >= k[:, None], tf.int32), axis=1) - 1
    padded = tf.pad(at_or_above, [[0, 0], [0, 1]])
    above = tf.gather(padded, tf.maximum(bucket + 1, 0), batch_dims=1)
    in_bucket = tf.gather(hist, tf.maximum(bucket, 0), batch_dims=1)
    return bucket, above, in_bucket


def _locate(hist, k, width):
    """Per row of `hist` [S, B] and k [S] >= 1: the bucket b holding the k-th largest
    (count(> b) < k <= count(>= b); -1 if k exceeds the row's total), count(> b) and
    count(== b). Wide rows are searched in two levels (groups of `_GROUP` buckets,
    then one group): a scan over all S * B bins would cost ~10 ns a bin. `width`: B."""
    if width <= _GROUP or hist.shape[0] == 1:  # one row: its scan is cheap
        return _locate_in_rows(hist, k)
    groups = tf.reshape(hist, [-1, width // _GROUP, _GROUP])
    group, group_above, _ = _locate_in_rows(tf.reduce_sum(groups, axis=2), k)
    in_group = tf.gather(groups, tf.maximum(group, 0), batch_dims=1)
    bucket, above, in_bucket = _locate_in_rows(in_group, k - group_above)
    return tf.where(group < 0, -1, group * _GROUP + bucket), group_above + above, in_bucket


class _Segments:
    """S segments back to back in a flat buffer of N keys (graph-building helper).

    Per-segment values reach the keys by `spread`: one fill per segment,
    concatenated (``tf.gather`` by a segment id per key costs ~15 ns a key, 20x
    more). The segment id of every key is spread once and reused.

    `anchor`: an int32 scalar computed at run time whose value is 0; the ids depend
    on it, else grappler would constant-fold N ids at optimisation time (seconds).
    """

    def __init__(self, sizes, anchor):
        self.count = len(sizes)
        self._anchor = anchor
        self.sizes = _as_sizes(sizes)
        self._dims = [
            tf.constant([int(size)], tf.int32) if _static(size) else tf.reshape(size, [1])
            for size in sizes
        ]
        self._ids = None

    def spread(self, per_segment):
        """[S] -> [N]: each segment's value repeated over its keys."""
        values = tf.unstack(per_segment, num=self.count)
        return concat([tf.fill(dims, v) for dims, v in zip(self._dims, values)])

    @property
    def ids(self):
        if self._ids is None:
            self._ids = self.spread(tf.range(self.count) + self._anchor)
        return self._ids


def _radix_select(keys, k, segments):
    """Per segment: (threshold key, how many of its ties to keep, how many ties).

    keys: flat int32 [N]; k: int32 [S], 0 <= k <= candidates of the segment.
    segments: a `_Segments`, or None for one segment (S == 1).
    The threshold is -1 for a segment without candidates.

    Digits are taken from the keys as uint32 with wrap-around arithmetic: a key below
    the bucket chosen so far (or a negative key: >= 2**31 as uint32) yields a digit
    >= the number of buckets and is not counted. Segmented histograms of later passes
    have rows of buckets + 1 bins; the last bin of a row takes the uncounted keys.
    """
    num_segments = 1 if segments is None else segments.count
    digits = _FEW_SEGMENT_DIGITS if num_segments <= _MAX_FEW_SEGMENTS else _MANY_SEGMENT_DIGITS
    keys_u = tf.bitcast(keys, tf.uint32)
    k_eff = tf.maximum(k, 1)  # k == 0: locate the largest key, keep none of its ties
    prefix = tf.zeros([num_segments], tf.int32)  # the threshold's digits so far
    k_left = k_eff
    shift = sum(digits)
    for i, width in enumerate(digits):
        shift -= width
        buckets = 1 << width
        digit = keys_u
        if i > 0:  # subtract the smallest key of the chosen bucket
            base = _u32(tf.bitwise.left_shift(tf.maximum(prefix, 0), shift + width))
            digit = digit - (base[0] if segments is None else segments.spread(base))
        if shift:
            digit = tf.bitwise.right_shift(digit, tf.constant(shift, tf.uint32))
        if segments is None:
            # bincount ignores values >= maxlength; only shift == 0 can exceed int32.
            index = tf.bitcast(tf.minimum(digit, buckets) if shift == 0 else digit, tf.int32)
            hist = tf.math.bincount(index, minlength=buckets, maxlength=buckets, dtype=tf.int32)
            hist = hist[None, :]
        else:
            # First pass: keys >= 0 give digits < buckets. Later: + 1 overflow bin.
            row = buckets if i == 0 else buckets + 1
            index = tf.bitcast(digit if i == 0 else tf.minimum(digit, buckets), tf.int32)
            index += segments.ids * row
            bins = num_segments * row
            hist = tf.math.bincount(index, minlength=bins, maxlength=bins, dtype=tf.int32)
            hist = tf.reshape(hist, [num_segments, row])[:, :buckets]
        bucket, above, in_bucket = _locate(hist, k_left, buckets)
        # A segment whose k exceeds its candidates gets bucket -1 and keeps -1.
        prefix = tf.where(
            prefix < 0, -1, tf.bitwise.bitwise_or(tf.bitwise.left_shift(prefix, width), bucket)
        )
        k_left -= above
    found = prefix >= 0
    ties_wanted = tf.where(found, k_left - (k_eff - k), 0)  # 0 when k == 0
    return prefix, ties_wanted, tf.where(found, in_bucket, 0)


def _keep(keys, threshold, ties_wanted, n_ties, segments):
    """keys > threshold, plus the first `ties_wanted` keys == threshold per segment."""
    threshold = tf.maximum(threshold, 0)  # -1: no candidates; never keep EXCLUDED
    own = threshold[0] if segments is None else segments.spread(threshold)

    def all_ties():
        return keys >= own

    def first_ties():
        # Only the ties are ranked: their positions, ascending, are their order.
        equal = tf.equal(keys, own)
        ties = tf.cast(tf.where(equal)[:, 0], tf.int32)
        if segments is None:
            dropped = ties[ties_wanted[0]:]
        else:
            ends = tf.cumsum(segments.sizes)
            first = tf.searchsorted(ties, ends - segments.sizes, side="left")  # per segment
            segment = tf.searchsorted(ends, ties, side="right")  # per tie
            rank = tf.range(tf.size(ties))
            dropped = ties[rank >= tf.gather(first + ties_wanted, segment)]
        keep_ties = tf.tensor_scatter_nd_update(
            equal, dropped[:, None], tf.zeros_like(dropped, tf.bool)
        )
        return tf.logical_or(keys > own, keep_ties)

    return tf.cond(tf.reduce_any(ties_wanted < n_ties), first_ties, all_ties)


@tf.autograph.experimental.do_not_convert
def top_k_mask(keys, k):
    """Flat bool mask keeping exactly the `k` largest of the flat int32 `keys`.

    Args:
      keys: flat int32 tensor; a key >= 0 is a candidate, a negative key
        (`EXCLUDED`) never is.
      k: int32 scalar, 0 <= k <= number of candidates (not checked here).

    Returns:
      (mask, threshold_key): the smallest kept key (meaningless when k == 0). Ties
      at the threshold are kept lowest position first.
    """
    k = tf.reshape(tf.cast(k, tf.int32), [1])
    threshold, ties_wanted, n_ties = _radix_select(keys, k, None)
    mask = _keep(keys, threshold, ties_wanted, n_ties, None)
    return mask, threshold[0]


@tf.autograph.experimental.do_not_convert
def segment_top_k_mask(keys, k, sizes):
    """Flat bool mask: segment s (the next `sizes[s]` keys) keeps its `k[s]` largest.

    Args:
      keys: flat int32 tensor of candidate keys (all >= 0), segments back to back.
      k: int32 [S]; clipped to [0, sizes[s]].
      sizes: list of S ints or int32 scalars summing to the length of `keys`.

    Ties at a segment's threshold are kept lowest position first.
    """
    num_segments = len(sizes)
    if not 1 <= num_segments <= _MAX_SEGMENTS:
        raise ValueError(f"sizes must hold 1 to {_MAX_SEGMENTS} segments, got {num_segments}")
    k = tf.cast(k, tf.int32)
    # An opaque 0 (grappler folds `x * 0`, not max(min(x, 0), 0)).
    anchor = tf.maximum(tf.minimum(tf.reduce_min(k), 0), 0)
    segments = _Segments(list(sizes), anchor)
    k = tf.clip_by_value(k, 0, segments.sizes)
    threshold, ties_wanted, n_ties = _radix_select(keys, k, segments)
    return _keep(keys, threshold, ties_wanted, n_ties, segments)


def _static(size):
    return isinstance(size, numbers.Integral)


def _as_sizes(sizes):
    if all(_static(size) for size in sizes):
        return tf.constant([int(size) for size in sizes], tf.int32)  # one node
    return tf.stack([tf.cast(size, tf.int32) for size in sizes])


def sizes_of(flat_tensors):
    """Their lengths: Python ints where the shapes are static (smaller graphs)."""
    return [
        t.shape.num_elements() if t.shape.is_fully_defined() else tf.size(t) for t in flat_tensors
    ]


def concat(flat_tensors):
    """One flat buffer of flat tensors (no copy for a single tensor)."""
    return flat_tensors[0] if len(flat_tensors) == 1 else tf.concat(flat_tensors, axis=0)


def split(flat, sizes):
    """Inverse of `concat`: a list of flat tensors of the given sizes."""
    if len(sizes) == 1:
        return [flat]
    return tf.split(flat, _as_sizes(sizes), num=len(sizes))


@tf.autograph.experimental.do_not_convert
def top_k_masks(keys, k):
    """Boolean masks keeping exactly the `k` largest keys across all of `keys`.

    Args:
      keys: list of flat int32 tensors; a key >= 0 is a candidate, `EXCLUDED` (-1)
        never is.
      k: int32 scalar, 0 <= k <= number of candidates (not checked here).

    Returns:
      (masks, threshold_key): one flat bool tensor per input, and the smallest kept
      key (meaningless when k == 0). Ties at the threshold are kept lowest position
      first across the concatenation of `keys`.
    """
    mask, threshold = top_k_mask(concat(keys), k)
    return split(mask, sizes_of(keys)), threshold


@tf.autograph.experimental.do_not_convert
def layer_top_k_mask(key, k, size):
    """Keep the `k` largest keys of one flat tensor (k clipped to [0, size])."""
    k = tf.clip_by_value(tf.cast(k, tf.int32), 0, tf.cast(size, tf.int32))
    return top_k_mask(key, k)[0]
