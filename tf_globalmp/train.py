"""Training glue: `run(config, workdir) -> metrics` (quickstart: dense, prune, fine-tune)."""

import dataclasses
import json
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import logging

from tf_globalmp import _compat
from tf_globalmp import controller
from tf_globalmp import export
from tf_globalmp import flops
from tf_globalmp import min_threshold
from tf_globalmp import models
from tf_globalmp import optim
from tf_globalmp import prune
from tf_globalmp import report
from tf_globalmp import schedules
from tf_globalmp import structured
from tf_globalmp.data import cifar10
from tf_globalmp.data import digits
from tf_globalmp.data import har
from tf_globalmp.data import imagenet as imagenet_data
from tf_globalmp.models import fastgrnn
from tf_globalmp.models import imagenet as imagenet_models
from tf_globalmp.models import small_cnn

keras = _compat.keras


def _compile(model, learning_rate):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def _accuracy(model, test):
    return float(model.evaluate(test, verbose=0)[1])


def write_run_dir(workdir, model, config, metrics, sparsity, export_tflite=False,
                  plot_title=None, extra_files=None):
    """Writes model + JSON files into `workdir` atomically (temp dir, then rename).

    With `plot_title`, also `layer_sparsity.png` (remaining weights per layer).
    With `export_tflite`, also `model.tflite` (sparse float32, verified against the
    Keras model) and its report `model.tflite.json`; `metrics["tflite"]` gets the
    file's bytes and its ratio to the dense float32 file.
    `extra_files` maps more file names to `write(path) -> dict or None`, called in the
    temp dir; a returned dict is merged into the metrics. Returns the metrics written.
    """
    parent = os.path.dirname(os.path.abspath(workdir)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp_run_", dir=parent)
    try:
        model.save(os.path.join(tmp, "model.keras"))
        if plot_title:
            report.plot_layer_sparsity(model, os.path.join(tmp, "layer_sparsity.png"),
                                       title=plot_title)
        if export_tflite:
            exported = export.export_tflite(model, os.path.join(tmp, "model.tflite"))
            metrics = dict(metrics, tflite={
                "file": "model.tflite", "bytes": exported.bytes,
                "dense_float32_bytes": exported.dense_bytes,
                "ratio": round(exported.ratio, 4),
                "max_rel_diff": exported.max_rel_diff,
            })
        for name, write in (extra_files or {}).items():
            metrics = dict(metrics, **(write(os.path.join(tmp, name)) or {}))
        for name, data in (("config.json", config), ("metrics.json", metrics),
                           ("sparsity.json", sparsity)):
            with open(os.path.join(tmp, name), "w") as f:
                json.dump(data, f, indent=2)
        if os.path.exists(workdir):
            shutil.rmtree(workdir)
        os.replace(tmp, workdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for name in os.listdir(workdir):  # reports written in the temp dir: point at the files
        if name.endswith(".tflite.json"):
            report_path = os.path.join(workdir, name)
            with open(report_path) as f:
                data = json.load(f)
            data["path"] = os.path.join(workdir, name[:-len(".json")])
            _write_json_atomic(report_path, data)
    return metrics


def run(config, workdir, verbose=0):
    """Quickstart: train a dense CNN on digits, prune it to `config.sparsity` with
    one global threshold and MT, fine-tune with the mask fixed, write the run dir.

    Resumable: both phases are checkpointed every epoch in `workdir`; calling again
    with the same config continues (a finished run is returned as is).

    Returns (metrics, layer report); the metrics are also in `workdir/metrics.json`.
    """
    config_dict, done = _begin_run(config, workdir)
    if done is not None:
        return done, report.sparsity_report(export.load_model(workdir))
    start = time.time()
    _, test, info = digits.load(config)
    steps = info["steps_per_epoch"]
    model = small_cnn.build(info["input_shape"], info["num_classes"], config.filters,
                            config.hidden_units)
    _compile(model, config.learning_rate)
    model.optimizer.build(model.trainable_variables)  # its slots restore from checkpoints
    os.makedirs(workdir, exist_ok=True)
    dense_state = _RunState(workdir, model, config_dict, os.path.join(STATE_DIR, "dense"))
    finetune_dir = os.path.join(workdir, STATE_DIR, "finetune")
    if not os.path.exists(os.path.join(finetune_dir, "state.json")):
        done_epochs, history, _ = dense_state.restore()
        logging.info("Training dense model for %d epochs", config.epochs)
        model.fit(digits.load(config, initial_epoch=done_epochs)[0], epochs=config.epochs,
                  initial_epoch=done_epochs, steps_per_epoch=steps, validation_data=test,
                  callbacks=[_AccuracyLog(dense_state, history, {}, [], [])], verbose=verbose)

    schedule = schedules.GlobalConstantSparsity(config.sparsity, begin_step=0)
    pruned = prune.prune_low_magnitude_global(
        model, schedule, min_weights_fraction=config.min_weights_fraction,
        redistribution=config.redistribution,
    )
    _compile(pruned, config.finetune_learning_rate)
    pruned.optimizer.build(pruned.trainable_variables)
    pruner = controller.GlobalPruner(pruned)
    state = _RunState(workdir, pruned, config_dict, os.path.join(STATE_DIR, "finetune"))
    done_epochs, history, extra = state.restore()
    if not done_epochs:
        extra = {"dense_accuracy": _accuracy(model, test)}
        logging.info("Dense test accuracy %.4f", extra["dense_accuracy"])
        pruner.prune_to(config.sparsity, step=0)  # one-shot, before fine-tuning
        extra["one_shot_accuracy"] = _accuracy(pruned, test)
    logging.info("Fine-tuning for %d epochs at %.1f%% sparsity", config.finetune_epochs,
                 100 * config.sparsity)
    pruned.fit(digits.load(config, initial_epoch=done_epochs)[0],
               epochs=config.finetune_epochs, initial_epoch=done_epochs,
               steps_per_epoch=steps, validation_data=test, verbose=verbose,
               callbacks=[controller.UpdateGlobalPruningStep(),
                          _AccuracyLog(state, history, extra, [], [])])
    pruned_accuracy = _accuracy(pruned, test)
    stripped = prune.strip_pruning(pruned)
    layer_report = report.sparsity_report(stripped)
    metrics = {
        "data": info["name"],
        "completed": True,
        "dense_accuracy": extra["dense_accuracy"],
        "one_shot_accuracy_before_finetune": extra["one_shot_accuracy"],
        "pruned_accuracy": pruned_accuracy,
        "target_sparsity": config.sparsity,
        "achieved_sparsity": layer_report.total.sparsity,
        "min_weights_per_layer": pruner.sigma,
        "budget": {"epochs": config.epochs, "finetune_epochs": config.finetune_epochs},
        "finetune_history": history,
        "wall_time_s_this_attempt": round(time.time() - start, 2),
    }
    metrics = write_run_dir(workdir, stripped, config_dict, metrics,
                            layer_report.to_dict(), export_tflite=config.export_tflite,
                            plot_title=f"Quickstart CNN, global {100 * config.sparsity:g}%")
    return metrics, layer_report


# ------------------------------------------------------------ FastGRNN on HAR-2
STATE_DIR = "train_state"  # per-epoch checkpoints inside a run's workdir (every task)
# Config fields that may change when a run is resumed (they do not change the run).
_HAR2_RESUMABLE_CHANGES = ("epochs", "budget", "export_tflite", "threads", "unroll")


def _set_threads(threads):
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already initialised (tests, notebooks)
        logging.info("TensorFlow threads already fixed; threads=%d not applied", threads)


def _write_json_atomic(path, data):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


class _RunState:
    """Training state in `workdir/train_state/` (model incl. masks and pruning step,
    optimizer incl. its step) at every epoch end, and for CIFAR-10/ImageNet also every
    `checkpoint_every_steps` steps.

    Each save is written to a new `epoch_NNNN/` (or `step_NNNNNNNNN/`) directory, then
    `state.json` is atomically replaced to point at it, then older saves are deleted:
    a run killed at any moment resumes from its last complete save. After `restore`,
    `step` is the optimizer step of that save (None for saves without it).
    """

    # Config fields that may differ when a run is resumed (they do not change it).
    RESUMABLE = _HAR2_RESUMABLE_CHANGES

    def __init__(self, workdir, model, config_dict, name=STATE_DIR):
        self.dir = os.path.join(workdir, name)
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        self.config = json.loads(json.dumps(config_dict))  # as stored (tuples -> lists)
        self.step = None

    def restore(self):
        """(epochs done, history, extra) of a previous attempt, or (0, [], {})."""
        path = os.path.join(self.dir, "state.json")
        if not os.path.exists(path):
            return 0, [], {}
        with open(path) as f:
            state = json.load(f)
        changed = sorted(
            k for k in set(state["config"]) | set(self.config)
            if k not in self.RESUMABLE and state["config"].get(k) != self.config.get(k)
        )
        if changed:
            diff = ", ".join(f"{k}={state['config'].get(k)!r}" for k in changed)
            raise ValueError(
                f"workdir {os.path.dirname(self.dir)!r} holds a run with a different config "
                f"({diff}): use another workdir or the same settings"
            )
        self.checkpoint.restore(os.path.join(self.dir, state["prefix"])).assert_consumed()
        self.step = state.get("step")
        logging.info("Resumed from %s after epoch %d%s", self.dir, state["epoch"],
                     f" (step {self.step})" if self.step is not None else "")
        return state["epoch"], state["history"], state.get("extra", {})

    def save(self, epoch, history, extra, step=None, mid_epoch=False):
        """Saves after `epoch` complete epochs; `mid_epoch`: at optimizer `step`,
        inside the next epoch."""
        name = f"step_{step:09d}" if mid_epoch else f"epoch_{epoch:04d}"
        prefix = self.checkpoint.save(os.path.join(self.dir, name, "ckpt"))
        _write_json_atomic(os.path.join(self.dir, "state.json"), {
            "epoch": epoch, "step": step, "prefix": os.path.relpath(prefix, self.dir),
            "history": history, "extra": extra, "config": self.config,
        })
        for old in os.listdir(self.dir):
            if old.startswith(("epoch_", "step_")) and old != name:
                shutil.rmtree(os.path.join(self.dir, old), ignore_errors=True)


class _AccuracyLog(keras.callbacks.Callback):
    """Records test (and validation) accuracy per epoch and checkpoints the state."""

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
            "test_accuracy": float(logs.get("val_accuracy", float("nan"))),
            "seconds": round(time.time() - self._start, 3),
        }
        if len(self.y_val):
            entry["val_accuracy"] = float(
                self.model.evaluate(self.x_val, self.y_val, batch_size=500, verbose=0)[1])
        self.history.append(entry)
        self.state.save(epoch + 1, self.history, self.extra)
        logging.info("epoch %d: loss %.4f, train %.4f, test %.4f (%.1f s)", entry["epoch"],
                     entry["loss"], entry["train_accuracy"], entry["test_accuracy"],
                     entry["seconds"])


def _har2_pruned_model(config, dense, steps_per_epoch):
    """Wraps the dense FastGRNN for `config.mode`; returns (model, rule, target sparsity)."""
    cell = fastgrnn.cell_of(dense)
    shapes = [(tuple(cell.W1.shape), tuple(cell.W2.shape)),
              (tuple(cell.U1.shape), tuple(cell.U2.shape))]
    full = [shapes[0][0][1], shapes[1][0][1]]
    if any(r > f for r, f in zip(config.ranks, full)):
        raise ValueError(f"ranks {config.ranks} exceed the model's ranks {tuple(full)}")
    factor_total = sum(a[0] * a[1] + b[0] * b[1] for a, b in shapes)
    total = factor_total + int(np.prod(dense.get_layer("logits").kernel.shape))
    kept = structured.kept_weights(shapes, config.ranks) + total - factor_total
    sparsity = config.sparsity if config.sparsity is not None else 1.0 - kept / total
    rule = None
    if config.mode == "structured":
        rule = structured.RankMaskRule(fastgrnn.FACTOR_PAIRS, ranks=config.ranks,
                                       scope=config.structured_scope)
    # Re-evaluated once per epoch: a fixed mask is re-applied (the rule re-selects the
    # same components from the masked weights; the unstructured count is unchanged).
    schedule = schedules.GlobalConstantSparsity(sparsity, begin_step=0,
                                                frequency=steps_per_epoch)
    model = prune.prune_low_magnitude_global(dense, schedule, mask_rule=rule)
    return model, rule, sparsity


def factor_ranks(model):
    """numpy matrix ranks of W1 W2 and U1 U2 (masked weights if wrapped)."""
    cell = fastgrnn.cell_of(model)
    wrappers = prune.collect_wrappers(model)
    masks = {id(w): m for wr in wrappers for w, m, _ in wr.pruning_vars}

    def value(v):
        m = masks.get(id(v))
        return v.numpy() * (m.numpy() if m is not None else 1.0)

    return [int(np.linalg.matrix_rank(value(a) @ value(b)))
            for a, b in ((cell.W1, cell.W2), (cell.U1, cell.U2))]


def _begin_run(config, workdir):
    """Validates `config`; returns (its dict, the metrics of the finished run already
    in `workdir` or None). Without a finished run it also sets the process up:
    TensorFlow threads, op determinism (where the config has it) and the seed."""
    config.validate()
    config_dict = dataclasses.asdict(config)
    done = _finished_metrics(workdir, config_dict)
    if done is not None:
        logging.info("%s already holds the finished run; nothing to do", workdir)
        return config_dict, done
    if getattr(config, "threads", 0):
        _set_threads(config.threads)
    if getattr(config, "deterministic", False):
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    return config_dict, None


def _finished_metrics(workdir, config_dict):
    path = os.path.join(workdir, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(os.path.join(workdir, "config.json")) as f:
        saved = json.load(f)
    with open(path) as f:
        metrics = json.load(f)
    if saved.get("epochs") == config_dict["epochs"] and metrics.get("completed"):
        return metrics
    return None


def _har2_tflite_files(stripped, sample, structured_mode):
    """`write_run_dir` extra files: model.tflite (rolled loop, batch 1; verified) and,
    for structured runs, model_compact.tflite (zero ranks removed); sizes -> metrics."""
    def sparse(path):
        tflite = export.export_tflite(fastgrnn.for_tflite(stripped), path,
                                      representative_dataset=sample)
        return dict(tflite_bytes=tflite.bytes, tflite_gzip_bytes=tflite.gzip_bytes,
                    tflite_dense_bytes=tflite.dense_bytes,
                    tflite_max_abs_diff=tflite.max_abs_diff)

    def compact(path):
        small = export.export_tflite(fastgrnn.for_tflite(fastgrnn.compact(stripped)), path,
                                     sparse=False, representative_dataset=sample)
        return dict(tflite_compact_bytes=small.bytes,
                    tflite_compact_max_abs_diff=small.max_abs_diff)

    files = {"model.tflite": sparse}
    if structured_mode:
        files["model_compact.tflite"] = compact
    return files


def run_har2(config, workdir, verbose=0):
    """FastGRNN on HAR-2: dense training, or fine-tuning `config.pretrained` after
    structured (rank) or unstructured Global MP. Resumable: every epoch is
    checkpointed in `workdir`; calling again with the same config continues (a
    finished run is returned as is). Writes the run dir (model.keras, config.json,
    metrics.json incl. per-epoch history, sparsity.json; model.tflite if asked).

    Returns the metrics dict.
    """
    config_dict, done = _begin_run(config, workdir)
    if done is not None:
        if config.export_tflite and not os.path.exists(os.path.join(workdir, "model.tflite")):
            sample = har.har2_arrays(config.data_dir, config.validation_fraction,
                                     config.seed)["x_test"][:1]
            files = _har2_tflite_files(export.load_model(workdir), sample,
                                       done.get("mode") == "structured")
            for name, write in files.items():
                done.update(write(os.path.join(workdir, name)))
            _write_json_atomic(os.path.join(workdir, "metrics.json"), done)
        return done
    start = time.time()
    train_ds, test_ds, info = har.load(config)
    steps_per_epoch = info["steps_per_epoch"]
    rule, target_sparsity, dense_metrics = None, 0.0, {}
    if config.mode == "dense":
        model = fastgrnn.build(info["input_shape"][0], info["input_shape"][1], config.units,
                               config.w_rank, config.u_rank, info["num_classes"],
                               unroll=config.unroll)
    else:
        dense = export.load_model(config.pretrained)
        dense_path = os.path.join(config.pretrained, "metrics.json")
        if os.path.exists(dense_path):
            with open(dense_path) as f:
                dense_metrics = json.load(f)
        model, rule, target_sparsity = _har2_pruned_model(config, dense, steps_per_epoch)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate, global_clipnorm=config.clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.optimizer.build(model.trainable_variables)
    os.makedirs(workdir, exist_ok=True)
    state = _RunState(workdir, model, config_dict)
    done_epochs, history, extra = state.restore()
    if done_epochs:  # continue the data stream exactly where the last epoch ended
        train_ds = har.load(config, initial_epoch=done_epochs)[0]
    if config.mode != "dense" and not done_epochs:
        pruner = controller.GlobalPruner(model, mask_rule=rule)
        result = pruner.prune_to(target_sparsity, step=0)
        extra = {"one_shot_test_accuracy": _accuracy(model, test_ds),
                 "layer_kept_after_pruning": list(result.layer_kept),
                 "ranks_after_pruning": factor_ranks(model)}
        logging.info("One-shot %s pruning: test accuracy %.4f before fine-tuning",
                     config.mode, extra["one_shot_test_accuracy"])
    callbacks = [_AccuracyLog(state, history, extra, info["x_val"], info["y_val"])]
    if config.mode != "dense":
        callbacks.insert(0, controller.UpdateGlobalPruningStep(mask_rule=rule))
    if done_epochs < config.epochs:
        model.fit(train_ds, epochs=config.epochs, initial_epoch=done_epochs,
                  steps_per_epoch=steps_per_epoch, validation_data=test_ds,
                  callbacks=callbacks, verbose=verbose)
    history = history[: config.epochs]
    final = _accuracy(model, test_ds)
    layer_kept = (controller.GlobalPruner(model, mask_rule=rule).layer_kept()
                  if config.mode != "dense" else None)
    ranks = factor_ranks(model)
    stripped = prune.strip_pruning(model) if config.mode != "dense" else model
    layer_report = report.sparsity_report(stripped)
    best = max(history, key=lambda h: h["test_accuracy"]) if history else None
    seconds = [h["seconds"] for h in history[1:]] or [h["seconds"] for h in history]
    metrics = {
        "data": info["name"],
        "mode": config.mode,
        "preset": config.preset,
        "budget": config.budget,
        "completed": True,
        "epochs_done": len(history),
        "epochs_target": config.epochs,
        "best_test_accuracy": best["test_accuracy"] if best else final,
        "best_epoch": best["epoch"] if best else 0,
        "final_test_accuracy": final,
        "learning_rate": config.learning_rate,
        "paper_learning_rate": config.paper_learning_rate,
        "learning_rate_note": config.learning_rate_note,
        "batch_size": config.batch_size,
        "clipnorm": config.clipnorm,
        "ranks": ranks,
        "target_ranks": list(config.ranks) if config.mode == "structured" else None,
        "target_sparsity": target_sparsity,
        "achieved_sparsity": layer_report.total.sparsity,
        "prunable_weights": layer_report.total.weights,
        "nonzero_prunable_weights": layer_report.total.nonzero,
        "model_parameters": int(stripped.count_params()),
        "masks_fixed_during_finetune": (layer_kept == extra.get("layer_kept_after_pruning")
                                        if layer_kept is not None else None),
        "one_shot_test_accuracy": extra.get("one_shot_test_accuracy"),
        "dense_best_test_accuracy": dense_metrics.get("best_test_accuracy"),
        "dense_final_test_accuracy": dense_metrics.get("final_test_accuracy"),
        "seconds_per_epoch": round(float(np.median(seconds)), 3) if seconds else None,
        "wall_time_s_this_attempt": round(time.time() - start, 2),
        "history": history,
    }
    if len(info["y_val"]):
        metrics["final_val_accuracy"] = float(
            model.evaluate(info["x_val"], info["y_val"], batch_size=500, verbose=0)[1])
    files = (_har2_tflite_files(stripped, info["x_test_sample"][:1],
                                config.mode == "structured") if config.export_tflite else {})
    metrics = write_run_dir(
        workdir, stripped, config_dict, metrics, layer_report.to_dict(), extra_files=files,
        plot_title=(f"FastGRNN {config.mode}, HAR-2 ({config.budget})"
                    if config.mode != "dense" else None))
    logging.info("HAR-2 %s: best test %.4f (epoch %s), final %.4f, ranks %s",
                 config.mode, metrics["best_test_accuracy"], metrics["best_epoch"], final, ranks)
    return metrics


# ------------------------------------------------------------ CIFAR-10
# Config fields that may differ when a run is resumed (they do not change the run).
_CIFAR10_RESUMABLE_CHANGES = ("budget", "export_tflite", "threads", "verbose", "data_dir",
                              "tfds_data_dir", "cache_dir", "distribution",
                              "checkpoint_every_steps")


class _Cifar10State(_RunState):
    """HAR-2's per-epoch state files (`train_state/`) with CIFAR's resumable fields."""

    RESUMABLE = _CIFAR10_RESUMABLE_CHANGES


def _strategy(distribution):
    if distribution == "none":
        return tf.distribute.get_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def _copy_weights_by_name(model, source, source_name):
    """Copies every weighted layer of `model` from the same-named layer of `source`."""
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            raise ValueError(f"pretrained model {source_name!r} has no layer {layer.name!r}: "
                             f"is it a {model.name} run?") from None
        layer.set_weights(other.get_weights())


def float32_copy(model):
    """A float32 clone of a (mixed-precision) model with the same weights, for export."""
    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _cifar10_schedule(config, steps_per_epoch):
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


def cpu_has_native_bfloat16(cpuinfo="/proc/cpuinfo"):
    """True/False from the CPU flags (AMX or AVX512-BF16), None if unknown."""
    try:
        with open(cpuinfo) as f:
            flags = f.read()
    except OSError:
        return None
    return any(flag in flags for flag in ("amx_bf16", "avx512_bf16"))


def _cifar10_model(config, info, steps_per_epoch):
    """The (wrapped, for pruning modes) model, built in the current strategy scope."""
    previous = keras.mixed_precision.global_policy()
    if (config.mixed_bfloat16 and not tf.config.list_physical_devices("GPU")
            and cpu_has_native_bfloat16() is False):
        logging.warning("mixed_bfloat16 on a CPU without native bfloat16 (no amx_bf16 or "
                        "avx512_bf16 flag): it is emulated and much slower than float32 "
                        "(ResNet-32 on an AMD EPYC: 5 vs 31 img/s); pass --nomixed_bfloat16")
    if config.mixed_bfloat16:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = models.build_cifar(config.model, info["num_classes"], info["input_shape"],
                                   config.dropout)
        if config.mixed_bfloat16:  # the loss and softmax in float32
            outputs = keras.layers.Activation("linear", dtype="float32",
                                              name="logits_float32")(model.output)
            model = keras.Model(model.input, outputs, name=model.name)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    if config.mode == "one_shot":
        _copy_weights_by_name(model, export.load_model(config.pretrained), config.pretrained)
    if config.mode != "dense" and config.layer_distribution == "tfmot":
        model = prune.prune_low_magnitude_tfmot(model, _cifar10_schedule(config, steps_per_epoch))
    elif config.mode != "dense":
        model = prune.prune_low_magnitude_global(
            model, _cifar10_schedule(config, steps_per_epoch),
            min_weights=config.min_weights, min_weights_fraction=config.min_weights_fraction,
            redistribution=config.redistribution, distribution=config.layer_distribution)
    return model


def _cifar10_compile(model, config, steps_per_epoch):
    schedule = optim.WarmupSchedule(
        config.learning_rate, max(config.epochs * steps_per_epoch, 1), config.lr_schedule,
        warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
        boundaries=[b * steps_per_epoch for b in config.lr_boundaries],
        every=config.lr_step_every * steps_per_epoch, factor=config.lr_decay_factor)
    model.compile(
        optimizer=optim.sgd(schedule, config.momentum, config.nesterov),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                  label_smoothing=config.label_smoothing),
        metrics=["accuracy"],
    )
    optim.add_l2_penalty(model, config.weight_decay)
    model.optimizer.build(model.trainable_variables)


def _layer_kept(model):
    """Kept (mask == 1) count per pruned weight, in wrapper order."""
    return [int(np.count_nonzero(m.numpy()))
            for w in prune.collect_wrappers(model) for _, m, _ in w.pruning_vars]


def _mask_sparsity(model):
    wrappers = prune.collect_wrappers(model)
    total = sum(int(np.prod(m.shape)) for w in wrappers for _, m, _ in w.pruning_vars)
    return 1.0 - sum(_layer_kept(model)) / total if total else 0.0


class _EpochLog(keras.callbacks.Callback):
    """Per epoch: the given Keras logs, sparsity, learning rate, images/s; then
    checkpoints the state (CIFAR-10 and ImageNet). With `every_steps`, also
    checkpoints every that many optimizer steps inside an epoch.

    `keys` maps history names to Keras log names, e.g. {"test_accuracy": "val_accuracy"}.
    """

    def __init__(self, state, history, extra, images_per_step, steps_per_epoch, keys,
                 every_steps=0):
        super().__init__()
        self.state, self.history, self.extra = state, history, extra
        self.images_per_step, self.steps_per_epoch = images_per_step, steps_per_epoch
        self.keys, self.every_steps = dict(keys), every_steps
        self._start, self._step0 = time.time(), 0

    def _step(self):
        return int(self.model.optimizer.iterations.numpy())

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._step0 = time.time(), self._step()

    def on_train_batch_end(self, batch, logs=None):
        step = self._step()
        if self.every_steps and step % self.every_steps == 0 and step % self.steps_per_epoch:
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
            sparsity=_mask_sparsity(self.model),
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


def run_cifar10(config, workdir):
    """CIFAR-10: dense training, one-shot Global MP of `config.pretrained` + fine-tuning,
    or gradual Global MP from scratch (see `configs.Cifar10Config`).

    Resumable: every epoch (model, masks, optimizer) is checkpointed in `workdir`;
    calling again with the same config continues from the last complete epoch (a
    finished run is returned as is). Writes the run dir: model.keras, config.json,
    metrics.json (best and final test accuracy, sparsity, budget, per-epoch history),
    sparsity.json (per-layer table), and model.tflite if `config.export_tflite`.

    Returns the metrics dict.
    """
    config_dict, done = _begin_run(config, workdir)
    if done is not None:
        return done
    start = time.time()
    train_ds, test_ds, info = cifar10.load(config)
    steps_per_epoch = info["steps_per_epoch"]
    strategy = _strategy(config.distribution)
    with strategy.scope():
        model = _cifar10_model(config, info, steps_per_epoch)
        _cifar10_compile(model, config, steps_per_epoch)
    os.makedirs(workdir, exist_ok=True)
    state = _Cifar10State(workdir, model, config_dict)
    done_epochs, history, extra = state.restore()
    # Batches already trained in the interrupted epoch (a step-interval checkpoint).
    in_epoch = state.step - done_epochs * steps_per_epoch if state.step else 0
    if done_epochs or in_epoch:  # continue the data stream exactly where it stopped
        train_ds = cifar10.load(config, initial_epoch=done_epochs, skip_batches=in_epoch)[0]
    tfmot_baseline = config.mode != "dense" and config.layer_distribution == "tfmot"
    if config.mode == "one_shot" and not done_epochs and not in_epoch:
        extra = {"dense_test_accuracy": _accuracy(model, test_ds)}  # weights not yet masked
        if tfmot_baseline:
            prune.prune_tfmot_now(model)
        else:
            controller.GlobalPruner(model).prune_to(config.sparsity, step=0)
        extra["one_shot_test_accuracy"] = _accuracy(model, test_ds)
        extra["layer_kept_after_pruning"] = _layer_kept(model)
        logging.info("One-shot %s to %.4f: test accuracy %.4f -> %.4f before fine-tuning",
                     "tfmot prune_low_magnitude" if tfmot_baseline else "Global MP",
                     _mask_sparsity(model), extra["dense_test_accuracy"],
                     extra["one_shot_test_accuracy"])
    callbacks = [_EpochLog(state, history, extra, config.batch_size, steps_per_epoch,
                           {"train_accuracy": "accuracy", "test_accuracy": "val_accuracy"},
                           every_steps=config.checkpoint_every_steps)]
    if tfmot_baseline:
        callbacks.insert(0, _compat.tfmot.sparsity.keras.UpdatePruningStep())
    elif config.mode != "dense":
        callbacks.insert(0, controller.UpdateGlobalPruningStep())
    if in_epoch:  # finish the interrupted epoch, then go on with whole epochs
        logging.info("Resuming inside epoch %d after %d of its %d steps", done_epochs + 1,
                     in_epoch, steps_per_epoch)
        model.fit(train_ds, epochs=done_epochs + 1, initial_epoch=done_epochs,
                  steps_per_epoch=steps_per_epoch - in_epoch, validation_data=test_ds,
                  callbacks=callbacks, verbose=config.verbose)
        done_epochs += 1
        train_ds = cifar10.load(config, initial_epoch=done_epochs)[0]
    if done_epochs < config.epochs:
        model.fit(train_ds, epochs=config.epochs, initial_epoch=done_epochs,
                  steps_per_epoch=steps_per_epoch, validation_data=test_ds,
                  callbacks=callbacks, verbose=config.verbose)
    final = _accuracy(model, test_ds)
    pruned = config.mode != "dense"
    layer_kept = _layer_kept(model) if pruned else None
    stripped = prune.strip_pruning(model) if pruned else model
    layer_report = report.sparsity_report(stripped)
    target = config.sparsity if config.mode != "dense" else 0.0
    # Best over the epochs that ran at the target sparsity (gradual: after the ramp).
    at_target = [h for h in history if h["sparsity"] >= target - 1e-6] or history
    best = max(at_target, key=lambda h: h["test_accuracy"]) if at_target else None
    speeds = [h["train_images_per_s"] for h in history[1:]] or [
        h["train_images_per_s"] for h in history]
    flops_report = flops.flops_report(stripped)
    metrics = {
        "data": info["name"],
        "model": config.model,
        "mode": config.mode,
        "preset": config.preset,
        "budget": config.budget,
        "completed": True,
        "epochs_done": len(history),
        "epochs_target": config.epochs,
        "train_examples": info["train_examples"],
        "test_examples": info["test_examples"],
        "best_test_accuracy": best["test_accuracy"] if best else final,
        "best_epoch": best["epoch"] if best else 0,
        "final_test_accuracy": final,
        "target_sparsity": target,
        "achieved_sparsity": layer_report.total.sparsity,
        "prunable_weights": layer_report.total.weights,
        "nonzero_prunable_weights": layer_report.total.nonzero,
        "model_parameters": int(stripped.count_params()),
        **flops.summary(flops_report),
        "layer_distribution": config.layer_distribution if pruned else None,
        "min_weights_per_layer": (min_threshold.resolve_min_weights(
            layer_report.total.weights, config.min_weights, config.min_weights_fraction)
            if pruned else 0),
        "dense_test_accuracy": extra.get("dense_test_accuracy"),
        "one_shot_test_accuracy": extra.get("one_shot_test_accuracy"),
        "masks_fixed_during_finetune": (layer_kept == extra["layer_kept_after_pruning"]
                                        if "layer_kept_after_pruning" in extra else None),
        "train_images_per_s": round(float(np.median(speeds)), 1) if speeds else None,
        "mixed_bfloat16": config.mixed_bfloat16,
        "wall_time_s_this_attempt": round(time.time() - start, 2),
        "history": history,
    }
    files = {"flops.json": lambda path: _write_json_atomic(path, flops_report.to_dict())}
    if config.export_tflite:
        sample = next(iter(test_ds))[0].numpy()[:16]

        def write_tflite(path):
            tflite = export.export_tflite(float32_copy(stripped), path,
                                          representative_dataset=sample)
            return dict(tflite_bytes=tflite.bytes, tflite_gzip_bytes=tflite.gzip_bytes,
                        tflite_dense_bytes=tflite.dense_bytes)

        files["model.tflite"] = write_tflite
    metrics = write_run_dir(
        workdir, stripped, config_dict, metrics, layer_report.to_dict(), extra_files=files,
        plot_title=(f"{config.model} {config.mode}, CIFAR-10 ({config.budget})"
                    if config.mode != "dense" else None))
    logging.info("CIFAR-10 %s %s (%s): best test %.4f (epoch %s), final %.4f, sparsity %.4f",
                 config.model, config.mode, config.budget, metrics["best_test_accuracy"],
                 metrics["best_epoch"], final, metrics["achieved_sparsity"])
    return metrics


# ------------------------------------------------------------ ImageNet
def imagenet_strategy(distribution):
    """none: default; mirrored: all local GPUs (else CPUs); multi_worker: from TF_CONFIG."""
    if distribution == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _strategy(distribution)


def _is_chief(strategy):
    """True on the worker that writes the run directory (always, without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0)


def _imagenet_model(config, info, steps_per_epoch):
    """The (wrapped, for pruning modes) ImageNet model, built in the current scope.

    Layers compute in `config.precision`; variables, masks and the pruning math are
    float32; the logits are cast to float32 for the loss.
    """
    previous = keras.mixed_precision.global_policy()
    if config.precision != "float32":
        keras.mixed_precision.set_global_policy(config.precision)
    try:
        model = imagenet_models.build(config.model, info["num_classes"], info["input_shape"],
                                      pretrained=config.pretrained)
        if config.precision != "float32":
            outputs = keras.layers.Activation("linear", dtype="float32",
                                              name="logits_float32")(model.output)
            model = keras.Model(model.input, outputs, name=model.name)
        if config.mode != "dense":  # wrappers share the policy (tfmot calls layer.call)
            model = prune.prune_low_magnitude_global(
                model, _cifar10_schedule(config, steps_per_epoch),
                min_weights=config.min_weights,
                min_weights_fraction=config.min_weights_fraction,
                redistribution=config.redistribution)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return model


def _imagenet_compile(model, config, steps_per_epoch):
    """SGD (momentum, optional Nesterov) on cosine/step with linear warmup, label
    smoothing, coupled L2 on kernels only; loss scaling for mixed_float16."""
    schedule = optim.WarmupSchedule(
        config.learning_rate, max(config.epochs * steps_per_epoch, 1), config.lr_schedule,
        warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
        boundaries=[b * steps_per_epoch for b in config.lr_boundaries],
        every=config.lr_step_every * steps_per_epoch, factor=config.lr_decay_factor)
    optimizer = optim.sgd(schedule, config.momentum, config.nesterov)
    if config.precision == "mixed_float16":
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.CategoricalCrossentropy(from_logits=True,
                                                  label_smoothing=config.label_smoothing),
        metrics=[keras.metrics.CategoricalAccuracy(name="top1"),
                 keras.metrics.TopKCategoricalAccuracy(5, name="top5")],
    )
    optim.add_l2_penalty(model, config.weight_decay)
    model.optimizer.build(model.trainable_variables)


def replicas_hold_identical_masks(model, strategy):
    """True if every local replica holds the same value of every pruning mask."""
    for wrapper in prune.collect_wrappers(model):
        for _, mask, _ in wrapper.pruning_vars:
            values = [v.numpy() for v in strategy.experimental_local_results(mask)]
            if any(not np.array_equal(values[0], v) for v in values[1:]):
                return False
    return True


def mask_digest(model):
    """sha1 of all pruning masks (as packed bits, wrapper order): equal on every worker."""
    import hashlib

    digest = hashlib.sha1()
    for wrapper in prune.collect_wrappers(model):
        for _, mask, _ in wrapper.pruning_vars:
            digest.update(np.packbits(mask.numpy().ravel() > 0).tobytes())
    return digest.hexdigest()


def plot_history(path, history, title):
    """Test top-1/top-5 and sparsity per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [h["test_top1"] for h in history], "o-", label="test top-1")
    ax.plot(epochs, [h["test_top5"] for h in history], "s-", label="test top-5")
    ax.plot(epochs, [h["sparsity"] for h in history], "--", label="sparsity")
    ax.set_xlabel("epoch")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pruning_summary(model):
    """MT facts of a wrapped model: sigma, and which prunable weights stay dense."""
    pruner = controller.GlobalPruner(model)
    kept = pruner.layer_kept()
    rows = list(zip(pruner.names, pruner.sizes, kept))
    floor = [n for n, size, k in rows if pruner.sigma and k == min(pruner.sigma, size)]
    return {
        "min_weights_per_layer": pruner.sigma,
        "prunable_layers": len(rows),
        "dense_layers": [n for n, size, k in rows if k == size],
        "layers_at_min_weights_floor": floor,
        "layers_dense_by_min_weights": [n for n, size, k in rows
                                        if pruner.sigma and size <= pruner.sigma],
    }


