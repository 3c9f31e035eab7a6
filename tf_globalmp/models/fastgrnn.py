"""FastGRNN (Kusupati et al., NeurIPS 2018) as a tf-keras RNN cell, and a HAR-2 classifier.

    z_t = sigmoid(W x_t + U h_{t-1} + b_z)
    c_t = tanh(W x_t + U h_{t-1} + b_h)
    h_t = z_t * h_{t-1} + (sigmoid(zeta) * (1 - z_t) + sigmoid(nu)) * c_t

with low-rank W = W1 W2 and U = U1 U2, stored in the row-vector convention of the
EdgeML reference: ``x @ W1 @ W2`` with W1 (input, rW), W2 (rW, units), U1 (units, rU),
U2 (rU, units). Rank component k of W is column k of W1 together with row k of W2
(likewise for U); `tf_globalmp.structured` prunes those components.

The four factor kernels are the prunable weights of the `FastGRNN` layer (an RNN
over the cell that implements tfmot's `PrunableLayer`), so `prune_low_magnitude_global`
wraps it like any prunable layer; biases, zeta and nu are never pruned.
"""

import numpy as np
import tensorflow as tf

from tf_globalmp import _compat

keras = _compat.keras

FACTOR_NAMES = ("W1", "W2", "U1", "U2")
# (first, second) factor of W and of U, by weight name: what structured pruning ranks.
FACTOR_PAIRS = (("W1", "W2"), ("U1", "U2"))


@keras.utils.register_keras_serializable(package="tf_globalmp")
class FastGRNNCell(keras.layers.Layer):
    """One FastGRNN step; use inside `keras.layers.RNN`.

    Args:
      units: hidden size.
      w_rank: rank of W = W1 W2 (default: full, min(input_dim, units)).
      u_rank: rank of U = U1 U2 (default: full, units).
      zeta_init, nu_init: initial pre-sigmoid values of the trainable scalars
        (EdgeML's defaults 1.0 and -4.0).
      kernel_stddev: the factors start from N(0, stddev^2) (EdgeML: 0.1); biases
        start at 1 (EdgeML).
    """

    def __init__(self, units=80, w_rank=None, u_rank=None, zeta_init=1.0, nu_init=-4.0,
                 kernel_stddev=0.1, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("units", units), ("w_rank", w_rank), ("u_rank", u_rank)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not kernel_stddev > 0:
            raise ValueError(f"kernel_stddev must be > 0, got {kernel_stddev!r}")
        self.units = units
        self.w_rank = w_rank
        self.u_rank = u_rank
        self.zeta_init = float(zeta_init)
        self.nu_init = float(nu_init)
        self.kernel_stddev = float(kernel_stddev)
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        input_dim = int(input_shape[-1])
        w_rank = self.w_rank or min(input_dim, self.units)
        u_rank = self.u_rank or self.units

        def init():  # a fresh instance per weight: a reused unseeded one repeats values
            return keras.initializers.RandomNormal(stddev=self.kernel_stddev)

        self.W1 = self.add_weight(name="W1", shape=(input_dim, w_rank), initializer=init())
        self.W2 = self.add_weight(name="W2", shape=(w_rank, self.units), initializer=init())
        self.U1 = self.add_weight(name="U1", shape=(self.units, u_rank), initializer=init())
        self.U2 = self.add_weight(name="U2", shape=(u_rank, self.units), initializer=init())
        self.bias_gate = self.add_weight(name="bias_gate", shape=(self.units,),
                                         initializer="ones")
        self.bias_update = self.add_weight(name="bias_update", shape=(self.units,),
                                           initializer="ones")
        self.zeta = self.add_weight(name="zeta", shape=(1,),
                                    initializer=keras.initializers.Constant(self.zeta_init))
        self.nu = self.add_weight(name="nu", shape=(1,),
                                  initializer=keras.initializers.Constant(self.nu_init))
        self.built = True

    def factor_weights(self):
        """[W1, W2, U1, U2]: the prunable weights (exposed by the `FastGRNN` layer)."""
        return [self.W1, self.W2, self.U1, self.U2]

    def products(self):
        """(W1 W2, U1 U2): the full matrices, for one whole sequence."""
        return tf.matmul(self.W1, self.W2), tf.matmul(self.U1, self.U2)

    def call(self, inputs, states, products=None):
        """One step; `products` (from `products()`, computed once per sequence by the
        `FastGRNN` layer) saves re-multiplying the factors at every step."""
        h = states[0] if isinstance(states, (list, tuple)) else states
        if products is None:
            pre = tf.matmul(tf.matmul(inputs, self.W1), self.W2) + tf.matmul(
                tf.matmul(h, self.U1), self.U2)
        else:
            pre = tf.matmul(inputs, products[0]) + tf.matmul(h, products[1])
        z = tf.sigmoid(pre + self.bias_gate)
        c = tf.tanh(pre + self.bias_update)
        new_h = z * h + (tf.sigmoid(self.zeta) * (1.0 - z) + tf.sigmoid(self.nu)) * c
        return new_h, [new_h]

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, w_rank=self.w_rank, u_rank=self.u_rank,
                      zeta_init=self.zeta_init, nu_init=self.nu_init,
                      kernel_stddev=self.kernel_stddev)
        return config


