"""A tf-keras model with every kind of prunable layer, the one of issue 16.

Embedding, MultiHeadAttention, Bidirectional(LSTM), TimeDistributed(Dense), Dense
layers held by a custom layer in a list and a dict, a nested custom layer, and a
Dense classifier. `EXPECTED` lists the labels of its prunable weights.
"""

import numpy as np
import tf_globalmp  # noqa: F401  (selects tf-keras)
import tf_keras as keras


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
        self.stack = [keras.layers.Dense(16, name="list_0"), keras.layers.Dense(16, name="list_1")]
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


def mixed(seed=0, mask_zero=False, with_own_kernel=False):
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


EXPECTED = [
    "emb/embeddings",
    "mha/query/kernel", "mha/key/kernel", "mha/value/kernel", "mha/attention_output/kernel",
    "bilstm/forward_lstm/lstm_cell/kernel", "bilstm/forward_lstm/lstm_cell/recurrent_kernel",
    "bilstm/backward_lstm/lstm_cell/kernel", "bilstm/backward_lstm/lstm_cell/recurrent_kernel",
    "td/td_dense/kernel",
    "list_0/kernel", "list_1/kernel", "dict_a/kernel", "dict_b/kernel", "inner_dense/kernel",
    "head/kernel",
]


def tokens(n=4, seed=1):
    x = np.random.default_rng(seed).integers(1, 100, (n, 10))
    x[:, 7:] = 0  # padding (masked with mask_zero=True)
    return x
