"""Channel dependency analysis of a functional tf-keras model: its channel groups.

A *channel group* is the smallest set of channels that can be removed together
without changing what the rest of the network computes (given that the removed
channels are zero): an output channel of a Conv/Dense/SeparableConv, with its bias,
the BatchNorm gamma/beta/moving statistics of that channel, the depthwise channel
it feeds (and that one's bias), PReLU alphas, and the matching input slice of every
consumer kernel -- followed through activations, pooling, padding, cropping,
upsampling, dropout, Flatten and Reshape (into a Dense: the slice repeats once per
spatial position) -- plus every channel joined to it: the same index of all inputs
of an Add/Subtract/Multiply/Average/Maximum/Minimum, and Concatenate's inputs at
their offsets.

How: every tensor's last (channel) axis gets one *label* per index. A producer
makes new labels, channel-wise layers pass them on, merges unite them index-wise
(union-find), Concatenate concatenates them, Flatten/Reshape repeat them. Labels
that reach something that mixes channels in a way removal would change -- a model
output, a LayerNormalization, a softmax, an activation with f(0) != 0, a Reshape
that splits the channel axis, a broadcast merge input, an excluded layer -- are
*fixed*: never pruned. Each remaining union of labels is one group; groups are
numbered in the order their first channel appears in the graph.

Refused with `UnsupportedGraphError`, naming the layer: subclassed models (no graph
to read), nested models, and any layer this module does not know whose inputs carry
prunable channels (an unknown layer on never-pruned channels only, e.g. input
preprocessing, is fine). `exclude=` turns a layer into a barrier (its input and
output channels are never pruned), which also lets an unknown layer through.

`analyze(model)` returns a `ChannelGraph`: the `select.KernelSpec` / `ParamSpec` of
every weight with channel structure (by variable), the groups of each producer's
output channels (for the per-layer minimum), and every tensor's groups (for
`shrink`).
"""

import dataclasses

import numpy as np

from tf_globalmp import _compat
from tf_globalmp.channels import layers as channel_layers
from tf_globalmp.channels import select

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


# ------------------------------------------------------------------ labels
class _Labels:
    """Union-find over channel labels; a class is fixed if any member is."""

    def __init__(self):
        self.parent = []
        self.fixed = []

    def new(self, n, fixed=False):
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        self.fixed.extend([fixed] * n)
        return np.arange(start, start + n, dtype=np.int64)

    def find(self, a):
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a, b):
        ra, rb = self.find(int(a)), self.find(int(b))
        if ra == rb:
            return
        if rb < ra:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.fixed[ra] = self.fixed[ra] or self.fixed[rb]

    def union_all(self, a, b):
        for x, y in zip(a, b):
            self.union(x, y)

    def fix(self, labels):
        for x in labels:
            self.fixed[self.find(int(x))] = True

    def groups(self):
        """Label -> group id (-1 fixed), groups numbered by their smallest label."""
        roots = np.array([self.find(i) for i in range(len(self.parent))], np.int64)
        out = np.full(len(roots), select.FIXED, np.int64)
        ids = {}
        for label, root in enumerate(roots):
            if self.fixed[root]:
                continue
            out[label] = ids.setdefault(int(root), len(ids))
        return out, len(ids)


# ------------------------------------------------------------------ result
@dataclasses.dataclass
class ChannelGraph:
    """What `analyze` found. Group arrays hold group ids (-1: never pruned)."""

    model: object
    n_groups: int
    kernels: list  # select.KernelSpec, one per kernel variable
    params: list  # select.ParamSpec, one per per-channel parameter variable
    variables: dict  # spec name -> variable
    owners: dict  # spec name -> layer owning the variable
    layer_groups: list  # [(layer name, groups of its output channels)] of producers
    tensor_groups: dict  # id(KerasTensor) -> groups of its channel axis
    nodes: list  # the model's nodes, inputs first

    def specs(self):
        return list(self.kernels) + list(self.params)

    def producer_groups(self):
        return [g for _, g in self.layer_groups]

    def prunable_variables(self):
        """Variables with at least one prunable channel (what channel pruning masks)."""
        out = []
        for spec in self.kernels:
            if any(np.any(g >= 0) for _, g in spec.axes()):
                out.append(self.variables[spec.name])
        for spec in self.params:
            if spec.role != "slice" and np.any(spec.groups >= 0):
                out.append(self.variables[spec.name])
        return out


def _short(variable):
    return variable.name.split("/")[-1].split(":")[0]


def _shape(tensor):
    return tuple(tensor.shape.as_list()) if hasattr(tensor.shape, "as_list") \
        else tuple(tensor.shape)


