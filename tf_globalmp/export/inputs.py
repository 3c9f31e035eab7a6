"""What an exported file takes: input names, shapes, dtypes and its batch size.

`model_signature(model, input_signature)` finds the inputs, from the first source
that has them:

1. `input_signature` (what the caller passed to `export_tflite`);
2. the model's `Input` layers (functional models, a Sequential given an input
   shape): shapes as declared, so `Input(..., batch_size=1)` gives a file with a
   fixed batch of 1;
3. the inputs the model recorded when it was first called on data (subclassed
   models, a Sequential built by calling it), with a dynamic batch.

A `Signature` holds the inputs as `tf.TensorSpec`s in the structure the model is
called with (one spec, a list, or a dict), every spec named.
"""

import dataclasses

import numpy as np

from tf_globalmp import _compat

keras = _compat.keras
tf = _compat.tf

SOURCES = ("input_signature", "inputs", "recorded")


@dataclasses.dataclass(frozen=True)
class Signature:
    """The inputs of a model as named `tf.TensorSpec`s, in its call structure."""

    structure: object  # a TensorSpec, a list of them, or a dict name -> TensorSpec
    source: str  # one of SOURCES

    @property
    def flat(self):
        return tf.nest.flatten(self.structure)

    @property
    def specs(self):
        """[(name, shape without batch, numpy dtype)], as `verification_batch` takes."""
        return [(s.name, tuple(s.shape[1:]), np.dtype(s.dtype.as_numpy_dtype))
                for s in self.flat]

    @property
    def batch(self):
        """The fixed batch size of every input, or None (any batch)."""
        return self.flat[0].shape[0]

    def with_batch(self, batch):
        """The same inputs with the batch dimension set to `batch` (None: any)."""
        return Signature(
            tf.nest.map_structure(
                lambda s: tf.TensorSpec([batch] + list(s.shape[1:]), s.dtype, s.name),
                self.structure),
            self.source)

    def pack(self, arrays):
        """`arrays` (one per flat input) in the structure the model is called with."""
        return tf.nest.pack_sequence_as(self.structure, list(arrays))


def _named(spec, name):
    return tf.TensorSpec(spec.shape, spec.dtype, name)


def _check_batch(structure, where):
    flat = tf.nest.flatten(structure)
    for spec in flat:
        if spec.shape.rank is None or spec.shape.rank < 1:
            raise ValueError(f"{where}: every input needs a batch dimension, got {spec}")
    batches = {spec.shape[0] for spec in flat}
    if len(batches) > 1:
        raise ValueError(
            f"{where}: the inputs have different batch dimensions {sorted(map(str, batches))}"
            f": {flat}"
        )


def _name_all(structure):
    """Names every spec: a dict entry by its key, others by their name or input_<i>."""
    if isinstance(structure, dict):
        return {key: _named(spec, str(key)) for key, spec in structure.items()}
    flat = tf.nest.flatten(structure)
    names = [s.name or f"input_{i + 1}" for i, s in enumerate(flat)]
    if len(set(names)) < len(names):
        names = [f"input_{i + 1}" for i in range(len(flat))]
    return tf.nest.pack_sequence_as(structure, [_named(s, n) for s, n in zip(flat, names)])


def from_input_signature(input_signature):
    """A `Signature` from a TensorSpec, a list/tuple of them (one per model input; a
    one-element list is the single input) or a dict name -> TensorSpec."""
    if isinstance(input_signature, (list, tuple)) and len(input_signature) == 1:
        input_signature = input_signature[0]
    if isinstance(input_signature, (list, tuple)):
        structure = list(input_signature)
    else:
        structure = input_signature
    flat = tf.nest.flatten(structure)
    if not flat or not all(isinstance(s, tf.TensorSpec) for s in flat):
        raise TypeError(
            "input_signature must be a tf.TensorSpec, a list of them (one per model "
            f"input) or a dict of them, got {input_signature!r}"
        )
    _check_batch(structure, f"input_signature {input_signature!r}")
    return Signature(_name_all(structure), "input_signature")


def _inferred(model):
    """True for a Sequential whose inputs were inferred from the first batch it saw
    (their batch dimension is that batch's size, not a choice of the user)."""
    return isinstance(model, keras.Sequential) and not getattr(
        model, "_has_explicit_input_shape", True)


def _declared_inputs(model):
    """The model's Input layers as a Signature, or None."""
    inputs = model.inputs or []
    if not inputs:
        return None
    names = list(getattr(model, "input_names", None) or [])
    if len(names) != len(inputs):
        names = [t.name.split(":")[0] for t in inputs]
    specs = [tf.TensorSpec(t.shape, t.dtype, name) for name, t in zip(names, inputs)]
    structure = specs[0] if len(specs) == 1 else specs
    _check_batch(structure, f"the inputs of model {model.name!r}")
    return Signature(structure, "inputs")


def _recorded_inputs(model):
    """What the model was first called on (dynamic batch) as a Signature, or None."""
    try:
        spec = model.save_spec(dynamic_batch=True)
    except (AttributeError, ValueError):
        return None
    if not spec:
        return None
    args, kwargs = spec
    if len(args) != 1 or kwargs:
        return None  # call(self, a, b) or keyword inputs: ask for input_signature
    structure = args[0]
    if isinstance(structure, tuple):
        structure = list(structure)
    if not all(isinstance(s, tf.TensorSpec) for s in tf.nest.flatten(structure)):
        return None
    _check_batch(structure, f"the recorded inputs of model {model.name!r}")
    return Signature(_name_all(structure), "recorded")


def model_signature(model, input_signature=None):
    """The model's inputs (see the module docstring); ValueError if it has none."""
    if input_signature is not None:
        return from_input_signature(input_signature)
    declared = _declared_inputs(model)
    if declared is not None and not _inferred(model):
        return declared
    signature = _recorded_inputs(model)
    if signature is None and declared is not None:
        signature = Signature(declared.with_batch(None).structure, "recorded")
    if signature is None:
        raise ValueError(
            f"model {model.name!r} has no defined inputs: call it on a batch, build it "
            "with keras.Input, or pass input_signature=tf.TensorSpec(shape, dtype) (a "
            "list of them for several inputs) to export_tflite"
        )
    return signature
