"""`shrink(model)`: a physically smaller functional model without the zero channels.

From a channel-pruned, stripped model (`strip_pruning` of a model wrapped with
`granularity="channel"`), or any functional/Sequential tf-keras model with dead
channels: a channel group is *dead* when every tensor channel in it is zero for any
input -- its producers' output kernel slices, biases, depthwise biases and BatchNorm
gamma/beta are all exactly zero (`dead_groups`). Removing a dead group changes
nothing: consumers only lose input slices that multiply zeros. Every layer is
rebuilt from its config with the surviving channels (fewer filters/units, narrower
consumers, BatchNorm and biases sliced); an option-A ResNet shortcut whose padded
zero channels were partly removed becomes a `ChannelZeroPad` with the remaining
left/right padding. Every tensor keeps at least one channel (a layer whose channels
are all dead keeps one zero channel), so the model stays well-formed.

The outputs equal the input model's up to float rounding (tests: max relative
difference <= 1e-5 in float32). Models `channels.graph` cannot analyse are refused
with a message naming the layer.
"""

import numpy as np
from absl import logging

from tf_globalmp import _compat
from tf_globalmp import guards
from tf_globalmp.channels import graph as graph_lib
from tf_globalmp.channels import layer_rules
from tf_globalmp.channels import layers as channel_layers
from tf_globalmp.channels import select

keras = _compat.keras
tf = _compat.tf


def _group_values(spec, value):
    """(group ids, per-index max |value| over the other axes) along each spec axis."""
    out = []
    axes = spec.axes() if isinstance(spec, select.KernelSpec) else [(spec.axis, spec.groups)]
    for axis, groups in axes:
        other = tuple(a for a in range(value.ndim) if a != axis)
        out.append((axis, groups, np.abs(value).max(axis=other) if other else np.abs(value)))
    return out


def dead_groups(graph):
    """Bool (n_groups,): groups whose channels are zero for any input (see module doc)."""
    dead = np.ones(graph.n_groups, bool)
    for spec in graph.kernels:
        if spec.out_axis is None:
            continue
        value = np.asarray(graph.variables[spec.name].numpy(), np.float64)
        other = tuple(a for a in range(value.ndim) if a != spec.out_axis)
        live = np.abs(value).max(axis=other) > 0
        groups = spec.out_groups
        dead[groups[(groups >= 0) & live]] = False
    for spec in graph.params:
        if spec.role != "bias":
            continue
        value = np.asarray(graph.variables[spec.name].numpy(), np.float64)
        live = np.abs(value) > 0 if value.ndim == 1 else \
            np.abs(value).max(axis=tuple(range(value.ndim - 1))) > 0
        groups = spec.groups
        dead[groups[(groups >= 0) & live]] = False
    return dead


def kept_groups(graph, dead):
    """Bool keep: not dead, plus the first group of any tensor that would lose all its
    channels (so every tensor keeps at least one)."""
    keep = ~np.asarray(dead, bool)
    changed = True
    while changed:
        changed = False
        for groups in graph.tensor_groups.values():
            if len(groups) and not np.any((groups < 0) | keep[np.maximum(groups, 0)]):
                keep[groups[0]] = True
                changed = True
    return keep


def _kept_indices(groups, keep):
    groups = np.asarray(groups)
    return np.flatnonzero((groups < 0) | keep[np.maximum(groups, 0)])


def _sliced(value, spec, keep):
    for axis, groups in (spec.axes() if isinstance(spec, select.KernelSpec)
                         else [(spec.axis, spec.groups)]):
        value = np.take(value, _kept_indices(groups, keep), axis=axis)
    return value


