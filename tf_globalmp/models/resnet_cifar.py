"""CIFAR ResNets of He et al. 2016 (ResNet-20/32/44/56/110), tf-keras functional.

Depth 6n + 2: a 3x3 conv with 16 filters, three stages of n basic blocks (two 3x3
convs each) with 16, 32 and 64 filters (the second and third stage start with
stride 2), global average pooling and a dense classifier.

Shortcuts: option A by default, as in the paper's CIFAR experiments -- identity, and
where the shape changes, subsample by 2 and zero-pad the new channels (no
parameters): ResNet-20 has 0.27M trainable parameters, ResNet-32 0.46M. Option B
(``shortcut="B"``) uses a 1x1 conv + BatchNorm projection where the shape changes.
"""

from tf_globalmp import _compat

keras = _compat.keras
layers = keras.layers

_STAGE_FILTERS = (16, 32, 64)


@keras.utils.register_keras_serializable(package="tf_globalmp")
class ZeroPadShortcut(layers.Layer):
    """Option-A shortcut: x[:, ::stride, ::stride, :] with zero channels padded
    evenly on both sides up to `filters` channels."""

    def __init__(self, filters, stride=2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.stride = int(stride)

    def call(self, x):
        import tensorflow as tf

        x = x[:, :: self.stride, :: self.stride, :]
        extra = self.filters - x.shape[-1]
        return tf.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        size = lambda d: None if d is None else -(-d // self.stride)  # noqa: E731
        return (n, size(h), size(w), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "stride": self.stride}


def _conv_bn(x, filters, stride, name):
    x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    return layers.BatchNormalization(name=f"{name}_bn")(x)


def _block(x, filters, stride, shortcut, name):
    y = _conv_bn(x, filters, stride, f"{name}_1")
    y = layers.ReLU(name=f"{name}_1_relu")(y)
    y = _conv_bn(y, filters, 1, f"{name}_2")
    if stride != 1 or x.shape[-1] != filters:
        if shortcut == "A":
            x = ZeroPadShortcut(filters, stride, name=f"{name}_shortcut")(x)
        else:
            x = layers.Conv2D(filters, 1, strides=stride, use_bias=False,
                              kernel_initializer="he_normal", name=f"{name}_shortcut_conv")(x)
            x = layers.BatchNormalization(name=f"{name}_shortcut_bn")(x)
    y = layers.Add(name=f"{name}_add")([x, y])
    return layers.ReLU(name=f"{name}_out")(y)


def resnet(depth, num_classes=10, input_shape=(32, 32, 3), shortcut="A"):
    """A built CIFAR ResNet-`depth` (depth = 6n + 2, e.g. 20, 32, 56, 110)."""
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n + 2 with n >= 1 (20, 32, 44, 56, 110), got {depth}")
    if shortcut not in ("A", "B"):
        raise ValueError(f"shortcut must be 'A' (zero-pad) or 'B' (1x1 conv), got {shortcut!r}")
    n = (depth - 2) // 6
    inputs = keras.Input(input_shape)
    x = layers.ReLU(name="stem_relu")(_conv_bn(inputs, _STAGE_FILTERS[0], 1, "stem"))
    for stage, filters in enumerate(_STAGE_FILTERS):
        for block in range(n):
            stride = 2 if stage > 0 and block == 0 else 1
            x = _block(x, filters, stride, shortcut, f"stage{stage + 1}_block{block + 1}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name=f"resnet{depth}_cifar")
