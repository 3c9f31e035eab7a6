"""Optimisation pieces shared by the image benchmarks (CIFAR-10, later ImageNet).

- `WarmupSchedule`: linear warmup, then cosine decay or step decay (boundaries or
  "every k epochs"), as a Keras `LearningRateSchedule` of the optimizer step.
- `sgd`: SGD with momentum (optionally Nesterov) on that schedule.
- `l2_penalty`: weight decay the PyTorch way (coupled L2: the gradient gets
  `weight_decay * w`), on conv/dense kernels only (no biases, no BatchNorm).
  Added to the model as a loss, so Keras scales it correctly under a distribution
  strategy.
"""

import math

import tensorflow as tf

from tf_globalmp import _compat

keras = _compat.keras

LR_SCHEDULES = ("cosine", "step", "constant")
_KERNEL_NAMES = ("kernel", "depthwise_kernel", "pointwise_kernel")


@keras.utils.register_keras_serializable(package="tf_globalmp")
class WarmupSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """lr(step): linear warmup from 0 over `warmup_steps`, then `kind` decay.

    cosine: ``base * 0.5 * (1 + cos(pi * t))`` with t from 0 to 1 over the steps
    after warmup. step: ``base * factor ** k`` with k the number of `boundaries`
    (steps) passed, plus one per `every` steps if `every` > 0. constant: ``base``.
    """

    def __init__(self, base_lr, total_steps, kind="cosine", warmup_steps=0,
                 boundaries=(), every=0, factor=0.1):
        if kind not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {kind!r}")
        if base_lr <= 0:
            raise ValueError(f"learning_rate must be > 0, got {base_lr}")
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"warmup_steps must be in [0, {total_steps}], got {warmup_steps}")
        self.base_lr = float(base_lr)
        self.total_steps = int(total_steps)
        self.kind = kind
        self.warmup_steps = int(warmup_steps)
        self.boundaries = tuple(int(b) for b in boundaries)
        self.every = int(every)
        self.factor = float(factor)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        base = tf.constant(self.base_lr, tf.float32)
        if self.kind == "cosine":
            span = max(self.total_steps - self.warmup_steps, 1)
            t = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
            lr = base * 0.5 * (1.0 + tf.cos(math.pi * t))
        elif self.kind == "step":
            k = tf.add_n([tf.cast(step >= b, tf.float32) for b in self.boundaries]
                         + [tf.constant(0.0)])
            if self.every > 0:
                k += tf.floor(step / self.every)
            lr = base * tf.pow(self.factor, k)
        else:
            lr = base
        if self.warmup_steps:
            lr = tf.where(step < self.warmup_steps, base * (step + 1) / self.warmup_steps, lr)
        return lr

    def get_config(self):
        return {"base_lr": self.base_lr, "total_steps": self.total_steps, "kind": self.kind,
                "warmup_steps": self.warmup_steps, "boundaries": list(self.boundaries),
                "every": self.every, "factor": self.factor}


def sgd(schedule, momentum=0.9, nesterov=False):
    """tf-keras SGD with momentum on `schedule` (weight decay: see `l2_penalty`)."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}")
    return keras.optimizers.SGD(learning_rate=schedule, momentum=momentum, nesterov=nesterov)


def decayed_weights(model):
    """The conv/dense kernels of `model` (wrapped or not): what weight decay applies to."""
    return [w for w in model.trainable_weights
            if w.name.split("/")[-1].split(":")[0] in _KERNEL_NAMES]


def add_l2_penalty(model, weight_decay):
    """Adds ``weight_decay / 2 * sum ||w||^2`` over the kernels as a model loss.

    Its gradient is ``weight_decay * w``: PyTorch SGD's coupled weight decay, here
    on kernels only. Returns the decayed weights (none if `weight_decay` is 0).
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if not weight_decay:
        return []
    weights = decayed_weights(model)
    if not weights:
        raise ValueError(f"model {model.name!r} has no conv/dense kernel to decay")

    def penalty():
        return weight_decay * tf.add_n([tf.nn.l2_loss(tf.cast(w, tf.float32)) for w in weights])

    model.add_loss(penalty)
    return weights
