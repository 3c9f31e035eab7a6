"""What each kind of layer does to channel labels (`graph.analyze` walks the nodes).

`kind_of(layer)` names a layer's channel behaviour ("conv", "merge", "barrier", ...;
None: unknown); `PROPAGATE[kind](analysis, layer, node, inputs, in_labels, outputs)`
records the layer's kernels/parameters with their channel labels on the analysis
(`graph._Analysis`) and returns the labels of its output. See `graph` for what a label
and a channel group are.
"""

import numpy as np

from tf_globalmp import _compat
from tf_globalmp.channels import layers as channel_layers

keras = _compat.keras
tf = _compat.tf
_L = keras.layers

SUPPORTED = (
    "Conv1D/2D/3D (groups=1), Dense, DepthwiseConv1D/2D, SeparableConv1D/2D, "
    "BatchNormalization, PReLU, Activation/ReLU/LeakyReLU/ELU/ThresholdedReLU, "
    "Dropout/SpatialDropout, pooling, ZeroPadding, Cropping, UpSampling, "
    "Add/Subtract/Multiply/Average/Maximum/Minimum, Concatenate, Flatten, Reshape, "
    "LayerNormalization/GroupNormalization/UnitNormalization/Softmax (not pruned "
    "through), ZeroPadShortcut"
)


class UnsupportedGraphError(ValueError):
    """The model (or one of its layers, named) cannot be analysed for channel pruning."""


def _classes(*names):
    return tuple(getattr(_L, n) for n in names if hasattr(_L, n))


