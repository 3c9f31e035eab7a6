"""FLOPs accounting, dense vs pruned, as the paper's tables count them.

Convention (multiply-adds, batch 1, at the model's input size):

- Conv (1D/2D/3D, incl. grouped): kernel weights x output positions
  (``prod(kernel.shape) * prod(output spatial dims)``); DepthwiseConv the same with
  the depthwise kernel; SeparableConv the sum of its depthwise and pointwise parts;
  Conv2DTranspose: kernel weights x input positions.
- Dense: ``in x out`` (times the leading non-batch dims for higher-rank inputs);
  EinsumDense (MultiHeadAttention's projections): kernel weights x the positions it
  is applied at; LocallyConnected: its kernel weights.
- RNN cells (LSTM, GRU, SimpleRNN, also in Bidirectional): kernel and recurrent
  kernel weights x time steps; TimeDistributed: the inner layer's count x steps.
- Embedding: 0 (a lookup); a custom `PrunableLayer`'s weights: 0 (kind "other").
  Unknown dims (variable time steps) count as 1.
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
from tf_globalmp import weights as weights_lib

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


def _kind(layer):
    """How a weight of `layer` (its owner) is used: conv, dense, rnn, ... or None."""
    for cls, kind in ((_layers.SeparableConv1D, "separable"), (_layers.SeparableConv2D, "separable"),
                      (_layers.DepthwiseConv1D, "depthwise"), (_layers.DepthwiseConv2D, "depthwise"),
                      (_layers.Conv1DTranspose, "conv_t"), (_layers.Conv2DTranspose, "conv_t"),
                      (_layers.Conv3DTranspose, "conv_t"),
                      (_layers.Conv1D, "conv"), (_layers.Conv2D, "conv"), (_layers.Conv3D, "conv"),
                      (_layers.Dense, "dense"), (_layers.EinsumDense, "einsum"),
                      (_layers.Embedding, "embedding"),
                      (_layers.LocallyConnected1D, "local"), (_layers.LocallyConnected2D, "local")):
        if isinstance(layer, cls):
            return kind
    if getattr(layer, "recurrent_kernel", None) is not None:
        return "rnn"  # an RNN cell: each weight used once per time step
    return None


def _strip_batch(shape):
    """Without the batch dim; unknown dims (e.g. variable time steps) count as 1."""
    return tuple(1 if d is None else int(d) for d in shape[1:])


def einsum_positions(equation, input_shape):
    """Positions an EinsumDense kernel is applied at: the product of the input's
    (non-batch) dims the kernel does not contract; `input_shape` without batch."""
    inputs, kernel = equation.split("->")[0].split(",")
    if inputs.startswith("..."):
        tail = inputs[3:]
        lead = input_shape[:len(input_shape) - len(tail)]
        dims = list(zip(tail, input_shape[len(lead):]))
        positions = int(np.prod(lead, dtype=np.int64))
    else:
        dims = list(zip(inputs[1:], input_shape))  # inputs[0] is the batch
        positions = 1
    return positions * int(np.prod([d for ch, d in dims if ch not in kernel], dtype=np.int64))


def _weight_macs(kind, owner, size, shape, in_shape, out_shape):
    """Dense multiply-adds of one use of a weight (shapes of the owner's call)."""
    if kind == "dense":
        return dense_macs(shape, out_shape[:-1])
    if kind == "einsum":
        return size * einsum_positions(owner.equation, in_shape)
    if kind == "conv_t":
        return conv_macs(shape, in_shape[:-1])
    if kind in ("conv", "depthwise", "separable"):
        return conv_macs(shape, out_shape[:-1])
    if kind in ("rnn", "local"):
        return size
    return 0  # embedding: a lookup; unknown owners (PrunableLayers): not counted


def _first_shape(shape):
    """The first tensor's shape of a (nested) shape structure, as a TensorShape."""
    if isinstance(shape, dict):
        shape = next(iter(shape.values()))
    if isinstance(shape, (list, tuple)) and shape and not isinstance(shape[0], (int, type(None))):
        shape = shape[0]
    return _compat.tf.TensorShape(shape)


def _build_shapes(layer):
    """(input, output) shapes without batch of a built layer's (first) call."""
    built = getattr(layer, "_build_input_shape", None)
    if built is None:
        return None, None
    shape = _first_shape(built)
    try:
        out = _strip_batch(_first_shape(layer.compute_output_shape(shape)).as_list())
    except Exception:  # noqa: BLE001  (layers that need more than one shape)
        out = None
    return _strip_batch(shape.as_list()), out


def _weight_row(pw, unit_in, unit_out):
    """The LayerFlops row of one prunable weight; unit shapes from its graph node."""
    owner, unit = pw.owner, pw.unit
    kind = _kind(owner) or "other"
    value = pw.effective()
    repeat = 1
    if owner is unit:
        in_shape, out_shape = unit_in, unit_out
    else:
        in_shape, out_shape = _build_shapes(owner)
        if isinstance(unit, (_layers.TimeDistributed, _layers.RNN, _layers.Bidirectional)) \
                and unit_in:
            repeat = int(unit_in[0])  # time steps: the sublayer runs once per step
    if in_shape is None or (out_shape is None and kind in ("dense", "conv", "depthwise",
                                                            "separable")):
        macs = 0
    else:
        macs = repeat * _weight_macs(kind, owner, value.size, value.shape, in_shape, out_shape)
    return LayerFlops(pw.label, kind, int(value.size), int(np.count_nonzero(value)), int(macs))


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


def _units_below(layer):
    """Layers reachable from `layer` (itself included), wrappers as their inner layer."""
    out, stack, seen = [], [layer], set()
    while stack:
        l = stack.pop()
        if id(l) in seen:
            continue
        seen.add(id(l))
        out.append(l.layer if isinstance(l, prune.PruneLowMagnitude) else l)
        if not isinstance(l, prune.PruneLowMagnitude):
            stack.extend(reversed(registry.children(l)))
    return out


def _rows(model, by_unit, done):
    rows = []
    for node in _nodes(model):
        layer = node.layer
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model) and getattr(layer, "_is_graph_network", False):
            rows += _rows(layer, by_unit, done)
            continue
        unit = layer.layer if isinstance(layer, prune.PruneLowMagnitude) else layer
        if id(unit) in by_unit:
            in_shape, out_shape = _shapes(node.input_shapes), _shapes(node.output_shapes)
            rows += [_weight_row(pw, in_shape, out_shape) for pw in by_unit[id(unit)]]
            done.add(id(unit))
        elif isinstance(unit, _AVERAGE_POOLS):
            rows.append(LayerFlops(unit.name, "avgpool", 0, 0,
                                   pooling_ops(_shapes(node.input_shapes))))
        else:  # a custom layer or subclassed model: its units' first-call shapes
            for inner in _units_below(unit):
                if id(inner) in by_unit and inner is not unit:
                    for pw in by_unit[id(inner)]:
                        rows.append(_weight_row(pw, *_build_shapes(inner)))
                    done.add(id(inner))
    return rows


