"""This package's Keras serializables: saved models load with plain `load_model`.

Saved models name this package's custom objects by their registered names
(`SERIALIZABLES`: ``tf_globalmp>ZeroPadShortcut`` ...). Each class registers itself
with ``register_keras_serializable(package="tf_globalmp")`` when its module is
imported. tf-keras finds a functional model's layers only through that registry: an
unknown one comes back as its class-name string ("'str' object is not callable").

``import tf_globalmp`` cannot simply import those modules: it must stay cheap and
free of TensorFlow (``tf_globalmp.keras3`` keeps ``tf.keras`` on Keras 3 only if
imported before TensorFlow), and the modules import ``_compat``, hence tfmot (about
as long as TensorFlow itself). So registration is lazy, in two steps:

1. `install()` (called by the package ``__init__``) adds an import hook that, right
   after tf-keras is loaded -- by ``import tf_keras``, by ``import tensorflow`` under
   ``TF_USE_LEGACY_KERAS=1``, or by this package -- puts a *stand-in* under each
   registered name in tf-keras' global custom objects (no import; if tf-keras is
   already loaded, at once). Names already registered are left alone.
2. A stand-in imports the real class's module when tf-keras first deserializes (or
   constructs) it, and returns the real object; that import registers the real class
   over the stand-in.

So a process that never loads such a model never imports tfmot for it, and the
hook never runs inside anyone else's import. If the real module cannot be imported,
the error names ``tf_globalmp.load_model``.
"""

import importlib
import sys

# Registered name -> (module, class) of every Keras serializable of this package.
SERIALIZABLES = {
    "tf_globalmp>ZeroPadShortcut": ("tf_globalmp.models.resnet_cifar", "ZeroPadShortcut"),
    "tf_globalmp>FastGRNN": ("tf_globalmp.models.fastgrnn", "FastGRNN"),
    "tf_globalmp>FastGRNNCell": ("tf_globalmp.models.fastgrnn", "FastGRNNCell"),
    "tf_globalmp>WarmupSchedule": ("tf_globalmp.optim", "WarmupSchedule"),
    "tf_globalmp>SparsityPreservingQuantizeConfig": ("tf_globalmp.qat",
                                                      "SparsityPreservingQuantizeConfig"),
    "tf_globalmp>PassThroughQuantizeConfig": ("tf_globalmp.qat", "PassThroughQuantizeConfig"),
    "tf_globalmp>ChannelZeroPad": ("tf_globalmp.channels.layers", "ChannelZeroPad"),
}

_TF_KERAS = "tf_keras"


def register():
    """Imports the modules of `SERIALIZABLES`, registering the real classes now."""
    for module in sorted({module for module, _ in SERIALIZABLES.values()}):
        importlib.import_module(module)


def real_class(name):
    """The class registered as `name`, importing its module (which registers it)."""
    module, attribute = SERIALIZABLES[name]
    try:
        return getattr(importlib.import_module(module), attribute)
    except Exception as e:
        raise ImportError(
            f"cannot import {module}.{attribute} (Keras name {name!r}) to rebuild a saved "
            f"model: {type(e).__name__}: {e}. Load the model with "
            "tf_globalmp.load_model(path)."
        ) from e


def stand_in(name):
    """A class standing in for `name` until used: `from_config` and construction
    import the real class and return its object."""
    module, attribute = SERIALIZABLES[name]

    def from_config(cls, config):
        return real_class(name).from_config(config)

    def __new__(cls, *args, **kwargs):  # noqa: N807
        return real_class(name)(*args, **kwargs)

    return type(attribute, (), {
        "__module__": module,
        "__doc__": f"Stand-in for {module}.{attribute}: imports it on first use.",
        "__new__": __new__,
        "from_config": classmethod(from_config),
        "tf_globalmp_stand_in": True,
    })


def install_stand_ins():
    """Puts a stand-in under each registered name tf-keras does not know yet."""
    objects = sys.modules[_TF_KERAS].saving.get_custom_objects()
    for name in SERIALIZABLES:
        if name not in objects:
            objects[name] = stand_in(name)


class _LoaderThen:
    """A loader that runs `callback()` after the real loader executed the module."""

    def __init__(self, loader, callback):
        self._loader = loader
        self._callback = callback

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # The module sees its real loader while it runs, and keeps it afterwards.
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        self._callback()

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _AfterImportHook:
    """sys.meta_path entry: calls `callback()` once, after `name` is first executed.

    It finds nothing itself: it asks the finders after it and wraps the loader of the
    spec they return. A spec may be looked up without being loaded (TensorFlow's lazy
    loader does), so the hook is consumed when the module *executes*.
    """

    def __init__(self, name, callback):
        self.name = name
        self._callback = callback

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        spec = None
        for finder in list(sys.meta_path):
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _LoaderThen(spec.loader, self._executed)
        return spec

    def _executed(self):
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        self._callback()


def _install_or_warn():
    try:
        install_stand_ins()
    except Exception as e:  # never break the user's `import tf_keras`
        from absl import logging

        logging.warning(
            "tf_globalmp could not register its Keras layers (%s: %s): load saved "
            "models with tf_globalmp.load_model(path).", type(e).__name__, e,
        )


def install():
    """Stand-ins now if tf-keras is loaded, else right after it is."""
    if _TF_KERAS in sys.modules:
        _install_or_warn()
    elif not any(isinstance(f, _AfterImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImportHook(_TF_KERAS, _install_or_warn))
