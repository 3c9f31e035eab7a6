"""Keras callbacks that append one history entry per epoch and checkpoint the run
(`runs.RunState`): `AccuracyLog` (quickstart, HAR-2), `EpochLog` (CIFAR-10, ImageNet)."""

import time

from absl import logging

from tf_globalmp import _compat
from tf_globalmp.tasks import common

keras = _compat.keras


class AccuracyLog(keras.callbacks.Callback):
    """Records test accuracy (Keras' val_accuracy, when fit has validation_data) and
    validation accuracy (when `y_val` is not empty) per epoch; checkpoints the state."""

    def __init__(self, state, history, extra, x_val, y_val):
        super().__init__()
        self.state, self.history, self.extra = state, history, extra
        self.x_val, self.y_val = x_val, y_val
        self._start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        entry = {
            "epoch": epoch + 1,
            "loss": float(logs.get("loss", float("nan"))),
            "train_accuracy": float(logs.get("accuracy", float("nan"))),
            "seconds": round(time.time() - self._start, 3),
        }
        if "val_accuracy" in logs:
            entry["test_accuracy"] = float(logs["val_accuracy"])
        if len(self.y_val):
            entry["val_accuracy"] = float(
                self.model.evaluate(self.x_val, self.y_val, batch_size=500, verbose=0)[1])
        self.history.append(entry)
        self.state.save(epoch + 1, self.history, self.extra)
        logging.info("epoch %d: loss %.4f, train %.4f, %s (%.1f s)", entry["epoch"],
                     entry["loss"], entry["train_accuracy"], ", ".join(
                         f"{k} {entry[k]:.4f}" for k in ("test_accuracy", "val_accuracy")
                         if k in entry), entry["seconds"])


class EpochLog(keras.callbacks.Callback):
    """Per epoch: the given Keras logs, sparsity, learning rate, images/s; then
    checkpoints the state (CIFAR-10 and ImageNet). With `every_steps`, also
    checkpoints inside an epoch at the first batch end at or after each multiple of
    `every_steps` (with `steps_per_execution` > 1 batch ends skip steps).

    `keys` maps history names to Keras log names, e.g. {"test_accuracy": "val_accuracy"}.
    `sparsity(model)` gives each entry's sparsity (default: of the pruning masks).
    """

    def __init__(self, state, history, extra, images_per_step, steps_per_epoch, keys,
                 every_steps=0, sparsity=common.mask_sparsity):
        super().__init__()
        self.sparsity = sparsity
        self.state, self.history, self.extra = state, history, extra
        self.images_per_step, self.steps_per_epoch = images_per_step, steps_per_epoch
        self.keys, self.every_steps = dict(keys), every_steps
        self._start, self._step0, self._last = time.time(), 0, 0

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._step0 = time.time(), self._step()
        self._last = self._step0

    def on_train_batch_end(self, batch, logs=None):
        step, last = self._step(), self._last
        self._last = step
        if (self.every_steps and step // self.every_steps > last // self.every_steps
                and step % self.steps_per_epoch):
            self.state.save(step // self.steps_per_epoch, self.history, self.extra, step=step,
                            mid_epoch=True)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        seconds = time.time() - self._start
        steps = self._step() - self._step0
        entry = {"epoch": epoch + 1, "loss": float(logs.get("loss", float("nan")))}
        entry.update({name: float(logs.get(key, float("nan")))
                      for name, key in self.keys.items()})
        entry.update(
            sparsity=self.sparsity(self.model),
            learning_rate=float(self.model.optimizer.learning_rate.numpy()),
            seconds=round(seconds, 2),
            train_images_per_s=round(steps * self.images_per_step / seconds, 1),
        )
        if steps < self.steps_per_epoch:  # resumed inside this epoch: train logs cover part
            entry["steps_after_resume"] = steps
        self.history.append(entry)
        self.state.save(epoch + 1, self.history, self.extra, step=self._step())
        logging.info("epoch %d: %s (%.0f s)", entry["epoch"], ", ".join(
            f"{k} {entry[k]:.4f}" for k in ["loss", *self.keys, "sparsity"]), seconds)
