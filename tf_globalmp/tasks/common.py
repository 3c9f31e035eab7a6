"""What the task runners share: strategy and chief, precision, the SGD compile and the
pruning schedule of the CIFAR-10/ImageNet recipes, mask statistics, epoch summaries.

The per-epoch callbacks that log and checkpoint are in `tasks/epoch_logs.py`.
"""

import contextlib
import hashlib

import numpy as np
import tensorflow as tf
from absl import logging

from tf_globalmp import _compat
from tf_globalmp import optim
from tf_globalmp import schedules
from tf_globalmp import wrapping

keras = _compat.keras


def accuracy(model, test):
    """The model's first compiled metric on `test`."""
    return float(model.evaluate(test, verbose=0)[1])


# ------------------------------------------------------------ strategy and chief
def make_strategy(distribution):
    """none: the default strategy; mirrored: all local GPUs (else CPUs); multi_worker:
    MultiWorkerMirroredStrategy from TF_CONFIG."""
    if distribution == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if distribution == "none":
        return tf.distribute.get_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def is_chief(strategy):
    """True on the worker that writes the run directory (always, without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


# ------------------------------------------------------------ precision
def cpu_has_native_bfloat16(cpuinfo="/proc/cpuinfo"):
    """True/False from the CPU flags (AMX or AVX512-BF16), None if unknown."""
    try:
        with open(cpuinfo) as f:
            flags = f.read()
    except OSError:
        return None
    return any(flag in flags for flag in ("amx_bf16", "avx512_bf16"))


@contextlib.contextmanager
def precision_policy(policy):
    """Layers built inside compute in Keras policy `policy` ("float32": unchanged);
    the global policy is restored on exit."""
    previous = keras.mixed_precision.global_policy()
    if policy != "float32":
        keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def float32_logits(model):
    """`model` with its output cast to float32 (the loss and softmax of a mixed model)."""
    outputs = keras.layers.Activation("linear", dtype="float32",
                                      name="logits_float32")(model.output)
    return keras.Model(model.input, outputs, name=model.name)


def float32_copy(model):
    """A float32 clone of a (mixed-precision) model with the same weights, for export."""
    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


# ------------------------------------------------------------ compile and schedule
def compile_sgd(model, config, steps_per_epoch, metrics):
    """SGD (momentum, optional Nesterov) on the config's learning-rate schedule with
    linear warmup, label-smoothed cross-entropy on logits, coupled L2 on kernels;
    loss scaling when `config.precision` is mixed_float16. Builds the optimizer (its
    slots restore from checkpoints)."""
    schedule = optim.WarmupSchedule(
        config.learning_rate, max(config.epochs * steps_per_epoch, 1), config.lr_schedule,
        warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
        boundaries=[b * steps_per_epoch for b in config.lr_boundaries],
        every=config.lr_step_every * steps_per_epoch, factor=config.lr_decay_factor)
    optimizer = optim.sgd(schedule, config.momentum, config.nesterov)
    if getattr(config, "precision", "float32") == "mixed_float16":
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                  label_smoothing=config.label_smoothing),
        metrics=metrics,
        steps_per_execution=config.steps_per_execution,
    )
    optim.add_l2_penalty(model, config.weight_decay)
    model.optimizer.build(model.trainable_variables)


def steps_into_epoch(step, done_epochs, steps_per_epoch):
    """Batches already trained in the interrupted epoch of a resumed run (a checkpoint
    taken every N steps), 0 at an epoch end or for a new run (`step` 0 / None)."""
    return step - done_epochs * steps_per_epoch if step else 0


def fit_epochs(model, data, done_epochs, in_epoch, epochs, steps_per_epoch, **fit_kwargs):
    """Trains `model` up to `epochs` from a (possibly resumed) state: first the rest of an
    interrupted epoch (`in_epoch` of its batches trained) on `data(done_epochs, in_epoch)`,
    then the remaining whole epochs on `data(epoch, 0)` (epoch: the first of them).
    `data(epoch, skip)` is the training stream from that epoch after `skip` batches;
    `fit_kwargs` go to every `model.fit` (callbacks, validation_data, verbose, ...)."""
    if in_epoch:
        logging.info("Resuming inside epoch %d after %d of its %d steps", done_epochs + 1,
                     in_epoch, steps_per_epoch)
        model.fit(data(done_epochs, in_epoch), epochs=done_epochs + 1,
                  initial_epoch=done_epochs, steps_per_epoch=steps_per_epoch - in_epoch,
                  **fit_kwargs)
        done_epochs += 1
    if done_epochs < epochs:
        model.fit(data(done_epochs, 0), epochs=epochs, initial_epoch=done_epochs,
                  steps_per_epoch=steps_per_epoch, **fit_kwargs)


def pruning_schedule(config, steps_per_epoch):
    """The schedule of a `one_shot` or `gradual` config (CIFAR-10 and ImageNet)."""
    total = config.epochs * steps_per_epoch
    if config.mode == "one_shot":
        # Due once per epoch; the fixed mask already has the target count, so later
        # checks leave it unchanged (and a resumed run keeps its restored mask).
        return schedules.GlobalConstantSparsity(config.sparsity, begin_step=0,
                                                frequency=steps_per_epoch)
    frequency = config.pruning_frequency or steps_per_epoch
    if config.pruning_frequency:
        begin = int(round(config.pruning_begin * total))
    else:
        begin = int(round(config.pruning_begin * config.epochs)) * steps_per_epoch
    begin = min(begin, total - 1)
    span = max(int(round(config.pruning_end * total)) - begin, frequency)
    updates = -(-span // frequency)  # on the grid: the last update hits the target ...
    updates = min(updates, (total - 1 - begin) // frequency)  # ... within training
    if updates < 1:  # room for one update only: prune to the target at `begin`
        logging.warning("gradual pruning: %d steps leave room for one update; pruning to "
                        "%.4f at step %d", total, config.sparsity, begin)
        return schedules.GlobalConstantSparsity(config.sparsity, begin_step=begin,
                                                end_step=begin, frequency=frequency)
    return schedules.GlobalPolynomialDecay(config.initial_sparsity, config.sparsity,
                                           begin_step=begin, end_step=begin + updates * frequency,
                                           power=3, frequency=frequency)


# ------------------------------------------------------------ masks
def layer_kept(model):
    """Kept (mask == 1) count per pruned weight, in wrapper order."""
    return [int(np.count_nonzero(m.numpy()))
            for w in wrapping.collect_wrappers(model) for _, m, _ in w.pruning_vars]


def mask_sparsity(model):
    """Fraction of masked-out weights over all pruning masks (0.0 without wrappers)."""
    wrappers = wrapping.collect_wrappers(model)
    total = sum(int(np.prod(m.shape)) for w in wrappers for _, m, _ in w.pruning_vars)
    return 1.0 - sum(layer_kept(model)) / total if total else 0.0


def replicas_hold_identical_masks(model, strategy):
    """True if every local replica holds the same value of every pruning mask."""
    for wrapper in wrapping.collect_wrappers(model):
        for _, mask, _ in wrapper.pruning_vars:
            values = [v.numpy() for v in strategy.experimental_local_results(mask)]
            if any(not np.array_equal(values[0], v) for v in values[1:]):
                return False
    return True


def mask_digest(model):
    """sha1 of all pruning masks (as packed bits, wrapper order): equal on every worker."""
    digest = hashlib.sha1()
    for wrapper in wrapping.collect_wrappers(model):
        for _, mask, _ in wrapper.pruning_vars:
            digest.update(np.packbits(mask.numpy().ravel() > 0).tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------ epoch summaries
def metrics_head(config, info, history):
    """The first metrics entries of a CIFAR-10/ImageNet run: what ran, and how far."""
    return {"data": info["name"], "model": config.model, "mode": config.mode,
            "preset": config.preset, "budget": config.budget, "completed": True,
            "epochs_done": len(history), "epochs_target": config.epochs}


def best_at_target(history, target, key):
    """The epoch with the highest `key` among those that ran at the `target` sparsity
    (gradual: after the ramp; all epochs if none did), or None without epochs."""
    at_target = [h for h in history if h["sparsity"] >= target - 1e-6] or history
    return max(at_target, key=lambda h: h[key]) if at_target else None


def median_after_first(history, key, digits):
    """Median of `key` over the epochs after the first (which includes tracing), or
    over all if there is one; None without epochs."""
    values = [h[key] for h in history[1:]] or [h[key] for h in history]
    return round(float(np.median(values)), digits) if values else None
