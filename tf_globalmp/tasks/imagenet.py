"""ImageNet task: dense training, one-shot Global MP + fine-tuning, or gradual Global MP
(see `configs.ImagenetConfig`), under no strategy, MirroredStrategy or
MultiWorkerMirroredStrategy. Masks are updated once per step in cross-replica context
by `UpdateGlobalPruningStep` (the same mask on every replica and worker)."""

import os
import tempfile
import time

from absl import logging

from tf_globalmp import _compat
from tf_globalmp import configs
from tf_globalmp import controller
from tf_globalmp import flops
from tf_globalmp import prune
from tf_globalmp import report
from tf_globalmp import runs
from tf_globalmp import schedules
from tf_globalmp.data import imagenet as imagenet_data
from tf_globalmp.models import imagenet as imagenet_models
from tf_globalmp.tasks import channel_pruning
from tf_globalmp.tasks import common
from tf_globalmp.tasks import epoch_logs

keras = _compat.keras


def build_model(config, info, steps_per_epoch):
    """The (wrapped, for pruning modes) ImageNet model, built in the current scope.

    Layers compute in `config.precision`; variables, masks and the pruning math are
    float32; the logits are cast to float32 for the loss.
    """
    with common.precision_policy(config.precision):
        model = imagenet_models.build(config.model, info["num_classes"], info["input_shape"],
                                      pretrained=config.pretrained)
        if config.precision != "float32":
            model = common.float32_logits(model)
        if channel_pruning.enabled(config):
            model = channel_pruning.wrap(
                model, config, common.pruning_schedule(config, steps_per_epoch), "global")
        elif config.mode != "dense":  # wrappers share the policy (tfmot calls layer.call)
            model = prune.prune_low_magnitude_global(
                model, common.pruning_schedule(config, steps_per_epoch),
                min_weights=config.min_weights,
                min_weights_fraction=config.min_weights_fraction,
                redistribution=config.redistribution)
    return model


def compile_model(model, config, steps_per_epoch):
    """`common.compile_sgd` with top-1 and top-5 accuracy as the metrics."""
    common.compile_sgd(model, config, steps_per_epoch, metrics=[
        keras.metrics.CategoricalAccuracy(name="top1"),
        keras.metrics.TopKCategoricalAccuracy(5, name="top5")])


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
    runs.copy_weights_by_name(model, source, "the trained model")
    return model


def _prune_one_shot(model, test_ds, eval_steps):
    """Prunes the pretrained weights; returns the `extra` state entries."""
    before = model.evaluate(test_ds, steps=eval_steps, verbose=0, return_dict=True)
    pruner = controller.GlobalPruner(model)
    # The callback re-checks the schedule's sparsity (`schedules.sparsity_at`: the
    # shortest decimal of its float32, 0.9 for 0.89999998): prune to that very
    # value, so the count is the same and the fixed mask is never recomputed.
    result = pruner.prune_to(schedules.sparsity_at(pruner.schedule, 0)[1], step=0)
    after = model.evaluate(test_ds, steps=eval_steps, verbose=0, return_dict=True)
    logging.info("One-shot Global MP to %.4f: top-1 %.4f -> %.4f before fine-tuning",
                 result.achieved_sparsity, before["top1"], after["top1"])
    return {"dense_test_top1": before["top1"], "dense_test_top5": before["top5"],
            "one_shot_test_top1": after["top1"], "one_shot_test_top5": after["top5"],
            "layer_kept_after_pruning": list(result.layer_kept)}


def _train(model, config, data, state, history, extra, in_epoch, done_epochs):
    """Finishes an interrupted epoch (on a fresh pass of the shuffled data), then
    trains the remaining whole epochs."""
    train_ds, test_ds, steps, eval_steps = data
    callbacks = [epoch_logs.EpochLog(
        state, history, extra, config.batch_size, steps,
        {"train_top1": "top1", "test_top1": "val_top1", "test_top5": "val_top5"},
        every_steps=config.checkpoint_every_steps,
        **channel_pruning.epoch_log_options(model, config))]
    if config.mode != "dense":
        callbacks.insert(0, controller.UpdateGlobalPruningStep())
    common.fit_epochs(model, lambda epoch, skip: train_ds, done_epochs, in_epoch,
                      config.epochs, steps, validation_data=test_ds,
                      validation_steps=eval_steps, callbacks=callbacks, verbose=config.verbose)


