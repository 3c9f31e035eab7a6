"""CIFAR-10 task: dense training, one-shot Global MP of a dense run + fine-tuning, or
gradual Global MP from scratch (see `configs.Cifar10Config`)."""

import os
import time

import tensorflow as tf
from absl import logging

from tf_globalmp import _compat
from tf_globalmp import configs
from tf_globalmp import controller
from tf_globalmp import export
from tf_globalmp import flops
from tf_globalmp import min_threshold
from tf_globalmp import models
from tf_globalmp import prune
from tf_globalmp import report
from tf_globalmp import runs
from tf_globalmp.data import cifar10 as cifar10_data
from tf_globalmp.tasks import channel_pruning
from tf_globalmp.tasks import common
from tf_globalmp.tasks import epoch_logs
from tf_globalmp.tasks import qat as qat_task

keras = _compat.keras


def build_model(config, info, steps_per_epoch):
    """The (wrapped, for pruning modes) model, built in the current strategy scope."""
    if (config.mixed_bfloat16 and not tf.config.list_physical_devices("GPU")
            and common.cpu_has_native_bfloat16() is False):
        logging.warning("mixed_bfloat16 on a CPU without native bfloat16 (no amx_bf16 or "
                        "avx512_bf16 flag): it is emulated and much slower than float32 "
                        "(ResNet-32 on an AMD EPYC: 5 vs 31 img/s); pass --nomixed_bfloat16")
    with common.precision_policy("mixed_bfloat16" if config.mixed_bfloat16 else "float32"):
        model = models.build_cifar(config.model, info["num_classes"], info["input_shape"],
                                   config.dropout)
        if config.mixed_bfloat16:  # the loss and softmax in float32
            model = common.float32_logits(model)
    if config.mode == "one_shot":
        runs.copy_weights_by_name(model, runs.load_model(config.pretrained),
                                  config.pretrained)
    if channel_pruning.enabled(config):
        model = channel_pruning.wrap(model, config, common.pruning_schedule(
            config, steps_per_epoch), config.layer_distribution)
    elif config.mode != "dense" and config.layer_distribution == "tfmot":
        model = prune.prune_low_magnitude_tfmot(
            model, common.pruning_schedule(config, steps_per_epoch))
    elif config.mode != "dense":
        model = prune.prune_low_magnitude_global(
            model, common.pruning_schedule(config, steps_per_epoch),
            min_weights=config.min_weights, min_weights_fraction=config.min_weights_fraction,
            redistribution=config.redistribution, distribution=config.layer_distribution)
    return model


def compile_model(model, config, steps_per_epoch):
    """`common.compile_sgd` with top-1 accuracy as the metric."""
    common.compile_sgd(model, config, steps_per_epoch, metrics=["accuracy"])


def _prune_one_shot(model, test_ds, tfmot_baseline, sparsity):
    """Prunes the freshly loaded dense weights; returns the `extra` state entries."""
    extra = {"dense_test_accuracy": common.accuracy(model, test_ds)}  # not yet masked
    if tfmot_baseline:
        prune.prune_tfmot_now(model)
    else:
        controller.GlobalPruner(model).prune_to(sparsity, step=0)
    extra["one_shot_test_accuracy"] = common.accuracy(model, test_ds)
    extra["layer_kept_after_pruning"] = common.layer_kept(model)
    logging.info("One-shot %s to %.4f: test accuracy %.4f -> %.4f before fine-tuning",
                 "tfmot prune_low_magnitude" if tfmot_baseline else "Global MP",
                 common.mask_sparsity(model), extra["dense_test_accuracy"],
                 extra["one_shot_test_accuracy"])
    return extra


def _tflite_file(stripped, test_ds, quantize=None, calibration=None):
    """`runs.write_run_dir` extra file: model.tflite of the float32 network, verified
    (quantized as `quantize`; int8 calibrated on `calibration`, training images)."""
    sample = next(iter(test_ds))[0].numpy()[:16]
    representative = calibration if quantize == "int8" else sample

    def write_tflite(path):
        tflite = export.export_tflite(common.float32_copy(stripped), path, quantize=quantize,
                                      representative_dataset=representative,
                                      compare_dense=True)
        return dict(tflite_bytes=tflite.bytes, tflite_gzip_bytes=tflite.gzip_bytes,
                    tflite_dense_bytes=tflite.dense_bytes)

    return write_tflite


