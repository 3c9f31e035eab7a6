"""Guards on a wrapped model's `fit` and `save`: fail at the call, not deep inside.

`prune_low_magnitude_global` installs them on the model it returns (`install`), as
instance methods that check their arguments and then call the class's own method:

* ``fit`` needs ``tf_globalmp.UpdateGlobalPruningStep`` among its callbacks. Without
  it tfmot's wrappers stop the first training step with an InvalidArgumentError
  asking for tfmot's ``UpdatePruningStep``; that callback does not update these
  wrappers (their per-layer update is switched off), so with it the sparsity would
  silently stay 0. Both are a ValueError before training starts.
* ``save`` of a model holding wrappers *in place* (a subclassed model or a custom
  layer: its config rebuilds its unwrapped layers, so a ``.keras`` file, SavedModel
  or h5 would not load back, e.g. "Layer 'conv2d_1' expected 2 variables, but
  received 0") is a ValueError naming the supported routes: ``save_weights`` +
  re-wrapping, or ``strip_pruning`` first. Sequential and functional models, whose
  config lists the wrappers themselves, save as before.

A model without wrappers any more (a subclassed model stripped in place) is not
checked. `evaluate`, `predict`, custom loops (`GlobalPruner`) and tfmot's own
baseline (`prune_low_magnitude_tfmot`, no guard installed) are untouched.
"""

import inspect
import types

import tf_globalmp
from tf_globalmp import _compat

keras = _compat.keras
PruneLowMagnitude = _compat.PruneLowMagnitude


def _layers(model):
    return [model, *model._flatten_layers(include_self=False, recursive=True)]


def has_wrappers(model):
    """True if `model` holds at least one pruning wrapper (at any depth)."""
    return any(isinstance(l, PruneLowMagnitude) for l in _layers(model)[1:])


def _is_graph_model(layer):
    return isinstance(layer, keras.Sequential) or getattr(layer, "_is_graph_network", False)


def in_place_holders(model):
    """Layers of `model` (itself included) that hold wrappers as attributes: their
    config rebuilds the unwrapped layers, so `model.save` cannot restore them."""
    holders = []
    for layer in _layers(model):
        if isinstance(layer, PruneLowMagnitude) or _is_graph_model(layer):
            continue
        children = layer._flatten_layers(include_self=False, recursive=False)
        if any(isinstance(c, PruneLowMagnitude) for c in children):
            holders.append(layer)
    return holders


def _flat_callbacks(callbacks):
    if callbacks is None:
        return []
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return list(callbacks.callbacks)
    if isinstance(callbacks, keras.callbacks.Callback):
        return [callbacks]
    return list(callbacks)


def check_fit_callbacks(model, callbacks):
    """Raises ValueError unless `callbacks` drive the Global MP wrappers of `model`."""
    if not has_wrappers(model):
        return
    ours = tf_globalmp.UpdateGlobalPruningStep
    tfmot_step = _compat.tfmot.sparsity.keras.UpdatePruningStep
    callbacks = _flat_callbacks(callbacks)
    foreign = [c for c in callbacks if isinstance(c, tfmot_step) and not isinstance(c, ours)]
    if foreign:
        raise ValueError(
            f"callbacks contain tfmot's UpdatePruningStep, but model {model.name!r} was "
            "wrapped by tf_globalmp.prune_low_magnitude_global: tfmot's callback does not "
            "update these wrappers (their per-layer mask update is switched off), so the "
            "sparsity would stay 0. Replace it with tf_globalmp.UpdateGlobalPruningStep()."
        )
    if not any(isinstance(c, ours) for c in callbacks):
        raise ValueError(
            f"model {model.name!r} was wrapped by tf_globalmp.prune_low_magnitude_global: "
            "pass callbacks=[tf_globalmp.UpdateGlobalPruningStep(), ...] to fit (it "
            "computes the global masks at the schedule's steps and keeps them applied; "
            "after a one-shot GlobalPruner.prune_to it keeps the masks fixed). Not tfmot's "
            "UpdatePruningStep: it does not update these wrappers. In a custom training "
            "loop, use tf_globalmp.GlobalPruner(model) instead of fit. Got callbacks="
            f"{[type(c).__name__ for c in callbacks]}."
        )


def check_savable(model):
    """Raises ValueError if `model.save` could not restore the wrappers of `model`."""
    holders = in_place_holders(model)
    if not holders:
        return
    names = [f"{l.name!r} ({type(l).__name__})" for l in holders]
    raise ValueError(
        f"model {model.name!r} cannot be saved whole with model.save: pruning "
        f"wrappers are held in place by {', '.join(names)} (subclassed models and "
        "custom layers are wrapped in place), and loading rebuilds these from their "
        "config without wrappers (.keras, SavedModel and h5 alike). To save a "
        "checkpoint: model.save_weights(path), then later build the same model, wrap it "
        "with tf_globalmp.prune_low_magnitude_global and call load_weights(path). To "
        "save the final pruned model: tf_globalmp.strip_pruning(model).save(path)."
    )


def _argument(method, instance, args, kwargs, name):
    """The value `name` has in the call `method(instance, *args, **kwargs)`."""
    try:
        bound = inspect.signature(method).bind(instance, *args, **kwargs)
    except TypeError:  # a bad call: let the method itself say so
        return kwargs.get(name)
    return bound.arguments.get(name)


def _guarded_fit(self, *args, **kwargs):
    fit = type(self).fit
    check_fit_callbacks(self, _argument(fit, self, args, kwargs, "callbacks"))
    return fit(self, *args, **kwargs)


def _guarded_save(self, *args, **kwargs):
    check_savable(self)
    return type(self).save(self, *args, **kwargs)


def install(model):
    """Guards `model.fit` and `model.save` (instance methods; untracked by Keras)."""
    for name, guarded in (("fit", _guarded_fit), ("save", _guarded_save)):
        object.__setattr__(model, name, types.MethodType(guarded, model))
    return model
