"""Test models built from a `keras` module argument, so tf-keras tests and the Keras 3
subprocess scripts (tests/ is on their PYTHONPATH) build the very same models.

Imports no Keras itself: importing it never selects a Keras.
"""


def dense_chain(keras, dims, kernels=None, activation=None):
    """Sequential Dense layers dims[0] -> dims[1] -> ... -> dims[-1]; the hidden ones
    use `activation` (the last none); `kernels`, when given, are assigned in order."""
    hidden = [keras.layers.Dense(d, activation=activation) for d in dims[1:-1]]
    model = keras.Sequential([keras.Input((dims[0],))] + hidden + [keras.layers.Dense(dims[-1])])
    for layer, kernel in zip(model.layers, kernels or []):
        layer.kernel.assign(kernel)
    return model


def _mixed_layers(keras):
    """The custom layers of `mixed`, defined for `keras`: (Block, OwnKernel)."""

    class Inner(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.proj = keras.layers.Dense(16, name="inner_dense")
            self.norm = keras.layers.LayerNormalization(name="inner_norm")

        def call(self, x):
            return self.norm(self.proj(x))

    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.stack = [keras.layers.Dense(16, name="list_0"),
                          keras.layers.Dense(16, name="list_1")]
            self.by_key = {"a": keras.layers.Dense(16, name="dict_a"),
                           "b": keras.layers.Dense(16, name="dict_b")}
            self.inner = Inner(name="inner")

        def call(self, x):
            for layer in self.stack:
                x = layer(x)
            return self.inner(self.by_key["a"](x) + self.by_key["b"](x))

    class OwnKernel(keras.layers.Layer):
        """A custom layer with a weight of its own (no get_prunable_weights)."""

        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(input_shape[-1], 16))

        def call(self, x):
            return x @ self.scale

    return Block, OwnKernel


def mixed(keras, seed=0, mask_zero=False, with_own_kernel=False):
    """The mixed model of issue 16: Embedding, MultiHeadAttention, Bidirectional(LSTM),
    TimeDistributed(Dense), Dense layers held by a custom layer in a list and a dict, a
    nested custom layer, and a Dense classifier (plus OwnKernel when asked)."""
    Block, OwnKernel = _mixed_layers(keras)
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((10,), dtype="int32")
    x = keras.layers.Embedding(100, 16, mask_zero=mask_zero, name="emb")(inputs)
    x = keras.layers.MultiHeadAttention(2, 8, name="mha")(x, x)
    x = keras.layers.Bidirectional(
        keras.layers.LSTM(8, return_sequences=True, name="lstm"), name="bilstm")(x)
    x = keras.layers.TimeDistributed(keras.layers.Dense(16, name="td_dense"), name="td")(x)
    x = Block(name="block")(x)
    if with_own_kernel:
        x = OwnKernel(name="own")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    outputs = keras.layers.Dense(3, name="head")(x)
    return keras.Model(inputs, outputs, name="mixed")


def mixed_labels(keras3=False):
    """The labels of `mixed`'s prunable weights, in order. Keras 3 labels the layers held
    by a custom layer with its path ("block/list_0/kernel"), tf-keras does not."""
    block, inner = ("block/", "block/inner/") if keras3 else ("", "")
    return [
        "emb/embeddings",
        "mha/query/kernel", "mha/key/kernel", "mha/value/kernel", "mha/attention_output/kernel",
        "bilstm/forward_lstm/lstm_cell/kernel", "bilstm/forward_lstm/lstm_cell/recurrent_kernel",
        "bilstm/backward_lstm/lstm_cell/kernel", "bilstm/backward_lstm/lstm_cell/recurrent_kernel",
        "td/td_dense/kernel",
        f"{block}list_0/kernel", f"{block}list_1/kernel", f"{block}dict_a/kernel",
        f"{block}dict_b/kernel", f"{inner}inner_dense/kernel",
        "head/kernel",
    ]