def run(config, workdir):
    """Trains `config` (see the module doc).

    Resumable: every epoch (model, masks, optimizer) is checkpointed in `workdir`, and
    every `config.checkpoint_every_steps` steps; calling again with the same config
    continues from the last complete save (a finished run is returned as is). Writes
    the run dir: model.keras, config.json, metrics.json (best and final test accuracy,
    sparsity, budget, per-epoch history), sparsity.json (per-layer table), flops.json,
    and model.tflite if `config.export_tflite` (quantized as `config.quantize`). With
    `config.qat_epochs`, the trained model then goes through sparsity-preserving QAT
    (`tasks/qat.py`, resumable too): model_qat.h5, metrics["qat"], and the int8
    model.tflite of the QAT model.

    Returns the metrics dict.
    """
    config_dict, done = runs.begin_run(config, workdir)
    if done is not None:
        return done
    start = time.time()
    config = channel_pruning.resolve(config, lambda: runs.load_model(config.pretrained))
    train_ds, test_ds, info = cifar10_data.load(config)
    steps_per_epoch = info["steps_per_epoch"]
    strategy = common.make_strategy(config.distribution)
    with strategy.scope():
        model = build_model(config, info, steps_per_epoch)
        compile_model(model, config, steps_per_epoch)
    os.makedirs(workdir, exist_ok=True)
    state = runs.RunState(workdir, model, config_dict, configs.common.resumable_fields(config),
                           defaults=configs.common.default_values(config))
    done_epochs, history, extra = state.restore()
    in_epoch = common.steps_into_epoch(state.step, done_epochs, steps_per_epoch)
    tfmot_baseline = config.mode != "dense" and config.layer_distribution == "tfmot"
    if config.mode == "one_shot" and not done_epochs and not in_epoch:
        extra = _prune_one_shot(model, test_ds, tfmot_baseline, config.sparsity)
    callbacks = [epoch_logs.EpochLog(
        state, history, extra, config.batch_size, steps_per_epoch,
        {"train_accuracy": "accuracy", "test_accuracy": "val_accuracy"},
        every_steps=config.checkpoint_every_steps,
        **channel_pruning.epoch_log_options(model, config))]
    if tfmot_baseline:
        callbacks.insert(0, _compat.tfmot.sparsity.keras.UpdatePruningStep())
    elif config.mode != "dense":
        callbacks.insert(0, controller.UpdateGlobalPruningStep())

    def data(epoch, skip):  # the data stream exactly where a resumed run stopped
        if (epoch, skip) == (0, 0):
            return train_ds
        return cifar10_data.load(config, initial_epoch=epoch, skip_batches=skip)[0]

    common.fit_epochs(model, data, done_epochs, in_epoch, config.epochs, steps_per_epoch,
                      validation_data=test_ds, callbacks=callbacks, verbose=config.verbose)
    final = common.accuracy(model, test_ds)
    pruned = config.mode != "dense"
    layer_kept = common.layer_kept(model) if pruned else None
    stripped = prune.strip_pruning(model) if pruned else model
    layer_report = report.sparsity_report(stripped)
    target = config.sparsity if pruned else 0.0
    exported, channel_metrics, channel_files = stripped, {}, {}
    if channel_pruning.enabled(config):  # in channel groups; the shrunk model is exported
        target = channel_pruning.target_sparsity(model, config)
        exported, channel_metrics, channel_files = channel_pruning.finish(model, stripped)
    best = common.best_at_target(history, target, "test_accuracy")
    flops_report = flops.flops_report(stripped)
    if config.qat_epochs:  # resumable too (workdir/qat_state/)
        qat_model, qat_metrics = qat_task.train(config, exported, workdir, strategy, test_ds,
                                                steps_per_epoch)
    metrics = {
        **common.metrics_head(config, info, history),
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
        "train_images_per_s": common.median_after_first(history, "train_images_per_s", 1),
        "mixed_bfloat16": config.mixed_bfloat16,
        "wall_time_s_this_attempt": round(time.time() - start, 2),
        **channel_metrics,
        "history": history,
    }
    files = {"flops.json": lambda path: runs.write_json_atomic(path, flops_report.to_dict()),
             **channel_files}
    if config.qat_epochs:
        metrics["qat"] = qat_metrics
        files["model_qat.h5"] = qat_task.h5_file(qat_model)
    if config.export_tflite and config.qat_epochs:
        files["model.tflite"] = qat_task.int8_file(qat_model, test_ds)
    elif config.export_tflite:
        quantize = None if config.quantize == "none" else config.quantize
        calibration = next(iter(train_ds))[0].numpy() if quantize == "int8" else None
        files["model.tflite"] = _tflite_file(exported, test_ds, quantize, calibration)
    metrics = runs.write_run_dir(
        workdir, stripped, config_dict, metrics, layer_report.to_dict(), extra_files=files,
        plot_title=(f"{config.model} {config.mode}, CIFAR-10 ({config.budget})"
                    if pruned else None))
    logging.info("CIFAR-10 %s %s (%s): best test %.4f (epoch %s), final %.4f, sparsity %.4f",
                 config.model, config.mode, config.budget, metrics["best_test_accuracy"],
                 metrics["best_epoch"], final, metrics["achieved_sparsity"])
    return metrics
