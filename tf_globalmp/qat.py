"""Sparsity-preserving quantization-aware training: int8 models that stay sparse.

`sparsity_preserving_qat(model)` turns a pruned (stripped, or still wrapped) tf-keras
model into tfmot's 8-bit quantization-aware model whose pruned weights stay exactly
zero. It is tfmot's `Default8BitQuantizeScheme` (the layout transforms, BatchNorm
handling and quantizers the TFLite converter expects) with one change: the weight
quantizer of every kernel holding zeros first multiplies the kernel by a 0/1
sparsity mask, `kernel * mask`, inside the layer's call.

So, in every training batch, on every replica of a `tf.distribute` strategy:
- what the layer computes with (and what the TFLite converter folds into the int8
  file) is exactly zero at the pruned positions, whatever the kernel variable holds;
- the gradient reaching a pruned weight is exactly zero, so the kernel variable
  itself stays exactly zero under any optimizer whose step is zero for a zero
  gradient from zero state, as the tf-keras ones (a coupled L2 penalty has gradient
  0 at 0, AdamW's decoupled decay multiplies by the weight; tested: SGD + Nesterov +
  coupled L2, AdamW; `tests/qat_test.py`).
The mask is a non-trainable weight of the layer's `QuantizeWrapper`: it is saved with
h5 files and `tf.train.Checkpoint`s and restored with them, so a resumed or reloaded
QAT model keeps preserving the same zeros.

What tfmot's own `tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme`
(tfmot 0.8) does differently, and when its zeros do not survive:
- its mask is a constant computed from the weights when a wrapper is *built*
  (`divide_no_nan(w, w)`) and its quantize config serializes without the
  prune-preserving quantizer: a model rebuilt from its config (h5 `load_model`,
  `clone_model`) trains with the plain quantizer and the pruned weights grow back in
  the first batch. Before that, Conv2D and Dense kernels keep their zeros.
- DepthwiseConv2D kernels are explicitly not preserved (`_DISABLE_PRUNE_PRESERVE`):
  Global MP prunes them, and they become dense during QAT.
- layers outside its registry (any custom layer, e.g. a weightless option-A
  shortcut) make `quantize_apply` fail; here weightless ones pass through.

BatchNorm: as tfmot does, a Conv2D/DepthwiseConv2D (or Dense) followed by
BatchNormalization gets no fake-quant between the two during QAT (the kernel is
fake-quantized per output channel, the BatchNorm output per tensor); the TFLite
converter folds the BatchNorm into the int8 kernel and bias, `w * gamma /
sqrt(var + eps)` per output channel, so folded zeros stay zeros.
"""

import numpy as np
from absl import logging

from tf_globalmp import _compat
from tf_globalmp import prune
from tf_globalmp import report
from tf_globalmp import serializables
from tf_globalmp import wrapping

keras = _compat.keras
_quant = _compat.tfmot.quantization.keras
_default_8bit = _quant.default_8bit

MASK_SUFFIX = "_sparsity_mask"
# Weight names the pruning policy prunes (registry.py); a zero in one is a pruned weight.
_PRUNABLE_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel", "recurrent_kernel",
                   "embeddings")
_MASK_KEY = "sparsity_mask"


def _weight_name(variable):
    """'kernel' for 'conv/kernel:0' (tfmot's `QuantizeWrapper._weight_name`)."""
    return variable.name.split(":")[0].split("/")[-1]


def nonzero_mask(values):
    """The 0/1 float32 mask of the nonzero entries of `values`; pure."""
    return (np.asarray(values) != 0).astype(np.float32)


class SparsityMaskedQuantizer(_quant.quantizers.Quantizer):
    """Wraps a tfmot weight quantizer: quantizes `weight * mask`.

    `build` adds the mask as a non-trainable weight of the quantize wrapper (named
    `<weight>_sparsity_mask`), initialised from `initial_mask` (all ones when None:
    a model rebuilt from its config, whose saved mask is then restored).
    """

    def __init__(self, quantizer, initial_mask=None):
        self.quantizer = quantizer
        self.initial_mask = initial_mask

    def build(self, tensor_shape, name, layer):
        weights = dict(self.quantizer.build(tensor_shape, name, layer))
        if self.initial_mask is None:
            initializer = keras.initializers.Ones()
        else:
            initial = np.asarray(self.initial_mask, np.float32)
            if tuple(initial.shape) != tuple(tensor_shape):
                raise ValueError(f"initial_mask of {layer.name}/{name} must have shape "
                                 f"{tuple(tensor_shape)}, got {initial.shape}")
            initializer = keras.initializers.Constant(initial)
        weights[_MASK_KEY] = layer.add_weight(
            name + MASK_SUFFIX, shape=tensor_shape, initializer=initializer,
            trainable=False)
        return weights

    def __call__(self, inputs, training, weights, **kwargs):
        inner = {k: v for k, v in weights.items() if k != _MASK_KEY}
        return self.quantizer(inputs * weights[_MASK_KEY], training, inner, **kwargs)

    def get_config(self):
        raise NotImplementedError("SparsityMaskedQuantizer is made by "
                                  "SparsityPreservingQuantizeConfig, which is serialized")


