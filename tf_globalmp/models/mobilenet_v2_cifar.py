"""MobileNet-V2 for CIFAR (the common CIFAR variant, stride-1 stem), tf-keras functional.

Sandler et al. 2018 with the CIFAR changes of the widely used PyTorch version the
paper's MobileNet-V2 CIFAR-10 numbers come from: the stem conv (3x3, 32) and the
second stage (24 filters) have stride 1 instead of 2, so 32x32 inputs reach 4x4
before pooling; ReLU activations; a stride-1 block whose input and output widths
differ gets a 1x1 conv + BN shortcut. 2.30M trainable parameters (2,296,922), of
which 2,261,824 are prunable (conv and dense kernels): MT 0.02% = 452 weights per
layer, the paper's number.
"""

from tf_globalmp import _compat

keras = _compat.keras
layers = keras.layers

# (expansion, output filters, blocks, stride of the first block)
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2),
           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _conv_bn(x, filters, kernel, stride, name, relu=True):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _block(x, expansion, filters, stride, name):
    y = _conv_bn(x, expansion * x.shape[-1], 1, 1, f"{name}_expand")
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False,
                               depthwise_initializer="he_normal", name=f"{name}_dw_conv")(y)
    y = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_dw_bn")(y)
    y = layers.ReLU(name=f"{name}_dw_relu")(y)
    y = _conv_bn(y, filters, 1, 1, f"{name}_project", relu=False)
    if stride != 1:
        return y
    if x.shape[-1] != filters:
        x = _conv_bn(x, filters, 1, 1, f"{name}_shortcut", relu=False)
    return layers.Add(name=f"{name}_add")([x, y])


def mobilenet_v2_cifar(num_classes=10, input_shape=(32, 32, 3), dropout=0.0):
    """A built CIFAR MobileNet-V2 (stride-1 stem); `dropout` before the classifier."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    inputs = keras.Input(input_shape)
    x = _conv_bn(inputs, 32, 3, 1, "stem")
    for stage, (expansion, filters, blocks, stride) in enumerate(_STAGES):
        for block in range(blocks):
            x = _block(x, expansion, filters, stride if block == 0 else 1,
                       f"stage{stage + 1}_block{block + 1}")
    x = _conv_bn(x, 1280, 1, 1, "head")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v2_cifar")