@keras.utils.register_keras_serializable(package="tf_globalmp")
class FastGRNN(keras.layers.RNN):
    """`keras.layers.RNN` over a `FastGRNNCell` whose prunable weights are the factors.

    Only this layer (not the cell) reports prunable weights, so the whole-model walk
    of `registry` / `report` counts each factor once.
    """

    def __init__(self, cell, per_step_factors=False, **kwargs):
        if not isinstance(cell, FastGRNNCell):
            raise ValueError(f"cell must be a FastGRNNCell, got {type(cell).__name__}")
        super().__init__(cell, **kwargs)
        # False (training): form W1 W2 and U1 U2 once per sequence. True (export): keep
        # the factors separate at every step, so a converter cannot fold them into the
        # full matrices and a low-rank model stays small.
        self.per_step_factors = bool(per_step_factors)

    def get_config(self):
        config = super().get_config()
        config["per_step_factors"] = self.per_step_factors
        return config

    def get_prunable_weights(self):
        return self.cell.factor_weights()

    def call(self, inputs, mask=None, training=None, initial_state=None, constants=None):
        # The factor products are computed once per sequence (not once per step):
        # about half the multiply-adds at full rank. Same function of the weights.
        if self.per_step_factors:
            return super().call(inputs, mask=mask, training=training,
                                initial_state=initial_state, constants=constants)
        if not self.cell.built:
            self.cell.build(inputs.shape[-1:])
        cell_call = self.cell.call
        products = self.cell.products()
        self.cell.call = lambda x, states, **kw: cell_call(x, states, products=products)
        try:
            return super().call(inputs, mask=mask, training=training,
                                initial_state=initial_state, constants=constants)
        finally:
            self.cell.call = cell_call


# A tfmot PrunableLayer (virtual subclass: no metaclass mixing with the Keras Layer).
_compat.PrunableLayer.register(FastGRNN)


def build(timesteps=128, input_dim=9, units=80, w_rank=None, u_rank=None, num_classes=2,
          unroll=False, zeta_init=1.0, nu_init=-4.0, name="fastgrnn"):
    """Classifier: FastGRNN over `timesteps` steps, last hidden state -> Dense logits."""
    inputs = keras.Input((timesteps, input_dim), name="signals")
    cell = FastGRNNCell(units, w_rank=w_rank, u_rank=u_rank, zeta_init=zeta_init,
                        nu_init=nu_init, name="fastgrnn_cell")
    hidden = FastGRNN(cell, unroll=unroll, name="rnn")(inputs)
    logits = keras.layers.Dense(num_classes, name="logits")(hidden)
    return keras.Model(inputs, logits, name=name)


def cell_of(model):
    """The FastGRNNCell inside `model` (wrapped for pruning or not)."""
    for layer in model.submodules:
        if isinstance(layer, FastGRNNCell):
            return layer
    raise ValueError(f"model {model.name!r} has no FastGRNNCell")


def for_tflite(model, batch_size=1):
    """A copy of a plain (unwrapped) FastGRNN classifier for TFLite conversion.

    The RNN is rolled (one While loop instead of 128 unrolled steps, whose op and
    tensor metadata make the file ~10x larger) with a static batch of `batch_size`:
    the converter lowers the loop's tensor lists only with static element shapes. The
    factors are applied one after the other at each step (`per_step_factors`), so the
    file holds W1, W2, U1, U2 rather than the folded full W and U. Same outputs.
    """
    config = model.get_config()
    found = False
    for layer in config["layers"]:
        if layer["class_name"].endswith("FastGRNN"):
            layer["config"].update(unroll=False, per_step_factors=True)
            found = True
        if layer["class_name"] == "InputLayer":
            shape = list(layer["config"]["batch_input_shape"])
            layer["config"]["batch_input_shape"] = [batch_size] + shape[1:]
    if not found:
        raise ValueError(f"model {model.name!r} has no FastGRNN layer (pass the stripped "
                         "functional model built by fastgrnn.build)")
    copy = keras.Model.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def compact(model):
    """A plain FastGRNN classifier without its all-zero rank components (same outputs).

    After structured pruning the factors keep zero columns/rows; this rebuilds the
    model with w_rank/u_rank equal to the components left, which is the small model
    FastGRNN is meant to ship as.
    """
    cell = cell_of(model)
    w1, w2, u1, u2 = (v.numpy() for v in cell.factor_weights())
    keep_w = (np.abs(w1).sum(0) + np.abs(w2).sum(1)) > 0
    keep_u = (np.abs(u1).sum(0) + np.abs(u2).sum(1)) > 0
    keep_w[np.argmax(keep_w)] = True  # at least rank 1
    keep_u[np.argmax(keep_u)] = True
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"].endswith("FastGRNN"):
            layer["config"]["cell"]["config"].update(w_rank=int(keep_w.sum()),
                                                     u_rank=int(keep_u.sum()))
    small = keras.Model.from_config(config)
    new_cell = cell_of(small)
    factors = {id(v): value for v, value in zip(
        new_cell.factor_weights(),
        (w1[:, keep_w], w2[keep_w], u1[:, keep_u], u2[keep_u]))}
    for v, source in zip(small.weights, model.weights):  # same structure, same order
        v.assign(factors[id(v)] if id(v) in factors else source.numpy())
    return small
