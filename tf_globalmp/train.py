"""Training glue: `run(config, workdir) -> metrics` (quickstart: dense, prune, fine-tune)."""

import dataclasses
import json
import os
import shutil
import tempfile
import time

from absl import logging

from tf_globalmp import _compat
from tf_globalmp import controller
from tf_globalmp import prune
from tf_globalmp import report
from tf_globalmp import schedules
from tf_globalmp.data import digits
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


def write_run_dir(workdir, model, config, metrics, sparsity, export_tflite=False):
    """Writes model + JSON files into `workdir` atomically (temp dir, then rename).

    With `export_tflite`, also `model.tflite` (sparse float32, verified against the
    Keras model) and its report `model.tflite.json`; `metrics["tflite"]` gets the
    file's bytes and its ratio to the dense float32 file.
    """
    parent = os.path.dirname(os.path.abspath(workdir)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp_run_", dir=parent)
    try:
        model.save(os.path.join(tmp, "model.keras"))
        if export_tflite:
            from tf_globalmp import export  # the converter loads only when asked

            exported = export.export_tflite(model, os.path.join(tmp, "model.tflite"))
            metrics = dict(metrics, tflite={
                "file": "model.tflite", "bytes": exported.bytes,
                "dense_float32_bytes": exported.dense_bytes,
                "ratio": round(exported.ratio, 4),
                "max_rel_diff": exported.max_rel_diff,
            })
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
    if export_tflite:  # the report was written in the temp dir: point it at the file
        report_path = os.path.join(workdir, "model.tflite.json")
        with open(report_path) as f:
            data = json.load(f)
        data["path"] = os.path.join(workdir, "model.tflite")
        with open(report_path, "w") as f:
            json.dump(data, f, indent=2)
    return metrics


def run(config, workdir, verbose=0):
    """Quickstart: train a dense CNN on digits, prune it to `config.sparsity` with
    one global threshold and MT, fine-tune with the mask fixed, write the run dir.

    Returns the metrics dict (also written to `workdir/metrics.json`).
    """
    config.validate()
    start = time.time()
    keras.utils.set_random_seed(config.seed)
    train, test, info = digits.load(config)
    model = small_cnn.build(info["input_shape"], info["num_classes"], config.filters,
                            config.hidden_units)
    _compile(model, config.learning_rate)
    logging.info("Training dense model for %d epochs", config.epochs)
    model.fit(train, epochs=config.epochs, verbose=verbose)
    dense_accuracy = _accuracy(model, test)
    logging.info("Dense test accuracy %.4f", dense_accuracy)

    schedule = schedules.GlobalConstantSparsity(config.sparsity, begin_step=0)
    pruned = prune.prune_low_magnitude_global(
        model, schedule, min_weights_fraction=config.min_weights_fraction,
        redistribution=config.redistribution,
    )
    _compile(pruned, config.finetune_learning_rate)
    pruner = controller.GlobalPruner(pruned)
    pruner.prune_to(config.sparsity, step=0)  # one-shot, before fine-tuning
    one_shot_accuracy = _accuracy(pruned, test)
    logging.info("Fine-tuning for %d epochs at %.1f%% sparsity", config.finetune_epochs,
                 100 * config.sparsity)
    pruned.fit(train, epochs=config.finetune_epochs, verbose=verbose,
               callbacks=[controller.UpdateGlobalPruningStep()])
    pruned_accuracy = _accuracy(pruned, test)
    stripped = prune.strip_pruning(pruned)
    layer_report = report.sparsity_report(stripped)
    metrics = {
        "data": info["name"],
        "dense_accuracy": dense_accuracy,
        "one_shot_accuracy_before_finetune": one_shot_accuracy,
        "pruned_accuracy": pruned_accuracy,
        "target_sparsity": config.sparsity,
        "achieved_sparsity": layer_report.total.sparsity,
        "min_weights_per_layer": pruner.sigma,
        "budget": {"epochs": config.epochs, "finetune_epochs": config.finetune_epochs},
        "wall_time_s": round(time.time() - start, 2),
    }
    metrics = write_run_dir(workdir, stripped, dataclasses.asdict(config), metrics,
                            layer_report.to_dict(), export_tflite=config.export_tflite)
    return metrics, layer_report
