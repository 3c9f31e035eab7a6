"""A tf-keras model with every kind of prunable layer, the one of issue 16.

Embedding, MultiHeadAttention, Bidirectional(LSTM), TimeDistributed(Dense), Dense
layers held by a custom layer in a list and a dict, a nested custom layer, and a
Dense classifier (built by models_for_tests.mixed, shared with the Keras 3 tests).
`EXPECTED` lists the labels of its prunable weights.
"""

import numpy as np
import tf_globalmp  # noqa: F401  (selects tf-keras)
import tf_keras as keras

import models_for_tests


def mixed(seed=0, mask_zero=False, with_own_kernel=False):
    return models_for_tests.mixed(keras, seed, mask_zero, with_own_kernel)


EXPECTED = models_for_tests.mixed_labels()


def tokens(n=4, seed=1):
    x = np.random.default_rng(seed).integers(1, 100, (n, 10))
    x[:, 7:] = 0  # padding (masked with mask_zero=True)
    return x
