"""Mixed precision -> float32 for export.

A layer under a mixed policy (`mixed_bfloat16`, `mixed_float16`) keeps float32
variables and computes in 16 bits; converted as is, the graph holds bfloat16 /
float16 ops the TFLite builtins cannot run ("'tf.Conv2D' op is neither a custom op
nor a flex op"). Inside `float32_compute(model)` every such layer computes in
float32 (its variables, already float32, are read without a cast), so the
converter and the verification see the float32 network; the policies are restored
on exit. Layers whose variables are themselves 16-bit are left alone.
"""

import contextlib

from tf_globalmp import _compat

keras = _compat.keras


def _layers(model):
    return model._flatten_layers(include_self=True, recursive=True)  # noqa: SLF001


def is_mixed(policy):
    """True for a policy computing in a lower precision than its float32 variables."""
    return policy.variable_dtype == "float32" and policy.compute_dtype not in (
        None, "float32")


def mixed_policies(model):
    """Sorted names of the mixed-precision policies of `model` and its layers."""
    return sorted({layer.dtype_policy.name for layer in _layers(model)
                   if is_mixed(layer.dtype_policy)})


@contextlib.contextmanager
def float32_compute(model):
    """Runs every mixed-precision layer of `model` in float32 inside the block.

    Yields the names of the mixed policies that were switched (sorted; empty for a
    float32 model).
    """
    switched = [(layer, layer.dtype_policy) for layer in _layers(model)
                if is_mixed(layer.dtype_policy)]
    try:
        for layer, _ in switched:
            layer._set_dtype_policy("float32")  # noqa: SLF001
        yield sorted({policy.name for _, policy in switched})
    finally:
        for layer, policy in switched:
            layer._set_dtype_policy(policy)  # noqa: SLF001