_SEPARABLE = _classes("SeparableConv1D", "SeparableConv2D")
_DEPTHWISE = _classes("DepthwiseConv1D", "DepthwiseConv2D")
_TRANSPOSE = _classes("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
_CONV = _classes("Conv1D", "Conv2D", "Conv3D")
_BATCHNORM = (_L.BatchNormalization, tf.compat.v1.keras.layers.BatchNormalization)
_ACTIVATIONS = _classes("Activation", "ReLU", "LeakyReLU", "ELU", "ThresholdedReLU")
_IDENTITY = _classes("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                     "ActivityRegularization")
_SPATIAL = _classes(
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D",
    "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D")
_MERGE = _classes("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
_BARRIER = _classes("LayerNormalization", "GroupNormalization", "UnitNormalization", "Softmax")


def _zero_pad_shortcut():
    from tf_globalmp.models import resnet_cifar  # noqa: PLC0415  (models import _compat)

    return resnet_cifar.ZeroPadShortcut


def kind_of(layer):
    """The channel behaviour of `layer` (a string), or None if unknown."""
    if isinstance(layer, _L.InputLayer):
        return "input"
    if isinstance(layer, keras.Model):
        return "model"
    for classes, kind in ((_SEPARABLE, "separable"), (_DEPTHWISE, "depthwise"),
                          (_TRANSPOSE, None), (_CONV, "conv"), ((_L.Dense,), "dense"),
                          (_BATCHNORM, "batchnorm"), ((_L.PReLU,), "prelu"),
                          (_ACTIVATIONS, "activation"), (_IDENTITY, "identity"),
                          (_SPATIAL, "spatial"), (_MERGE, "merge"),
                          ((_L.Concatenate,), "concat"), ((_L.Flatten,), "flatten"),
                          ((_L.Reshape,), "reshape"), (_BARRIER, "barrier"),
                          ((_zero_pad_shortcut(), channel_layers.ChannelZeroPad), "channel_pad")):
        if classes and isinstance(layer, classes):
            return kind
    return None


def _shape(tensor):
    return tuple(tensor.shape.as_list()) if hasattr(tensor.shape, "as_list") \
        else tuple(tensor.shape)


def _positions(shape):
    """Product of the dims between batch and channels (unknown dims count 1)."""
    return int(np.prod([1 if d is None else int(d) for d in shape[1:-1]], dtype=np.int64))


def _zero_preserving(layer, width):
    """True if the elementwise `layer` maps 0 to 0 (checked on a zero tensor)."""
    try:
        out = layer(tf.zeros([1, max(int(width), 1)], layer.compute_dtype or "float32"))
        return bool(np.all(np.asarray(tf.cast(out, tf.float32)) == 0))
    except Exception:  # noqa: BLE001  (cannot evaluate: treat as changing zeros)
        return False


def channels(tensor):
    shape = _shape(tensor)
    if len(shape) < 2:
        return 1
    if shape[-1] is None:
        raise UnsupportedGraphError(f"channel pruning needs known channel counts, got a "
                                    f"tensor of shape {shape}")
    return int(shape[-1])


def _refuse(layer, why):
    raise UnsupportedGraphError(
        f"channel pruning cannot analyse layer {layer.name!r} ({type(layer).__name__}): "
        f"{why}. Pass exclude=[{layer.name!r}] to keep its channels unpruned.")


def _channels_last(layer):
    data_format = getattr(layer, "data_format", "channels_last")
    if data_format not in (None, "channels_last"):
        _refuse(layer, f"data_format={data_format!r} (channels_last only)")


def _prop_conv(a, layer, node, inputs, in_labels, outputs):
    _channels_last(layer)
    if getattr(layer, "groups", 1) != 1:
        _refuse(layer, f"grouped convolution (groups={layer.groups})")
    kernel = layer.kernel
    rank = len(kernel.shape)
    bound_in = a.bind(layer, "in", in_labels[0])
    out = a.producer(layer, int(kernel.shape[-1]))
    a.kernel(layer, kernel, rank - 2, bound_in, rank - 1, out, _positions(_shape(outputs[0])))
    if layer.use_bias:
        a.param(layer, layer.bias, 0, out, "bias")
    return out


def _prop_dense(a, layer, node, inputs, in_labels, outputs):
    bound_in = a.bind(layer, "in", in_labels[0])
    out = a.producer(layer, int(layer.kernel.shape[-1]))
    a.kernel(layer, layer.kernel, 0, bound_in, 1, out, _positions(_shape(outputs[0])))
    if layer.use_bias:
        a.param(layer, layer.bias, 0, out, "bias")
    return out


def _prop_depthwise(a, layer, node, inputs, in_labels, outputs):
    _channels_last(layer)
    kernel = layer.depthwise_kernel
    rank = len(kernel.shape)
    bound_in = a.bind(layer, "in", in_labels[0])
    out = np.repeat(bound_in, int(kernel.shape[-1]))
    a.kernel(layer, kernel, rank - 2, bound_in, None, None, _positions(_shape(outputs[0])))
    if layer.use_bias:
        a.param(layer, layer.bias, 0, out, "bias")
    return out


def _prop_separable(a, layer, node, inputs, in_labels, outputs):
    _channels_last(layer)
    depthwise, pointwise = layer.depthwise_kernel, layer.pointwise_kernel
    rank = len(depthwise.shape)
    bound_in = a.bind(layer, "in", in_labels[0])
    positions = _positions(_shape(outputs[0]))
    a.kernel(layer, depthwise, rank - 2, bound_in, None, None, positions)
    out = a.producer(layer, int(pointwise.shape[-1]))
    a.kernel(layer, pointwise, rank - 2, np.repeat(bound_in, int(depthwise.shape[-1])),
             rank - 1, out, positions)
    if layer.use_bias:
        a.param(layer, layer.bias, 0, out, "bias")
    return out


def _prop_batchnorm(a, layer, node, inputs, in_labels, outputs):
    rank = len(_shape(inputs[0]))
    axes = [int(x) % rank for x in np.atleast_1d(layer.axis)]
    if axes != [rank - 1]:
        _refuse(layer, f"normalization over axis {layer.axis} (the channel axis, last, only)")
    labels = a.bind(layer, "in", in_labels[0])
    if layer.scale:
        a.param(layer, layer.gamma, 0, labels, "bias")
    if layer.center:
        a.param(layer, layer.beta, 0, labels, "bias")
    # Without a scale, 0 maps to beta - mean / sqrt(var + eps): the mean defines it.
    a.param(layer, layer.moving_mean, 0, labels, "stat" if layer.scale else "bias")
    a.param(layer, layer.moving_variance, 0, labels, "stat")
    return in_labels[0]


def _prop_prelu(a, layer, node, inputs, in_labels, outputs):
    labels = a.bind(layer, "in", in_labels[0])
    alpha = layer.alpha
    if int(alpha.shape[-1]) == len(labels) and len(labels) > 1:
        a.param(layer, alpha, len(alpha.shape) - 1, labels, "slice")
    return in_labels[0]


def _prop_activation(a, layer, node, inputs, in_labels, outputs):
    if _zero_preserving(layer, len(in_labels[0])):
        return in_labels[0]
    return _prop_barrier(a, layer, node, inputs, in_labels, outputs)


def _prop_identity(a, layer, node, inputs, in_labels, outputs):
    if isinstance(layer, _SPATIAL):
        _channels_last(layer)
    return in_labels[0]


def _prop_merge(a, layer, node, inputs, in_labels, outputs):
    width = channels(outputs[0])
    full = [labels for labels in in_labels if len(labels) == width]
    for labels in in_labels:
        if len(labels) != width:  # broadcast over channels: its channel is never pruned
            a.labels.fix(labels)
    for labels in full[1:]:
        a.labels.union_all(full[0], labels)
    return full[0]


def _prop_concat(a, layer, node, inputs, in_labels, outputs):
    rank = len(_shape(outputs[0]))
    if int(layer.axis) % rank == rank - 1:
        return np.concatenate(in_labels)
    return _prop_merge(a, layer, node, inputs, in_labels, outputs)


def _prop_reshape(a, layer, node, inputs, in_labels, outputs):
    """Flatten / Reshape: the channel axis is the fastest in C order, so an output
    whose last dim is a multiple of the input's channels repeats their labels."""
    labels = in_labels[0]
    if isinstance(layer, _L.Flatten) and len(_shape(inputs[0])) > 2:
        _channels_last(layer)
    width = channels(outputs[0])
    if width % len(labels) == 0:
        return np.tile(labels, width // len(labels))
    return _prop_barrier(a, layer, node, inputs, in_labels, outputs)


def _prop_channel_pad(a, layer, node, inputs, in_labels, outputs):
    labels = in_labels[0]
    if isinstance(layer, channel_layers.ChannelZeroPad):
        left, right = layer.left, layer.right
    else:  # ZeroPadShortcut: the new channels evenly on both sides
        extra = channels(outputs[0]) - len(labels)
        left, right = extra // 2, extra - extra // 2
    # Always-zero channels: labels with no weights, merged by the Add that follows.
    return np.concatenate([a.labels.new(left), labels, a.labels.new(right)])


def _prop_barrier(a, layer, node, inputs, in_labels, outputs):
    for labels in in_labels:
        a.labels.fix(labels)
    for t in outputs:
        a.tensor_labels[id(t)] = a.labels.new(channels(t), fixed=True)
    return a.tensor_labels[id(outputs[0])]


PROPAGATE = {
    "conv": _prop_conv, "dense": _prop_dense, "depthwise": _prop_depthwise,
    "separable": _prop_separable, "batchnorm": _prop_batchnorm, "prelu": _prop_prelu,
    "activation": _prop_activation, "identity": _prop_identity, "spatial": _prop_identity,
    "merge": _prop_merge, "concat": _prop_concat, "flatten": _prop_reshape,
    "reshape": _prop_reshape, "channel_pad": _prop_channel_pad, "barrier": _prop_barrier,
}