def run(config, workdir):
    """Trains `config` (see the module doc). Resumable per epoch (and every
    `config.checkpoint_every_steps` steps) like the CIFAR-10 task. Writes the run dir
    (chief only): model.keras (stripped, float32), config.json, metrics.json
    (top-1/top-5 best and final, sparsity, FLOPs pruned at 224x224, layers kept dense
    by MT, per-epoch history), sparsity.json, flops.json (per layer), history.png;
    model.tflite if asked.

    Returns the metrics dict.
    """
    config_dict, done = runs.begin_run(config, workdir)
    if done is not None:
        return done
    start = time.time()
    strategy = common.make_strategy(config.distribution)
    chief = common.is_chief(strategy)
    train_ds, test_ds, info = imagenet_data.load(config, strategy)
    config = channel_pruning.resolve(config, lambda: imagenet_models.build(
        config.model, info["num_classes"], info["input_shape"], pretrained=config.pretrained))
    steps = info["steps_per_epoch"]
    eval_steps = config.eval_steps or None
    with strategy.scope():
        model = build_model(config, info, steps)
        compile_model(model, config, steps)
    out_dir = workdir if chief else tempfile.mkdtemp(prefix="imagenet_worker_")
    os.makedirs(out_dir, exist_ok=True)
    state = runs.RunState(out_dir, model, config_dict, configs.common.resumable_fields(config),
                           defaults=configs.common.default_values(config))
    done_epochs, history, extra = state.restore()
    # Steps already trained in the interrupted epoch (a step-interval checkpoint).
    in_epoch = common.steps_into_epoch(state.step, done_epochs, steps)
    if config.mode == "one_shot" and not done_epochs and not in_epoch:
        extra = _prune_one_shot(model, test_ds, eval_steps)
    _train(model, config, (train_ds, test_ds, steps, eval_steps), state, history, extra,
           in_epoch, done_epochs)
    final = model.evaluate(test_ds, steps=eval_steps, verbose=0, return_dict=True)
    pruned = config.mode != "dense"
    pruning = _pruning_summary(model) if pruned else {}
    identical = common.replicas_hold_identical_masks(model, strategy) if pruned else None
    stripped = prune.strip_pruning(model) if pruned else model
    plain = _plain_copy(config, info["num_classes"], config.image_size, stripped)
    layer_report = report.sparsity_report(plain)
    at_224 = plain if config.image_size == 224 else _plain_copy(config, info["num_classes"],
                                                                224, plain)
    flops_report = flops.flops_report(at_224)
    target = config.sparsity if pruned else 0.0
    channel_metrics, channel_files = {}, {}
    if channel_pruning.enabled(config):  # sparsity in channel groups; the shrunk model
        target = channel_pruning.target_sparsity(model, config)
        _, channel_metrics, channel_files = channel_pruning.finish(model, plain)
    best = common.best_at_target(history, target, "test_top1")
    metrics = {
        **common.metrics_head(config, info, history),
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
        "mask_sha1": common.mask_digest(model) if pruned else None,
        **{k: v for k, v in extra.items() if k != "layer_kept_after_pruning"},
        "masks_fixed_during_finetune": (
            controller.GlobalPruner(model).layer_kept() == extra["layer_kept_after_pruning"]
            if "layer_kept_after_pruning" in extra else None),
        "train_images_per_s": common.median_after_first(history, "train_images_per_s", 1),
        "precision": config.precision,
        **channel_metrics,
        "wall_time_s_this_attempt": round(time.time() - start, 2),
        "history": history,
    }
    if chief:
        files = {"flops.json": lambda path: runs.write_json_atomic(path, flops_report.to_dict()),
                 **channel_files}
        if history:
            files["history.png"] = lambda path: plot_history(
                path, history, f"{config.model} {config.mode} ({config.budget})")
        metrics = runs.write_run_dir(
            workdir, plain, config_dict, metrics, layer_report.to_dict(),
            export_tflite=config.export_tflite, extra_files=files,
            plot_title=(f"{config.model} {config.mode}, ImageNet ({config.budget})"
                        if pruned else None))
    logging.info("ImageNet %s %s (%s): best top-1 %.4f, final %.4f, sparsity %.4f, FLOPs "
                 "pruned %.4f", config.model, config.mode, config.budget,
                 metrics["best_test_top1"], final["top1"], metrics["achieved_sparsity"],
                 metrics["flops_pruned"])
    return metrics
