"""ResNet-50 v1.5 for ImageNet (the torchvision / NVIDIA layout the paper trains).

v1.5 differs from the original v1 (`tf_keras.applications.ResNet50`) in where a
bottleneck block downsamples: on its 3x3 conv (v1.5) instead of its first 1x1 conv
(v1). It also matches torchvision in having no conv biases, so its parameter count
is torchvision's: 25,557,032 trainable parameters (Keras `count_params()` adds the
BatchNorm moving statistics, 53,120), of which 25,502,912 are prunable kernels
(53 convs + the final dense layer). Strided convs pad explicitly and symmetrically
like PyTorch, so torchvision weights map one to one (names: ``conv1``, ``bn1``,
``layer{1..4}_{block}_conv{1..3}``, ``..._downsample_conv``, ``fc``).
BatchNorm uses PyTorch's epsilon 1e-5 and momentum 0.9 (PyTorch's 0.1).
"""

from tf_globalmp import _compat

keras = _compat.keras
L = keras.layers

STAGES = ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2))  # (width, blocks, stride)
EXPANSION = 4
_BN = dict(epsilon=1e-5, momentum=0.9)


def _conv_init():
    # torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu").
    return keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal")


def _conv(x, filters, kernel, stride, name):
    if stride > 1 and kernel > 1:  # PyTorch's symmetric padding, then a valid conv
        x = L.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    return L.Conv2D(filters, kernel, stride, padding=padding, use_bias=False,
                    kernel_initializer=_conv_init(), name=name)(x)


def _bn(x, name, zero_gamma=False):
    return L.BatchNormalization(gamma_initializer="zeros" if zero_gamma else "ones",
                                name=name, **_BN)(x)


def _bottleneck(x, width, stride, name, zero_init_residual):
    shortcut = x
    out_channels = width * EXPANSION
    if stride != 1 or x.shape[-1] != out_channels:
        shortcut = _conv(x, out_channels, 1, stride, f"{name}_downsample_conv")
        shortcut = _bn(shortcut, f"{name}_downsample_bn")
    y = L.ReLU(name=f"{name}_relu1")(_bn(_conv(x, width, 1, 1, f"{name}_conv1"), f"{name}_bn1"))
    y = L.ReLU(name=f"{name}_relu2")(
        _bn(_conv(y, width, 3, stride, f"{name}_conv2"), f"{name}_bn2"))  # v1.5: stride here
    y = _bn(_conv(y, out_channels, 1, 1, f"{name}_conv3"), f"{name}_bn3", zero_init_residual)
    return L.ReLU(name=f"{name}_out")(L.Add(name=f"{name}_add")([y, shortcut]))


def resnet50(num_classes=1000, input_shape=(224, 224, 3), zero_init_residual=False):
    """ResNet-50 v1.5 returning logits (no softmax).

    Args:
      num_classes: size of the final dense layer.
      input_shape: (H, W, 3); any size >= 32 works (FLOPs are counted at 224).
      zero_init_residual: start each block's last BatchNorm gamma at 0 (Goyal et al.).
    """
    inputs = keras.Input(input_shape, name="image")
    x = _conv(inputs, 64, 7, 2, "conv1")
    x = L.ReLU(name="relu1")(_bn(x, "bn1"))
    x = L.ZeroPadding2D(1, name="maxpool_pad")(x)
    x = L.MaxPooling2D(3, 2, name="maxpool")(x)
    for stage, (width, blocks, stride) in enumerate(STAGES, start=1):
        for block in range(blocks):
            x = _bottleneck(x, width, stride if block == 0 else 1, f"layer{stage}_{block}",
                            zero_init_residual)
    x = L.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = L.Dense(num_classes, name="fc")(x)
    return keras.Model(inputs, outputs, name="resnet50_v1_5")
