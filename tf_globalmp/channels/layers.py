"""Layers that `shrink` puts into a smaller model where the original's cannot be reused."""

from tf_globalmp import _compat

keras = _compat.keras


@keras.utils.register_keras_serializable(package="tf_globalmp")
class ChannelZeroPad(keras.layers.Layer):
    """x[:, ::stride, ::stride, :] (2-D) with `left` zero channels before the input's
    channels and `right` after: the option-A ResNet shortcut (`ZeroPadShortcut`) with
    uneven padding, as left over when some of its zero channels are pruned."""

    def __init__(self, stride=1, left=0, right=0, **kwargs):
        super().__init__(**kwargs)
        self.stride, self.left, self.right = int(stride), int(left), int(right)
        if self.stride < 1 or self.left < 0 or self.right < 0:
            raise ValueError(f"stride must be >= 1 and left, right >= 0, got stride="
                             f"{stride}, left={left}, right={right}")

    def call(self, x):
        tf = _compat.tf
        if self.stride > 1:
            x = x[:, :: self.stride, :: self.stride, :]
        if self.left or self.right:
            x = tf.pad(x, [[0, 0], [0, 0], [0, 0], [self.left, self.right]])
        return x

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        size = lambda d: None if d is None else -(-d // self.stride)  # noqa: E731
        return (n, size(h), size(w), None if c is None else c + self.left + self.right)

    def get_config(self):
        return {**super().get_config(), "stride": self.stride, "left": self.left,
                "right": self.right}
