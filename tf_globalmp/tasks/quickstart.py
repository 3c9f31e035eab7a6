"""Quickstart task: a small CNN on scikit-learn's digits, trained dense, pruned once
with one global threshold and MT, fine-tuned with the mask fixed."""

import os
import time

from absl import logging

from tf_globalmp import _compat
from tf_globalmp import configs
from tf_globalmp import controller
from tf_globalmp import prune
from tf_globalmp import report
from tf_globalmp import runs
from tf_globalmp import schedules
from tf_globalmp.data import digits
from tf_globalmp.models import small_cnn
from tf_globalmp.tasks import common
from tf_globalmp.tasks import epoch_logs

keras = _compat.keras


def _compile(model, learning_rate):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.optimizer.build(model.trainable_variables)  # its slots restore from checkpoints


def run(config, workdir, verbose=0):
    """Trains the dense CNN, prunes it to `config.sparsity`, fine-tunes, writes the run
    dir (model.keras, config.json, metrics.json, sparsity.json, layer_sparsity.png;
    model.tflite if `config.export_tflite`). `verbose` is Keras' progress setting.

    Resumable: both phases are checkpointed every epoch in `workdir`; calling again
    with the same config continues (a finished run is returned as is).

    Returns the metrics dict (also in `workdir/metrics.json`; the per-layer table is
    `runs.load_sparsity_report(workdir)`).
    """
    config_dict, done = runs.begin_run(config, workdir)
    if done is not None:
        return done
    start = time.time()
    resumable = configs.common.resumable_fields(config)
    _, test, info = digits.load(config)
    steps = info["steps_per_epoch"]
    model = small_cnn.build(info["input_shape"], info["num_classes"], config.filters,
                            config.hidden_units)
    _compile(model, config.learning_rate)
    os.makedirs(workdir, exist_ok=True)
    dense_state = runs.RunState(workdir, model, config_dict, resumable,
                                os.path.join(runs.STATE_DIR, "dense"))
    finetune_name = os.path.join(runs.STATE_DIR, "finetune")
    if not os.path.exists(os.path.join(workdir, finetune_name, "state.json")):
        done_epochs, history, _ = dense_state.restore()
        logging.info("Training dense model for %d epochs", config.epochs)
        model.fit(digits.load(config, initial_epoch=done_epochs)[0], epochs=config.epochs,
                  initial_epoch=done_epochs, steps_per_epoch=steps, validation_data=test,
                  callbacks=[epoch_logs.AccuracyLog(dense_state, history, {}, [], [])],
                  verbose=verbose)

    schedule = schedules.GlobalConstantSparsity(config.sparsity, begin_step=0)
    pruned = prune.prune_low_magnitude_global(
        model, schedule, min_weights_fraction=config.min_weights_fraction,
        redistribution=config.redistribution,
    )
    _compile(pruned, config.finetune_learning_rate)
    pruner = controller.GlobalPruner(pruned)
    state = runs.RunState(workdir, pruned, config_dict, resumable, finetune_name)
    done_epochs, history, extra = state.restore()
    if not done_epochs:
        extra = {"dense_accuracy": common.accuracy(model, test)}
        logging.info("Dense test accuracy %.4f", extra["dense_accuracy"])
        pruner.prune_to(config.sparsity, step=0)  # one-shot, before fine-tuning
        extra["one_shot_accuracy"] = common.accuracy(pruned, test)
    logging.info("Fine-tuning for %d epochs at %.1f%% sparsity", config.finetune_epochs,
                 100 * config.sparsity)
    pruned.fit(digits.load(config, initial_epoch=done_epochs)[0],
               epochs=config.finetune_epochs, initial_epoch=done_epochs,
               steps_per_epoch=steps, validation_data=test, verbose=verbose,
               callbacks=[controller.UpdateGlobalPruningStep(),
                          epoch_logs.AccuracyLog(state, history, extra, [], [])])
    pruned_accuracy = common.accuracy(pruned, test)
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
    return runs.write_run_dir(
        workdir, stripped, config_dict, metrics, layer_report.to_dict(),
        export_tflite=config.export_tflite,
        plot_title=f"Quickstart CNN, global {100 * config.sparsity:g}%")