def _positions(shape):
    """Product of the dims between batch and channels (unknown dims count 1)."""
    return int(np.prod([1 if d is None else int(d) for d in shape[1:-1]], dtype=np.int64))


def _zero_preserving(layer, channels):
    """True if the elementwise `layer` maps 0 to 0 (checked on a zero tensor)."""
    try:
        out = layer(tf.zeros([1, max(int(channels), 1)], layer.compute_dtype or "float32"))
        return bool(np.all(np.asarray(tf.cast(out, tf.float32)) == 0))
    except Exception:  # noqa: BLE001  (cannot evaluate: treat as changing zeros)
        return False


class _Analysis:
    """One walk over a model's nodes (see the module doc)."""

    def __init__(self, model, exclude):
        self.model = model
        self.exclude = exclude
        self.labels = _Labels()
        self.tensor_labels = {}
        self.specs = {}  # id(variable) -> [kind, variable, layer, axes/labels..., positions]
        self.order = []  # ids of variables in first-seen order
        self.producers = {}  # id(layer) -> (layer, labels)
        self.bound = {}  # (id(layer), key) -> labels
        self.unknown = []  # (layer, labels of its inputs): must end up fixed

    def bind(self, layer, key, labels):
        """The labels `layer` uses under `key`: the first call's; later calls of a
        shared layer are united with them index-wise."""
        k = (id(layer), key)
        if k not in self.bound:
            self.bound[k] = np.asarray(labels, np.int64)
        else:
            self.labels.union_all(self.bound[k], labels)
        return self.bound[k]

    def producer(self, layer, n):
        if id(layer) not in self.producers:
            self.producers[id(layer)] = (layer, self.labels.new(n))
        return self.producers[id(layer)][1]

    def kernel(self, layer, variable, in_axis, in_labels, out_axis, out_labels, positions):
        key = id(variable)
        if key not in self.specs:
            self.order.append(key)
            self.specs[key] = dict(kind="kernel", variable=variable, layer=layer,
                                   in_axis=in_axis, in_labels=in_labels, out_axis=out_axis,
                                   out_labels=out_labels, positions=0)
        self.specs[key]["positions"] += positions

    def param(self, layer, variable, axis, labels, role):
        key = id(variable)
        if key not in self.specs:
            self.order.append(key)
            self.specs[key] = dict(kind="param", variable=variable, layer=layer, axis=axis,
                                   labels=labels, role=role)

    # ------------------------------------------------------------ per node
    def node(self, node):
        layer = node.layer
        inner = layer.layer if isinstance(layer, _compat.PruneLowMagnitude) else layer
        outputs = tf.nest.flatten(node.outputs)
        inputs = list(node.keras_inputs)
        in_labels = [self.tensor_labels[id(t)] for t in inputs]
        kind = kind_of(inner)
        if kind == "input":
            for t in outputs:
                self.tensor_labels[id(t)] = self.labels.new(_channels(t), fixed=True)
            return
        if kind == "model":
            raise UnsupportedGraphError(
                f"channel pruning cannot analyse the nested model {inner.name!r} "
                f"({type(inner).__name__}): build the model flat (call the inner model's "
                "layers on the outer model's tensors) or exclude it")
        if self.exclude(inner):
            kind = "barrier"
        if len(outputs) != 1 and kind != "barrier":
            kind = None
        if kind is None:
            self.unknown.append((inner, in_labels))
            for t in outputs:
                self.tensor_labels[id(t)] = self.labels.new(_channels(t), fixed=True)
            return
        out = _PROPAGATE[kind](self, inner, node, inputs, in_labels, outputs)
        if kind == "barrier":
            return
        if len(out) != _channels(outputs[0]):
            raise UnsupportedGraphError(
                f"channel pruning: layer {inner.name!r} ({type(inner).__name__}) gave "
                f"{len(out)} channel labels for an output with {_channels(outputs[0])} "
                "channels (a bug, please report it)")
        self.tensor_labels[id(outputs[0])] = out

    def check_unknown(self):
        for layer, in_labels in self.unknown:
            live = [i for i, labels in enumerate(in_labels)
                    if any(not self.labels.fixed[self.labels.find(int(x))] for x in labels)]
            if live:
                raise UnsupportedGraphError(
                    f"channel pruning cannot analyse layer {layer.name!r} "
                    f"({type(layer).__name__}): an unknown layer (or an unsupported "
                    f"setting) on prunable channels. Supported: {SUPPORTED}. Pass "
                    f"exclude=[{layer.name!r}] to keep its input and output channels "
                    "unpruned.")


