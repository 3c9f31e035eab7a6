"""FLOPs accounting, dense vs pruned, as the paper's tables count them.

Convention (multiply-adds, batch 1, at the model's input size):

- Conv (1D/2D/3D, incl. grouped): kernel weights x output positions
  (``prod(kernel.shape) * prod(output spatial dims)``); DepthwiseConv the same with
  the depthwise kernel; SeparableConv the sum of its depthwise and pointwise parts;
  Conv2DTranspose: kernel weights x input positions.
- Dense: ``in x out`` (times the leading non-batch dims for higher-rank inputs).
- Average pooling (global or not): one add per input element; it is never pruned.
- Not counted: biases, BatchNorm, activations, additions, max pooling, padding.

Sparse FLOPs = sum over prunable layers of density_l x FLOPs_l, plus the (unpruned)
average pooling; "FLOPs pruned" = 1 - sparse / dense.

This reproduces the paper's numbers exactly: ResNet-50 v1.5 at 224x224 has
4,089,184,256 conv + fc multiply-adds plus 100,352 = 7 x 7 x 2,048 for the global
average pool: 4,089,284,608. (Adding BN, ReLU, max pooling or biases gives other
totals.) MobileNet-V1 (alpha 1.0) has 568,740,352 conv + classifier multiply-adds
plus 50,176 = 7 x 7 x 1,024 for its average pool: 568,790,528 ("569M").

The model must be functional or Sequential (so every layer's output shape is
known); plain, stripped and wrapped (`prune_low_magnitude_global`) models work,
nested models and shared layers (counted once per call) included.
"""

import dataclasses
import json

import numpy as np

from tf_globalmp import _compat
from tf_globalmp import prune
from tf_globalmp import registry

keras = _compat.keras
_layers = keras.layers
_AVERAGE_POOLS = (
    _layers.GlobalAveragePooling1D, _layers.GlobalAveragePooling2D,
    _layers.GlobalAveragePooling3D, _layers.AveragePooling1D, _layers.AveragePooling2D,
    _layers.AveragePooling3D,
)


# ---------------------------------------------------------------- pure counts
def conv_macs(kernel_shape, output_shape):
    """Kernel weights x output positions; `output_shape` without batch and channels."""
    return int(np.prod(kernel_shape, dtype=np.int64) * np.prod(output_shape, dtype=np.int64))


def dense_macs(kernel_shape, leading_shape=()):
    """in x out, times the positions of a higher-rank input (`leading_shape`)."""
    return int(np.prod(kernel_shape, dtype=np.int64) * np.prod(leading_shape, dtype=np.int64))


def pooling_ops(input_shape):
    """One add per input element (average pooling); `input_shape` without batch."""
    return int(np.prod(input_shape, dtype=np.int64))


# ---------------------------------------------------------------- report
@dataclasses.dataclass(frozen=True)
class LayerFlops:
    """One counted op: a prunable weight (kind conv/depthwise/dense/...) or a pooling."""

    name: str
    kind: str
    weights: int  # prunable weights (0 for pooling)
    nonzero: int
    macs: int  # dense multiply-adds

    @property
    def density(self):
        return self.nonzero / self.weights if self.weights else 1.0

    @property
    def sparse_macs(self):
        return self.density * self.macs

    def to_dict(self):
        return {"name": self.name, "kind": self.kind, "weights": self.weights,
                "nonzero": self.nonzero, "density": self.density, "macs": self.macs,
                "sparse_macs": self.sparse_macs}


@dataclasses.dataclass(frozen=True)
class FlopsReport:
    rows: tuple

    @property
    def dense(self):
        return int(sum(r.macs for r in self.rows))

    @property
    def sparse(self):
        return float(sum(r.sparse_macs for r in self.rows))

    @property
    def pruned_fraction(self):
        """The paper's "FLOPs pruned": 1 - sparse / dense."""
        return 1.0 - self.sparse / self.dense if self.dense else 0.0

    def to_dict(self):
        return {"dense_flops": self.dense, "sparse_flops": self.sparse,
                "flops_pruned": self.pruned_fraction,
                "layers": [r.to_dict() for r in self.rows]}

    def to_json(self, indent=2):
        return json.dumps(self.to_dict(), indent=indent)

    def to_table(self):
        width = max([len(r.name) for r in self.rows] + [len("layer")])
        head = f"{'layer':<{width}}  {'kind':<10} {'MACs':>14} {'density':>8} {'sparse MACs':>14}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.name:<{width}}  {r.kind:<10} {r.macs:>14,d} {r.density:>8.4f} "
                         f"{r.sparse_macs:>14,.0f}")
        lines += ["-" * len(head),
                  f"{'total':<{width}}  {'':<10} {self.dense:>14,d} {'':>8} {self.sparse:>14,.0f}",
                  f"FLOPs pruned: {100 * self.pruned_fraction:.2f}%"]
        return "\n".join(lines)

    def __str__(self):
        return self.to_table()


