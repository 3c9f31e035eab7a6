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
from tf_globalmp.channels import layer_rules
from tf_globalmp.channels import select

keras = _compat.keras
tf = _compat.tf

# Raised by `analyze` (and the layer rules), naming the layer it cannot analyse.
UnsupportedGraphError = layer_rules.UnsupportedGraphError


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
        kind = layer_rules.kind_of(inner)
        if kind == "input":
            for t in outputs:
                self.tensor_labels[id(t)] = self.labels.new(layer_rules.channels(t), fixed=True)
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
                self.tensor_labels[id(t)] = self.labels.new(layer_rules.channels(t), fixed=True)
            return
        out = layer_rules.PROPAGATE[kind](self, inner, node, inputs, in_labels, outputs)
        if kind == "barrier":
            return
        if len(out) != layer_rules.channels(outputs[0]):
            raise UnsupportedGraphError(
                f"channel pruning: layer {inner.name!r} ({type(inner).__name__}) gave "
                f"{len(out)} channel labels for an output with {layer_rules.channels(outputs[0])} "
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
                    f"setting) on prunable channels. Supported: {layer_rules.SUPPORTED}. Pass "
                    f"exclude=[{layer.name!r}] to keep its input and output channels "
                    "unpruned.")




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
        elif not (isinstance(item, type) and issubclass(item, keras.layers.Layer)):
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