def flops_report(model, prunable=None, exclude=None):
    """Per-weight dense and sparse multiply-adds of `model` (see the module docstring).

    Counts exactly the weights the pruner prunes (`weights.prunable_weights_of_model`,
    the rows of `sparsity_report`) plus average pooling. Densities come from the
    model's weights: weight x mask when wrapped, the nonzero entries otherwise.
    Embeddings count 0 multiply-adds (a lookup), RNN kernels one use per time step,
    MultiHeadAttention projections one per position; a custom `PrunableLayer`'s
    weights are listed with 0 (kind "other").
    """
    _compat.check_tf_keras_model(model)
    _nodes(model)  # functional or Sequential only
    prunables = weights_lib.prunable_weights_of_model(model, prunable, exclude)
    by_unit = {}
    for pw in prunables:
        by_unit.setdefault(id(pw.unit), []).append(pw)
    done = set()
    rows = _rows(model, by_unit, done)
    for pw in prunables:  # reached by no node (e.g. inside a Lambda): first-call shapes
        if id(pw.unit) not in done:
            rows.append(_weight_row(pw, *_build_shapes(pw.unit)))
    if not any(r.weights for r in rows):
        raise ValueError(f"model {model.name!r} has no prunable weight to count")
    return FlopsReport(tuple(rows))


def summary(report):
    """The numbers for metrics.json: dense / sparse FLOPs and the fraction pruned."""
    return {"dense_flops": report.dense, "sparse_flops": round(report.sparse),
            "flops_pruned": report.pruned_fraction}