@keras.utils.register_keras_serializable(package="tf_globalmp")
class SparsityPreservingQuantizeConfig(_quant.QuantizeConfig):
    """A tfmot `QuantizeConfig` whose quantizers of `masked_weights` (weight names such
    as "kernel") multiply by the layer's sparsity mask first; everything else is the
    wrapped `config` (tfmot's 8-bit config of the layer)."""

    def __init__(self, config, masked_weights, initial_masks=None):
        if isinstance(config, dict):
            with _quant.quantize_scope():
                config = keras.utils.deserialize_keras_object(config)
        self.config = config
        self.masked_weights = tuple(masked_weights)
        self.initial_masks = dict(initial_masks or {})

    def get_weights_and_quantizers(self, layer):
        pairs = []
        for weight, quantizer in self.config.get_weights_and_quantizers(layer):
            name = _weight_name(weight)
            if name in self.masked_weights:
                quantizer = SparsityMaskedQuantizer(quantizer, self.initial_masks.get(name))
            pairs.append((weight, quantizer))
        return pairs

    def get_activations_and_quantizers(self, layer):
        return self.config.get_activations_and_quantizers(layer)

    def set_quantize_weights(self, layer, quantize_weights):
        self.config.set_quantize_weights(layer, quantize_weights)

    def set_quantize_activations(self, layer, quantize_activations):
        self.config.set_quantize_activations(layer, quantize_activations)

    def get_output_quantizers(self, layer):
        return self.config.get_output_quantizers(layer)

    def get_config(self):
        return {"config": keras.utils.serialize_keras_object(self.config),
                "masked_weights": list(self.masked_weights)}


@keras.utils.register_keras_serializable(package="tf_globalmp")
class PassThroughQuantizeConfig(_quant.QuantizeConfig):
    """For a weightless layer tfmot's registry does not know (e.g. the option-A
    zero-pad shortcut): no fake-quant; the converter gives its int8 output the
    input's scale, as for Pad / StridedSlice."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


class _Registry(_default_8bit.Default8BitQuantizeRegistry):
    """tfmot's 8-bit registry; configs of layers in `masks` get sparsity masks."""

    def __init__(self, masks):
        super().__init__()
        self._masks = masks

    def get_quantize_config(self, layer):
        config = super().get_quantize_config(layer)
        masks = self._masks.get(layer.name)
        if not masks:
            return config
        return SparsityPreservingQuantizeConfig(config, sorted(masks), masks)


class SparsityPreservingScheme(_default_8bit.Default8BitQuantizeScheme):
    """tfmot's default 8-bit scheme whose registry masks the kernels in `masks`
    ({layer name: {weight name: 0/1 array}})."""

    def __init__(self, masks):
        super().__init__()
        self._masks = masks

    def get_quantize_registry(self):
        return _Registry(self._masks)


def qat_scope():
    """Scope to load a QAT model saved as h5: tfmot's `quantize_scope` plus this
    module's configs and the package's layers by their class names (tfmot rebuilds
    the layers inside its wrappers without the registered package prefix)."""
    layers = {name.split(">")[-1]: serializables.real_class(name)
              for name in serializables.SERIALIZABLES}
    return _quant.quantize_scope({
        **layers,
        "SparsityPreservingQuantizeConfig": SparsityPreservingQuantizeConfig,
        "PassThroughQuantizeConfig": PassThroughQuantizeConfig,
    })


def is_qat_model(model):
    """True if `model` holds tfmot quantize wrappers (a quantization-aware model)."""
    return any(isinstance(layer, _quant.QuantizeWrapper)
               for layer in model._flatten_layers(include_self=False))  # noqa: SLF001


def quantized_weights(config, layer):
    """Names of the weights of `layer` that `config` quantizes."""
    return [_weight_name(w) for w, _ in config.get_weights_and_quantizers(layer)]


def _plan(model, registry):
    """({layer: {weight: mask}}, {layer: annotation config or None}, problems)."""
    masks, annotations, problems = {}, {}, []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            problems.append(f"{layer.name} (a nested model: call "
                            "sparsity_preserving_qat on a flat functional model)")
            continue
        if registry.supports(layer):
            config = registry.get_quantize_config(layer)
            names = set(quantized_weights(config, layer))
            for weight in layer.weights:
                name = _weight_name(weight)
                values = weight.numpy()
                if not np.any(values == 0):
                    continue
                if name in names:
                    masks.setdefault(layer.name, {})[name] = nonzero_mask(values)
                elif name in _PRUNABLE_NAMES:
                    problems.append(f"{layer.name}/{name} (holds zeros, but tfmot's 8-bit "
                                    "scheme does not quantize it: its zeros would not be kept)")
            annotations[layer.name] = None
        elif isinstance(layer, keras.layers.BatchNormalization):
            annotations[layer.name] = None  # tfmot's transforms fold it into the conv
        elif not layer.weights:
            annotations[layer.name] = PassThroughQuantizeConfig()
        else:
            problems.append(f"{layer.name} ({type(layer).__name__}: not in tfmot's 8-bit "
                            "registry)")
    return masks, annotations, problems