class _Rebuild:
    def __init__(self, graph, keep):
        self.graph = graph
        self.keep = keep
        self.spec_of = {id(graph.variables[s.name]): s for s in graph.specs()}
        self.tensors = {}  # id(old KerasTensor) -> new KerasTensor
        self.layers = {}  # id(old layer) -> new layer

    def kept(self, tensor):
        return _kept_indices(self.graph.tensor_groups[id(tensor)], self.keep)

    def new_layer(self, layer, node):
        if id(layer) in self.layers:
            return self.layers[id(layer)], False
        config = layer.get_config()
        out = tf.nest.flatten(node.outputs)[0]
        width = len(self.kept(out)) if id(out) in self.graph.tensor_groups else None
        kind = layer_rules.kind_of(layer)
        if kind in ("conv", "separable"):
            config["filters"] = width
        elif kind == "dense":
            config["units"] = width
        elif kind == "reshape" and isinstance(layer, keras.layers.Reshape):
            config["target_shape"] = tuple(config["target_shape"][:-1]) + (width,)
        if kind == "channel_pad":
            groups = self.graph.tensor_groups[id(out)]
            inside = len(self.graph.tensor_groups[id(node.keras_inputs[0])])
            left = layer.left if isinstance(layer, channel_layers.ChannelZeroPad) \
                else (len(groups) - inside) // 2
            kept = (groups < 0) | self.keep[np.maximum(groups, 0)]
            new = channel_layers.ChannelZeroPad(
                layer.stride, int(kept[:left].sum()), int(kept[left + inside:].sum()),
                name=layer.name, dtype=layer.dtype_policy)
        else:
            try:
                new = type(layer).from_config(config)
            except Exception as e:  # noqa: BLE001
                if kind is not None and kind != "barrier":
                    raise
                logging.info("shrink: reusing layer %r (%s: %s)", layer.name,
                             type(e).__name__, e)
                new = layer
        self.layers[id(layer)] = new
        return new, new is not layer

    def node(self, node):
        layer = node.layer
        if isinstance(layer, keras.layers.InputLayer):
            old = tf.nest.flatten(node.outputs)[0]
            new = keras.Input(batch_shape=tuple(old.shape), dtype=old.dtype, name=layer.name)
            self.tensors[id(old)] = new
            return
        new_layer, fresh = self.new_layer(layer, node)

        def swap(x):
            return self.tensors[id(x)] if id(x) in self.tensors else x

        args = tf.nest.map_structure(swap, node.call_args)
        kwargs = tf.nest.map_structure(swap, node.call_kwargs)
        outputs = new_layer(*args, **kwargs)
        if fresh and layer.weights:
            new_layer.set_weights([self.weight(v) for v in layer.weights])
        for old, new in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(outputs)):
            self.tensors[id(old)] = new

    def weight(self, variable):
        value = variable.numpy()
        spec = self.spec_of.get(id(variable))
        return value if spec is None else _sliced(value, spec, self.keep)


def shrink(model):
    """A smaller functional tf-keras model computing what `model` computes.

    `model`: a built functional or Sequential model without pruning wrappers (pass
    `tf_globalmp.strip_pruning(pruned)`), typically channel-pruned. Channel groups
    that are exactly zero are removed (see the module doc); the new model has new
    layers (the input model is not changed). Raises `channels.graph`'s
    UnsupportedGraphError (a ValueError naming the layer) on a graph it cannot analyse.
    """
    _compat.check_tf_keras_model(model)
    if guards.has_wrappers(model):
        raise ValueError(f"model {model.name!r} holds pruning wrappers: shrink "
                         "tf_globalmp.strip_pruning(model) instead")
    graph = graph_lib.analyze(model)
    dead = dead_groups(graph)
    keep = kept_groups(graph, dead)
    rebuild = _Rebuild(graph, keep)
    for node in graph.nodes:
        rebuild.node(node)
    inputs = [rebuild.tensors[id(t)] for t in model.inputs]
    outputs = [rebuild.tensors[id(t)] for t in model.outputs]
    new = keras.Model(inputs if len(inputs) > 1 else inputs[0],
                      outputs if len(outputs) > 1 else outputs[0], name=model.name)
    costs = select.costs(keep, graph.kernels, graph.producer_groups())
    logging.info(
        "shrink %r: %d of %d channel groups removed (%d of %d channels), parameters "
        "%d -> %d, kernel FLOPs %d -> %d", model.name, graph.n_groups - int(keep.sum()),
        graph.n_groups, costs.channels - costs.channels_kept, costs.channels,
        model.count_params(), new.count_params(), costs.flops, costs.flops_kept)
    return new
