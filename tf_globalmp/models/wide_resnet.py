"""Wide ResNets for CIFAR (Zagoruyko & Komodakis 2016), tf-keras functional.

WRN-d-k: a 3x3 conv with 16 filters, three groups of (d - 4) / 6 pre-activation
basic blocks (BN-ReLU-conv3x3, optional dropout, BN-ReLU-conv3x3) with 16k, 32k and
64k filters (groups 2 and 3 start with stride 2), BN-ReLU, global average pooling
and a dense classifier. A 1x1 conv shortcut wherever the shape changes. Convs have
no bias. WRN-28-10 has 36.5M parameters (the paper's count), WRN-28-8 23.4M,
WRN-22-8 17.2M.
"""

from tf_globalmp import _compat

keras = _compat.keras
layers = keras.layers


def _conv(filters, kernel, stride, name):
    return layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                         kernel_initializer="he_normal", name=name)


def _bn_relu(x, name):
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _block(x, filters, stride, dropout, name):
    pre = _bn_relu(x, f"{name}_pre")
    y = _conv(filters, 3, stride, f"{name}_1_conv")(pre)
    y = _bn_relu(y, f"{name}_2")
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = _conv(filters, 3, 1, f"{name}_2_conv")(y)
    if stride != 1 or x.shape[-1] != filters:
        x = _conv(filters, 1, stride, f"{name}_shortcut_conv")(pre)
    return layers.Add(name=f"{name}_add")([x, y])


def wide_resnet(depth, width, num_classes=10, input_shape=(32, 32, 3), dropout=0.0):
    """A built WRN-`depth`-`width` (depth = 6n + 4, e.g. WRN-28-10, WRN-22-8)."""
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"depth must be 6n + 4 with n >= 1 (16, 22, 28, 40), got {depth}")
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    n = (depth - 4) // 6
    inputs = keras.Input(input_shape)
    x = _conv(16, 3, 1, "stem_conv")(inputs)
    for group, filters in enumerate((16 * width, 32 * width, 64 * width)):
        for block in range(n):
            stride = 2 if group > 0 and block == 0 else 1
            x = _block(x, filters, stride, dropout, f"group{group + 1}_block{block + 1}")
    x = _bn_relu(x, "final")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name=f"wrn{depth}_{width}")