def _label(layer_name, weight):
    return f"{layer_name}/{weight.name.split('/')[-1].split(':')[0]}"


def _kind(layer):
    for cls, kind in ((_layers.SeparableConv1D, "separable"), (_layers.SeparableConv2D, "separable"),
                      (_layers.DepthwiseConv1D, "depthwise"), (_layers.DepthwiseConv2D, "depthwise"),
                      (_layers.Conv2DTranspose, "conv_t"), (_layers.Conv3DTranspose, "conv_t"),
                      (_layers.Conv1D, "conv"), (_layers.Conv2D, "conv"), (_layers.Conv3D, "conv"),
                      (_layers.Dense, "dense")):
        if isinstance(layer, cls):
            return kind
    return None


def _strip_batch(shape):
    return tuple(int(d) for d in shape[1:])


def _weight_rows(layer, name, weights, in_shape, out_shape):
    """Rows for the prunable `weights` (effective arrays) of one call of `layer`."""
    kind = _kind(layer)
    if kind is None:
        raise ValueError(f"layer {name!r} ({type(layer).__name__}) is prunable but its FLOPs "
                         "are not defined here (conv, depthwise, separable and dense are)")
    rows = []
    for label, value in weights:
        if kind == "dense":
            macs = dense_macs(value.shape, out_shape[:-1])
        elif kind == "conv_t":
            macs = conv_macs(value.shape, in_shape[:-1])
        else:  # conv, depthwise, separable parts: output positions
            macs = conv_macs(value.shape, out_shape[:-1])
        rows.append(LayerFlops(label, kind, int(value.size), int(np.count_nonzero(value)), macs))
    return rows


def _effective(layer):
    """(inner layer, [(label, effective weight array)]) of a wrapped or plain layer."""
    if isinstance(layer, prune.PruneLowMagnitude):
        return layer.layer, [
            (_label(layer.layer.name, w), w.numpy() * m.numpy().astype(w.numpy().dtype))
            for w, m, _ in layer.pruning_vars]
    return layer, [(_label(layer.name, w), w.numpy()) for w in registry.prunable_weights(layer)]


def _nodes(model):
    if not getattr(model, "_is_graph_network", False):
        raise ValueError(
            f"flops_report needs a functional or Sequential model with known shapes, got "
            f"{type(model).__name__} {model.name!r}")
    by_depth = model._nodes_by_depth
    return [n for depth in sorted(by_depth, reverse=True) for n in by_depth[depth]]


def _shapes(shapes):
    if isinstance(shapes, (list, tuple)) and shapes and isinstance(shapes[0], (list, tuple)):
        return _strip_batch(shapes[0])  # first tensor (layers here have one input)
    return _strip_batch(shapes)


def _rows(model):
    rows = []
    for node in _nodes(model):
        layer = node.layer
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            rows += _rows(layer)
            continue
        inner, weights = _effective(layer)
        if weights:
            rows += _weight_rows(inner, inner.name, weights, _shapes(node.input_shapes),
                                 _shapes(node.output_shapes))
        elif isinstance(inner, _AVERAGE_POOLS):
            rows.append(LayerFlops(inner.name, "avgpool", 0, 0,
                                   pooling_ops(_shapes(node.input_shapes))))
    return rows


def flops_report(model):
    """Per-layer dense and sparse multiply-adds of `model` (see the module docstring).

    Densities come from the model's weights: for wrapped models weight x mask, for
    stripped or plain models the nonzero kernel entries.
    """
    _compat.check_tf_keras_model(model)
    rows = _rows(model)
    if not any(r.weights for r in rows):
        raise ValueError(f"model {model.name!r} has no conv or dense layer to count")
    return FlopsReport(tuple(rows))


def summary(report):
    """The numbers for metrics.json: dense / sparse FLOPs and the fraction pruned."""
    return {"dense_flops": report.dense, "sparse_flops": round(report.sparse),
            "flops_pruned": report.pruned_fraction}
