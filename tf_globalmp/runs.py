"""Run directories: what a finished run leaves in its workdir, and the per-epoch state a
killed run resumes from.

A finished run dir holds `model.keras`, `config.json`, `metrics.json` (with
`"completed": true`), `sparsity.json` and the task's extra files; it is written in a
temp dir next to it and renamed into place (`write_run_dir`), so it is complete or
absent. While training, `workdir/train_state/` holds the last checkpoint
(`RunState`); `begin_run` returns a finished run's metrics instead of training again.
"""

import dataclasses
import json
import os
import shutil
import tempfile

import tensorflow as tf
from absl import logging

from tf_globalmp import _compat
from tf_globalmp import export
from tf_globalmp import prune
from tf_globalmp import report
from tf_globalmp import serializables

keras = _compat.keras

STATE_DIR = "train_state"  # per-epoch checkpoints inside a run's workdir (every task)


def write_json_atomic(path, data):
    """Writes `data` as JSON to `path` through a temp file and a rename."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
    os.replace(tmp, path)


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
            exported = export.export_tflite(model, os.path.join(tmp, "model.tflite"),
                                            compare_dense=True)
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
            write_json_atomic(report_path, data)
    return metrics


def load_sparsity_report(workdir):
    """The `report.SparsityReport` of a run dir, read back from its `sparsity.json`."""
    with open(os.path.join(workdir, "sparsity.json")) as f:
        data = json.load(f)

    def row(d):
        return report.LayerRow(name=d["name"], shape=tuple(d["shape"]), weights=d["weights"],
                               nonzero=d["nonzero"], macs=d.get("macs"))

    return report.SparsityReport(rows=tuple(row(d) for d in data["layers"]),
                                 total=row(data["global"]))


class RunState:
    """Training state in `workdir/<name>/` (model incl. masks and pruning step,
    optimizer incl. its step) at every epoch end, and for CIFAR-10/ImageNet also every
    `checkpoint_every_steps` steps.

    Each save is written to a new `epoch_NNNN/` (or `step_NNNNNNNNN/`) directory, then
    `state.json` is atomically replaced to point at it, then older saves are deleted:
    a run killed at any moment resumes from its last complete save. After `restore`,
    `step` is the optimizer step of that save (None for saves without it).

    `resumable` names the config fields that may differ when a run is resumed (they
    do not change the run: threads, labels, data locations); any other difference is
    refused. A field the saved run does not have (added to the config after the run
    was started) is accepted when it holds its value in `defaults`, the behaviour the
    run had.
    """

    def __init__(self, workdir, model, config_dict, resumable, name=STATE_DIR, defaults=None):
        self.dir = os.path.join(workdir, name)
        self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
        self.config = json.loads(json.dumps(config_dict))  # as stored (tuples -> lists)
        self.resumable = tuple(resumable)
        self.defaults = json.loads(json.dumps(defaults or {}))
        self.step = None

    def restore(self):
        """(epochs done, history, extra) of a previous attempt, or (0, [], {})."""
        path = os.path.join(self.dir, "state.json")
        if not os.path.exists(path):
            return 0, [], {}
        with open(path) as f:
            state = json.load(f)
        saved = {**{k: v for k, v in self.defaults.items() if k in self.config},
                 **state["config"]}
        changed = sorted(
            k for k in set(saved) | set(self.config)
            if k not in self.resumable and saved.get(k) != self.config.get(k)
        )
        if changed:
            diff = ", ".join(f"{k}={saved.get(k)!r}" for k in changed)
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
        write_json_atomic(os.path.join(self.dir, "state.json"), {
            "epoch": epoch, "step": step, "prefix": os.path.relpath(prefix, self.dir),
            "history": history, "extra": extra, "config": self.config,
        })
        for old in os.listdir(self.dir):
            if old.startswith(("epoch_", "step_")) and old != name:
                shutil.rmtree(os.path.join(self.dir, old), ignore_errors=True)


def begin_run(config, workdir):
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


def _set_threads(threads):
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # TensorFlow already initialised (tests, notebooks)
        logging.info("TensorFlow threads already fixed; threads=%d not applied", threads)


def copy_weights_by_name(model, source, source_name):
    """Copies every weighted layer of `model` from the same-named layer of `source`
    (a model loaded from the run dir `source_name`, named in the error)."""
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            other = source.get_layer(layer.name)
        except ValueError:
            raise ValueError(f"pretrained model {source_name!r} has no layer {layer.name!r}: "
                             f"is it a {model.name} run?") from None
        layer.set_weights(other.get_weights())


# ------------------------------------------------------------------------- CLI
def load_model(path):
    """Loads a tf-keras model (wrapped or not) from a SavedModel dir, .keras or .h5.

    A run directory (``saved_models/<run>/``) holding ``model.keras`` also works.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model at {path!r}")
    if os.path.isdir(path) and not os.path.exists(os.path.join(path, "saved_model.pb")):
        candidates = [os.path.join(path, n) for n in ("model.keras", "model.h5", "model")]
        found = [c for c in candidates if os.path.exists(c)]
        if not found:
            raise FileNotFoundError(
                f"{path!r} is a directory without saved_model.pb, model.keras or model.h5"
            )
        path = found[0]
    serializables.register()  # the package's custom layers, by their saved names
    with prune.prune_scope():
        try:
            return _compat.keras.models.load_model(path, compile=False)
        except Exception as e:
            first = next((l for l in str(e).splitlines() if l.strip()), type(e).__name__)
            raise ValueError(f"cannot load a tf-keras model from {path!r}: {first[:300]}") from e
