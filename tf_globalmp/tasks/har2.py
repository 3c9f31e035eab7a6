"""HAR-2 task: FastGRNN trained dense, or fine-tuned from a dense run after structured
(rank) or unstructured Global MP."""

import json
import os
import time

import numpy as np
from absl import logging

from tf_globalmp import _compat
from tf_globalmp import configs
from tf_globalmp import controller
from tf_globalmp import export
from tf_globalmp import optim
from tf_globalmp import prune
from tf_globalmp import report
from tf_globalmp import runs
from tf_globalmp import schedules
from tf_globalmp import structured
from tf_globalmp import wrapping
from tf_globalmp.data import har
from tf_globalmp.models import fastgrnn
from tf_globalmp.tasks import common
from tf_globalmp.tasks import epoch_logs

keras = _compat.keras


def factor_ranks(model):
    """numpy matrix ranks of W1 W2 and U1 U2 (masked weights if wrapped); None for a
    product that is not finite (a diverged run)."""
    cell = fastgrnn.cell_of(model)
    wrappers = wrapping.collect_wrappers(model)
    masks = {id(w): m for wr in wrappers for w, m, _ in wr.pruning_vars}

    def value(v):
        m = masks.get(id(v))
        return v.numpy() * (m.numpy() if m is not None else 1.0)

    products = [value(a) @ value(b) for a, b in ((cell.W1, cell.W2), (cell.U1, cell.U2))]
    return [int(np.linalg.matrix_rank(p)) if np.all(np.isfinite(p)) else None
            for p in products]


def _pruned_model(config, dense, steps_per_epoch):
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


def _tflite_files(stripped, sample, structured_mode):
    """`runs.write_run_dir` extra files: model.tflite (rolled loop, batch 1; verified)
    and, for structured runs, model_compact.tflite (zero ranks removed); sizes -> metrics."""
    def sparse(path):
        tflite = export.export_tflite(fastgrnn.for_tflite(stripped), path,
                                      representative_dataset=sample, compare_dense=True)
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


def _add_tflite_to_finished(config, workdir, done):
    """A finished run asked again with `export_tflite`: adds the missing files."""
    sample = har.har2_arrays(config.data_dir, config.validation_fraction,
                             config.validation_seed)["x_test"][:1]
    files = _tflite_files(runs.load_model(workdir), sample, done.get("mode") == "structured")
    for name, write in files.items():
        done.update(write(os.path.join(workdir, name)))
    runs.write_json_atomic(os.path.join(workdir, "metrics.json"), done)
    return done


def learning_rate(config, steps_per_epoch):
    """Adam's learning rate: `config.learning_rate` (constant), or an
    `optim.WarmupSchedule` of the optimizer step (cosine to 0 over `config.epochs`;
    step: x `lr_decay_factor` at each of `lr_boundaries` epochs)."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    return optim.WarmupSchedule(
        config.learning_rate, max(config.epochs * steps_per_epoch, 1), config.lr_schedule,
        boundaries=[b * steps_per_epoch for b in config.lr_boundaries],
        factor=config.lr_decay_factor)


def _build(config, info, steps_per_epoch):
    """(compiled model, mask rule, target sparsity, the dense run's metrics)."""
    rule, target_sparsity, dense_metrics = None, 0.0, {}
    if config.mode == "dense":
        model = fastgrnn.build(info["input_shape"][0], info["input_shape"][1], config.units,
                               config.w_rank, config.u_rank, info["num_classes"],
                               unroll=config.unroll)
    else:
        dense = runs.load_model(config.pretrained)
        dense_path = os.path.join(config.pretrained, "metrics.json")
        if os.path.exists(dense_path):
            with open(dense_path) as f:
                dense_metrics = json.load(f)
        model, rule, target_sparsity = _pruned_model(config, dense, steps_per_epoch)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate(config, steps_per_epoch),
                                        global_clipnorm=config.clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=config.steps_per_execution,
    )
    model.optimizer.build(model.trainable_variables)
    return model, rule, target_sparsity, dense_metrics


