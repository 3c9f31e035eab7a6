"""Model builders: one module per architecture family."""

import importlib

from tf_globalmp import serializables


def register_custom_layers():
    """Registers the custom layers saved models refer to (e.g. the option-A ResNet
    shortcut, the FastGRNN cell), so `load_model` can rebuild them. `import
    tf_globalmp` already arranges this when tf-keras is imported (`serializables`)."""
    serializables.register()

# CIFAR builders by name: name -> (module, function, fixed keyword arguments).
# Every builder takes (num_classes, input_shape) and, where it has one, `dropout`.
CIFAR_MODELS = {
    "resnet8": ("resnet_cifar", "resnet", {"depth": 8}),  # smallest: tests, smoke runs
    "resnet20": ("resnet_cifar", "resnet", {"depth": 20}),
    "resnet32": ("resnet_cifar", "resnet", {"depth": 32}),
    "resnet56": ("resnet_cifar", "resnet", {"depth": 56}),
    "wrn28_8": ("wide_resnet", "wide_resnet", {"depth": 28, "width": 8}),
    "wrn22_8": ("wide_resnet", "wide_resnet", {"depth": 22, "width": 8}),
    "wrn28_10": ("wide_resnet", "wide_resnet", {"depth": 28, "width": 10}),
    "mobilenet_v2": ("mobilenet_v2_cifar", "mobilenet_v2_cifar", {}),
}


def build_cifar(name, num_classes=10, input_shape=(32, 32, 3), dropout=0.0):
    """A built CIFAR model by name (see `CIFAR_MODELS`)."""
    if name not in CIFAR_MODELS:
        raise ValueError(f"model must be one of {sorted(CIFAR_MODELS)}, got {name!r}")
    module, function, kwargs = CIFAR_MODELS[name]
    builder = getattr(importlib.import_module(f"tf_globalmp.models.{module}"), function)
    if dropout:
        if module == "resnet_cifar":
            raise ValueError(f"model {name!r} has no dropout option, got dropout={dropout}")
        kwargs = {**kwargs, "dropout": dropout}
    return builder(num_classes=num_classes, input_shape=input_shape, **kwargs)
