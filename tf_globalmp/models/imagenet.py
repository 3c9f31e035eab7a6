"""ImageNet models by name, and loading pretrained weights into them.

`build(name, num_classes, input_shape, pretrained)`:
  - pretrained=None: random initialisation (the default; nothing is downloaded).
  - pretrained="imagenet": Keras' pretrained weights (downloaded by Keras, only then).
    Available for the Keras builders (MobileNet-V1/V2). Keras' ResNet-50 weights are
    v1 with conv biases and do not fit the v1.5 model: load a local checkpoint.
  - pretrained=<path>: a run directory / .keras / .h5 / SavedModel of the same
    architecture (weights copied layer by layer, by name; wrapped models work) or a
    weights file (``*.weights.h5`` or a TF checkpoint prefix) for `load_weights`.
"""

import os

from tf_globalmp import _compat
from tf_globalmp import wrapping
from tf_globalmp.models import mobilenet_imagenet
from tf_globalmp.models import resnet_imagenet
from tf_globalmp import runs

keras = _compat.keras

# name -> (builder, accepts Keras "imagenet" weights)
IMAGENET_MODELS = {
    "resnet50": (resnet_imagenet.resnet50, False),
    "mobilenet_v1": (mobilenet_imagenet.mobilenet_v1, True),
    "mobilenet_v2": (mobilenet_imagenet.mobilenet_v2, True),
}


def build(name, num_classes=1000, input_shape=(224, 224, 3), pretrained=None):
    """A built ImageNet model (logits) by name; see the module docstring for `pretrained`."""
    if name not in IMAGENET_MODELS:
        raise ValueError(f"model must be one of {sorted(IMAGENET_MODELS)}, got {name!r}")
    builder, has_keras_weights = IMAGENET_MODELS[name]
    if pretrained == "imagenet":
        if not has_keras_weights:
            raise ValueError(
                f"pretrained='imagenet' is not available for model {name!r} (Keras ships "
                "ResNet-50 v1 weights only, with conv biases); pass a local checkpoint path")
        if num_classes != 1000 or tuple(input_shape) != (224, 224, 3):
            raise ValueError("pretrained='imagenet' needs num_classes=1000 and input_shape "
                             f"(224, 224, 3), got {num_classes} and {tuple(input_shape)}")
        return builder(num_classes, input_shape, weights="imagenet")
    model = builder(num_classes, input_shape)
    if pretrained:
        load_pretrained(model, pretrained)
    return model


def _unwrapped_layers(model):
    out = {}
    for layer in wrapping.all_layers(model):
        if isinstance(layer, wrapping.PruneLowMagnitude):
            out[layer.layer.name] = layer.layer, layer
        elif not isinstance(layer, keras.Model):
            out.setdefault(layer.name, (layer, None))
    return out


def load_pretrained(model, path):
    """Copies the weights of the model at `path` into `model` (same layer names).

    A wrapped (pruned) source contributes its masked weights. A path that is a
    weights file (``.weights.h5`` or a checkpoint prefix) goes to `load_weights`.
    """
    if path.endswith(".weights.h5") or os.path.exists(path + ".index"):
        model.load_weights(path)
        return model
    if not os.path.exists(path):
        raise ValueError(f"pretrained must be 'imagenet' or an existing path, got {path!r}")
    source = runs.load_model(path)
    layers = _unwrapped_layers(source)
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in layers:
            raise ValueError(f"pretrained model {path!r} has no layer {layer.name!r}: is it "
                             f"a {model.name} model?")
        other, wrapper = layers[layer.name]
        values = other.get_weights()
        if wrapper is not None:  # apply the source's masks
            masked = {id(w): (w.numpy() * m.numpy()) for w, m, _ in wrapper.pruning_vars}
            values = [masked.get(id(w), v) for w, v in zip(other.weights, values)]
        layer.set_weights(values)
    return model