def _plain_copy(config, num_classes, image_size, source):
    """A float32 plain model of `config.model` at `image_size` with `source`'s weights."""
    model = imagenet_models.build(config.model, num_classes, (image_size, image_size, 3))
    _copy_weights_by_name(model, source, "the trained model")
    return model


def run_imagenet(config, workdir):
    """ImageNet: dense training, one-shot Global MP + fine-tuning, or gradual Global MP
    (see `configs.ImagenetConfig`), under no strategy, MirroredStrategy or
    MultiWorkerMirroredStrategy. Masks are updated once per step in cross-replica
    context by `UpdateGlobalPruningStep` (the same mask on every replica and worker).

    Resumable per epoch like `run_cifar10`. Writes the run dir (chief only): model.keras
    (stripped, float32), config.json, metrics.json (top-1/top-5 best and final,
    sparsity, FLOPs pruned at 224x224, layers kept dense by MT, per-epoch history),
    sparsity.json, flops.json (per layer), history.png; model.tflite if asked.

    Returns the metrics dict.
    """
    config_dict, done = _begin_run(config, workdir)
    if done is not None:
        return done
    start = time.time()
    strategy = imagenet_strategy(config.distribution)
    chief = _is_chief(strategy)
    train_ds, test_ds, info = imagenet_data.load(config, strategy)
    steps = info["steps_per_epoch"]
    eval_steps = config.eval_steps or None
    with strategy.scope():
        model = _imagenet_model(config, info, steps)
        _imagenet_compile(model, config, steps)
    out_dir = workdir if chief else tempfile.mkdtemp(prefix="imagenet_worker_")
    os.makedirs(out_dir, exist_ok=True)
    state = _Cifar10State(out_dir, model, config_dict)
    done_epochs, history, extra = state.restore()
    # Steps already trained in the interrupted epoch (a step-interval checkpoint); the
    # rest of that epoch is trained on a fresh pass of the (shuffled) data.
    in_epoch = state.step - done_epochs * steps if state.step else 0
    if config.mode == "one_shot" and not done_epochs and not in_epoch:
        before = model.evaluate(test_ds, steps=eval_steps, verbose=0, return_dict=True)
        pruner = controller.GlobalPruner(model)
        # The callback re-checks the schedule's sparsity, a float32 (0.9 -> 0.89999998):
        # prune to that very value, else the count may differ by one weight and the
        # "fixed" mask would be recomputed, reviving a zero weight at a tie.
        result = pruner.prune_to(schedules.sparsity_at(pruner.schedule, 0)[1], step=0)
        after = model.evaluate(test_ds, steps=eval_steps, verbose=0, return_dict=True)
        extra = {"dense_test_top1": before["top1"], "dense_test_top5": before["top5"],
                 "one_shot_test_top1": after["top1"], "one_shot_test_top5": after["top5"],
                 "layer_kept_after_pruning": list(result.layer_kept)}
        logging.info("One-shot Global MP to %.4f: top-1 %.4f -> %.4f before fine-tuning",
                     result.achieved_sparsity, before["top1"], after["top1"])
    callbacks = [_EpochLog(state, history, extra, config.batch_size, steps,
                           {"train_top1": "top1", "test_top1": "val_top1",
                            "test_top5": "val_top5"}, every_steps=config.checkpoint_every_steps)]
    if config.mode != "dense":
        callbacks.insert(0, controller.UpdateGlobalPruningStep())
    if in_epoch:  # finish the interrupted epoch, then go on with whole epochs
        logging.info("Resuming inside epoch %d after %d of its %d steps", done_epochs + 1,
                     in_epoch, steps)
        model.fit(train_ds, epochs=done_epochs + 1, initial_epoch=done_epochs,
                  steps_per_epoch=steps - in_epoch, validation_data=test_ds,
                  validation_steps=eval_steps, callbacks=callbacks, verbose=config.verbose)
        done_epochs += 1
    if done_epochs < config.epochs:
        model.fit(train_ds, epochs=config.epochs, initial_epoch=done_epochs,
                  steps_per_epoch=steps, validation_data=test_ds, validation_steps=eval_steps,
                  callbacks=callbacks, verbose=config.verbose)
    final = model.evaluate(test_ds, steps=eval_steps, verbose=0, return_dict=True)
    pruning = _pruning_summary(model) if config.mode != "dense" else {}
    identical = (replicas_hold_identical_masks(model, strategy)
                 if config.mode != "dense" else None)
    stripped = prune.strip_pruning(model) if config.mode != "dense" else model
    plain = _plain_copy(config, info["num_classes"], config.image_size, stripped)
    layer_report = report.sparsity_report(plain)
    at_224 = plain if config.image_size == 224 else _plain_copy(config, info["num_classes"],
                                                                224, plain)
    flops_report = flops.flops_report(at_224)
    target = config.sparsity if config.mode != "dense" else 0.0
    at_target = [h for h in history if h["sparsity"] >= target - 1e-6] or history
    best = max(at_target, key=lambda h: h["test_top1"]) if at_target else None
    speeds = [h["train_images_per_s"] for h in history[1:]] or [
        h["train_images_per_s"] for h in history]
    metrics = {
        "data": info["name"],
        "model": config.model,
        "mode": config.mode,
        "preset": config.preset,
        "budget": config.budget,
        "completed": True,
        "epochs_done": len(history),
        "epochs_target": config.epochs,
        "steps_per_epoch": steps,
        "replicas": strategy.num_replicas_in_sync,
        "best_test_top1": best["test_top1"] if best else final["top1"],
        "best_test_top5": best["test_top5"] if best else final["top5"],
        "best_epoch": best["epoch"] if best else 0,
        "final_test_top1": final["top1"],
        "final_test_top5": final["top5"],
        "target_sparsity": target,
        "achieved_sparsity": layer_report.total.sparsity,
        "prunable_weights": layer_report.total.weights,
        "nonzero_prunable_weights": layer_report.total.nonzero,
        "model_parameters": int(plain.count_params()),
        **flops.summary(flops_report),
        "flops_counted_at": "224x224, multiply-adds (tf_globalmp.flops)",
        **pruning,
        "masks_identical_across_local_replicas": identical,
        "mask_sha1": mask_digest(model) if config.mode != "dense" else None,
        **{k: v for k, v in extra.items() if k != "layer_kept_after_pruning"},
        "masks_fixed_during_finetune": (
            controller.GlobalPruner(model).layer_kept() == extra["layer_kept_after_pruning"]
            if "layer_kept_after_pruning" in extra else None),
        "train_images_per_s": round(float(np.median(speeds)), 1) if speeds else None,
        "precision": config.precision,
        "wall_time_s_this_attempt": round(time.time() - start, 2),
        "history": history,
    }
    if chief:
        files = {"flops.json": lambda path: _write_json_atomic(path, flops_report.to_dict())}
        if history:
            files["history.png"] = lambda path: plot_history(
                path, history, f"{config.model} {config.mode} ({config.budget})")
        metrics = write_run_dir(
            workdir, plain, config_dict, metrics, layer_report.to_dict(),
            export_tflite=config.export_tflite, extra_files=files,
            plot_title=(f"{config.model} {config.mode}, ImageNet ({config.budget})"
                        if config.mode != "dense" else None))
    logging.info("ImageNet %s %s (%s): best top-1 %.4f, final %.4f, sparsity %.4f, FLOPs "
                 "pruned %.4f", config.model, config.mode, config.budget,
                 metrics["best_test_top1"], final["top1"], metrics["achieved_sparsity"],
                 metrics["flops_pruned"])
    return metrics