def sparsity_preserving_qat(model):
    """A quantization-aware copy of the pruned `model` whose zeros stay exactly zero.

    Args:
      model: a Sequential or functional tf-keras model, pruned: stripped (its pruned
        weights are zero; `tf_globalmp.strip_pruning`) or still wrapped for pruning
        (stripped here). Every kernel weight that holds zeros keeps them: the mask is
        `kernel != 0` now (a weight that happens to be exactly zero is kept at zero
        too). Layers must be in tfmot's 8-bit registry (Conv2D, DepthwiseConv2D,
        Conv2DTranspose, Dense, BatchNormalization after them, activations, pooling,
        Add, Concatenate, reshaping layers) or have no weights.

    Returns:
      A new tf-keras model (tfmot `QuantizeWrapperV2` layers, weights copied from
      `model`): compile and train it with plain `model.fit` (no pruning callback),
      inside a `tf.distribute` strategy scope if you call this inside one; export it
      with `tf_globalmp.export_tflite(qat, path, quantize="int8")`. Load a saved
      one (h5) under `tf_globalmp.qat.qat_scope()`.

    Raises:
      TypeError for a Keras 3 or non-model argument; ValueError for a subclassed
      model or layers tfmot's 8-bit scheme cannot quantize (named).
    """
    _compat.check_tf_keras_model(model)
    if not (isinstance(model, keras.Sequential) or model._is_graph_network):  # noqa: SLF001
        raise ValueError(f"model must be a Sequential or functional tf-keras model (tfmot's "
                         f"quantize_apply clones it), got subclassed {type(model).__name__} "
                         f"{model.name!r}")
    if is_qat_model(model):
        raise ValueError(f"model {model.name!r} is already quantization-aware")
    if wrapping.collect_wrappers(model):
        model = prune.strip_pruning(model)
    registry = _default_8bit.Default8BitQuantizeRegistry()
    masks, annotations, problems = _plan(model, registry)
    if problems:
        raise ValueError("sparsity_preserving_qat: tfmot's 8-bit scheme cannot quantize "
                         f"{'; '.join(problems)}")

    def annotate(layer):
        if layer.name not in annotations:
            return layer
        return _quant.quantize_annotate_layer(layer, annotations[layer.name])

    with qat_scope():
        annotated = keras.models.clone_model(model, clone_function=annotate)
        annotated.set_weights(model.get_weights())
        qat = _quant.quantize_apply(annotated, SparsityPreservingScheme(masks))
    zeros = sum(int(m.size - np.count_nonzero(m)) for d in masks.values() for m in d.values())
    total = sum(int(m.size) for d in masks.values() for m in d.values())
    logging.info("sparsity_preserving_qat: %d kernel(s) in %d layer(s) keep %d zeros "
                 "(%.2f%% of their %d weights)", sum(map(len, masks.values())), len(masks),
                 zeros, 100 * zeros / max(total, 1), total)
    return qat


def masked_kernels(model):
    """[(layer name, weight name, kernel variable, mask variable)] of a QAT model made
    by `sparsity_preserving_qat`."""
    found = []
    for layer in model._flatten_layers(include_self=False):  # noqa: SLF001
        if not isinstance(layer, _quant.QuantizeWrapper):
            continue
        for weight, quantizer, variables in getattr(layer, "_weight_vars", []):
            if isinstance(quantizer, SparsityMaskedQuantizer):
                found.append((layer.layer.name, _weight_name(weight), weight,
                              variables[_MASK_KEY]))
    return found


def quantized_kernels(model):
    """[(label, effective array)] of every weight the QAT `model`'s wrappers quantize
    (kernel * mask where masked): the weights the int8 file holds, before folding."""
    arrays = []
    for layer in model._flatten_layers(include_self=False):  # noqa: SLF001
        if not isinstance(layer, _quant.QuantizeWrapper):
            continue
        for weight, quantizer, variables in getattr(layer, "_weight_vars", []):
            values = weight.numpy()
            if isinstance(quantizer, SparsityMaskedQuantizer):
                values = values * variables[_MASK_KEY].numpy()
            arrays.append((f"{layer.layer.name}/{_weight_name(weight)}", values))
    return arrays


def sparsity_report(model):
    """`report.SparsityReport` of a QAT model: one row per quantized weight."""
    rows = tuple(report.LayerRow(name=name, shape=tuple(a.shape), weights=int(a.size),
                                 nonzero=int(np.count_nonzero(a)))
                 for name, a in quantized_kernels(model))
    if not rows:
        raise ValueError(f"model {model.name!r} has no quantized weight to report on")
    total = report.LayerRow(name="global", shape=(), weights=sum(r.weights for r in rows),
                            nonzero=sum(r.nonzero for r in rows))
    return report.SparsityReport(rows=rows, total=total)