def run(config, workdir, verbose=0):
    """FastGRNN on HAR-2: dense training, or fine-tuning `config.pretrained` after
    structured (rank) or unstructured Global MP. Resumable: every epoch is
    checkpointed in `workdir`; calling again with the same config continues (a
    finished run is returned as is). Writes the run dir (model.keras, config.json,
    metrics.json incl. per-epoch history, sparsity.json; model.tflite if asked).
    `verbose` is Keras' progress setting. With `config.validation_fraction` > 0 (a
    tuning run) the accuracies are those of the held-out training subjects
    (`*_val_accuracy`) and the test set is not evaluated; else `*_test_accuracy`.

    Returns the metrics dict.
    """
    config_dict, done = runs.begin_run(config, workdir)
    if done is not None:
        if config.export_tflite and not os.path.exists(os.path.join(workdir, "model.tflite")):
            return _add_tflite_to_finished(config, workdir, done)
        return done
    start = time.time()
    train_ds, test_ds, info = har.load(config)
    steps_per_epoch = info["steps_per_epoch"]
    model, rule, target_sparsity, dense_metrics = _build(config, info, steps_per_epoch)
    os.makedirs(workdir, exist_ok=True)
    state = runs.RunState(workdir, model, config_dict, configs.common.resumable_fields(config),
                           defaults=configs.common.default_values(config))
    done_epochs, history, extra = state.restore()
    if done_epochs:  # continue the data stream exactly where the last epoch ended
        train_ds = har.load(config, initial_epoch=done_epochs)[0]
    # A tuning run (validation split) measures on the held-out training subjects and
    # never evaluates the test set; any other run measures on the test set.
    tuning = config.validation_fraction > 0
    watched = "val" if tuning else "test"

    def watched_accuracy():
        if tuning:
            return float(model.evaluate(info["x_val"], info["y_val"], batch_size=500,
                                        verbose=0)[1])
        return common.accuracy(model, test_ds)

    if config.mode != "dense" and not done_epochs:
        pruner = controller.GlobalPruner(model, mask_rule=rule)
        result = pruner.prune_to(target_sparsity, step=0)
        extra = {f"one_shot_{watched}_accuracy": watched_accuracy(),
                 "layer_kept_after_pruning": list(result.layer_kept),
                 "ranks_after_pruning": factor_ranks(model)}
        logging.info("One-shot %s pruning: %s accuracy %.4f before fine-tuning",
                     config.mode, watched, extra[f"one_shot_{watched}_accuracy"])
    callbacks = [epoch_logs.AccuracyLog(state, history, extra, info["x_val"], info["y_val"])]
    if config.mode != "dense":
        callbacks.insert(0, controller.UpdateGlobalPruningStep(mask_rule=rule))
    if done_epochs < config.epochs:
        model.fit(train_ds, epochs=config.epochs, initial_epoch=done_epochs,
                  steps_per_epoch=steps_per_epoch,
                  validation_data=None if tuning else test_ds,
                  callbacks=callbacks, verbose=verbose)
    history = history[: config.epochs]
    final = watched_accuracy()
    layer_kept = (controller.GlobalPruner(model, mask_rule=rule).layer_kept()
                  if config.mode != "dense" else None)
    ranks = factor_ranks(model)
    stripped = prune.strip_pruning(model) if config.mode != "dense" else model
    layer_report = report.sparsity_report(stripped)
    key = f"{watched}_accuracy"
    best = max(history, key=lambda h: h[key]) if history else None
    metrics = {
        "data": info["name"],
        "mode": config.mode,
        "preset": config.preset,
        "budget": config.budget,
        "completed": True,
        "epochs_done": len(history),
        "epochs_target": config.epochs,
        f"best_{key}": best[key] if best else final,
        "best_epoch": best["epoch"] if best else 0,
        f"final_{key}": final,
        "learning_rate": config.learning_rate,
        "lr_schedule": config.lr_schedule,
        "lr_boundaries": list(config.lr_boundaries),
        "paper_learning_rate": config.paper_learning_rate,
        "learning_rate_note": config.learning_rate_note,
        "batch_size": config.batch_size,
        "clipnorm": config.clipnorm,
        "ranks": ranks,
        "diverged": not all(np.all(np.isfinite(w)) for w in model.get_weights()),
        "target_ranks": list(config.ranks) if config.mode == "structured" else None,
        "target_sparsity": target_sparsity,
        "achieved_sparsity": layer_report.total.sparsity,
        "prunable_weights": layer_report.total.weights,
        "nonzero_prunable_weights": layer_report.total.nonzero,
        "model_parameters": int(stripped.count_params()),
        "masks_fixed_during_finetune": (layer_kept == extra.get("layer_kept_after_pruning")
                                        if layer_kept is not None else None),
        f"one_shot_{key}": extra.get(f"one_shot_{key}"),
        f"dense_best_{key}": dense_metrics.get(f"best_{key}"),
        f"dense_final_{key}": dense_metrics.get(f"final_{key}"),
        "seconds_per_epoch": common.median_after_first(history, "seconds", 3),
        "wall_time_s_this_attempt": round(time.time() - start, 2),
        "history": history,
    }
    if tuning:
        metrics["validation_subjects"] = info["validation_subjects"]
        metrics["validation_examples"] = info["validation_examples"]
    files = (_tflite_files(stripped, info["x_test_sample"][:1], config.mode == "structured")
             if config.export_tflite else {})
    metrics = runs.write_run_dir(
        workdir, stripped, config_dict, metrics, layer_report.to_dict(), extra_files=files,
        plot_title=(f"FastGRNN {config.mode}, HAR-2 ({config.budget})"
                    if config.mode != "dense" else None))
    logging.info("HAR-2 %s: best %s %.4f (epoch %s), final %.4f, ranks %s", config.mode,
                 key, metrics[f"best_{key}"], metrics["best_epoch"], final, ranks)
    return metrics