def _channels(tensor):
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
    width = _channels(outputs[0])
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
    width = _channels(outputs[0])
    if width % len(labels) == 0:
        return np.tile(labels, width // len(labels))
    return _prop_barrier(a, layer, node, inputs, in_labels, outputs)


def _prop_channel_pad(a, layer, node, inputs, in_labels, outputs):
    labels = in_labels[0]
    if isinstance(layer, channel_layers.ChannelZeroPad):
        left, right = layer.left, layer.right
    else:  # ZeroPadShortcut: the new channels evenly on both sides
        extra = _channels(outputs[0]) - len(labels)
        left, right = extra // 2, extra - extra // 2
    # Always-zero channels: labels with no weights, merged by the Add that follows.
    return np.concatenate([a.labels.new(left), labels, a.labels.new(right)])


def _prop_barrier(a, layer, node, inputs, in_labels, outputs):
    for labels in in_labels:
        a.labels.fix(labels)
    for t in outputs:
        a.tensor_labels[id(t)] = a.labels.new(_channels(t), fixed=True)
    return a.tensor_labels[id(outputs[0])]


_PROPAGATE = {
    "conv": _prop_conv, "dense": _prop_dense, "depthwise": _prop_depthwise,
    "separable": _prop_separable, "batchnorm": _prop_batchnorm, "prelu": _prop_prelu,
    "activation": _prop_activation, "identity": _prop_identity, "spatial": _prop_identity,
    "merge": _prop_merge, "concat": _prop_concat, "flatten": _prop_reshape,
    "reshape": _prop_reshape, "channel_pad": _prop_channel_pad, "barrier": _prop_barrier,
}


def graph_nodes(model):
    """The nodes of a functional or Sequential model, inputs first."""
    if not getattr(model, "_is_graph_network", False):
        raise UnsupportedGraphError(
            f"channel pruning needs a functional or Sequential model (its layer graph), got "
            f"{type(model).__name__} {model.name!r}: a subclassed model's call() cannot be "
            "analysed. Build it with the functional API (keras.Model(inputs, outputs)).")
    by_depth = model._nodes_by_depth  # noqa: SLF001
    return [n for depth in sorted(by_depth, reverse=True) for n in by_depth[depth]]


def exclusion(model, exclude):
    """A predicate layer -> bool from `exclude` (layer names and classes, one or a list)."""
    if exclude is None:
        return lambda layer: False
    items = list(exclude) if isinstance(exclude, (list, tuple, set)) else [exclude]
    names = {layer.name for layer in model.layers}
    for item in items:
        if isinstance(item, str):
            if item not in names:
                raise ValueError(f"exclude names no layer of model {model.name!r}: {item!r}")
        elif not (isinstance(item, type) and issubclass(item, _L.Layer)):
            raise ValueError("exclude must be layer names or layer classes with "
                             f"granularity='channel', got {item!r}")
    return lambda layer: any(layer.name == i if isinstance(i, str) else isinstance(layer, i)
                             for i in items)


def analyze(model, exclude=None):
    """The `ChannelGraph` of a built functional/Sequential tf-keras `model`.

    `exclude`: layer names or classes whose input and output channels are never
    pruned. Raises `UnsupportedGraphError` (a ValueError) naming what it cannot
    analyse.
    """
    _compat.check_tf_keras_model(model)
    nodes = graph_nodes(model)
    walk = _Analysis(model, exclusion(model, exclude))
    for node in nodes:
        walk.node(node)
    for t in model.outputs:  # the network's outputs keep all their channels
        walk.labels.fix(walk.tensor_labels[id(t)])
    walk.check_unknown()
    label_group, n_groups = walk.labels.groups()

    def groups(labels):
        return None if labels is None else label_group[np.asarray(labels, np.int64)]

    kernels, params, variables, owners = [], [], {}, {}
    used = set()
    for key in walk.order:
        s = walk.specs[key]
        variable, layer = s["variable"], s["layer"]
        name = f"{layer.name}/{_short(variable)}"
        while name in used:
            name += "'"
        used.add(name)
        variables[name], owners[name] = variable, layer
        shape = tuple(int(d) for d in variable.shape)
        if s["kind"] == "kernel":
            kernels.append(select.KernelSpec(
                name, shape, s["in_axis"], groups(s["in_labels"]), s["out_axis"],
                groups(s["out_labels"]), max(int(s["positions"]), 1)))
        else:
            params.append(select.ParamSpec(name, shape, s["axis"], groups(s["labels"]),
                                           s["role"]))
    layer_groups = [(layer.name, groups(labels)) for layer, labels in walk.producers.values()]
    tensor_groups = {key: groups(labels) for key, labels in walk.tensor_labels.items()}
    return ChannelGraph(model, n_groups, kernels, params, variables, owners, layer_groups,
                        tensor_groups, nodes)
