"""The quantization-aware phase of a CIFAR-10 run (`config.qat_epochs`): after pruning +
fine-tuning, `tf_globalmp.sparsity_preserving_qat` of the trained model, trained with
plain `model.fit` (SGD, the run's recipe at `qat_learning_rate`, cosine to 0),
checkpointed every epoch (and every `checkpoint_every_steps`) in `workdir/qat_state/`,
so a killed run resumes inside this phase too; then the int8 file when exporting.
"""

import dataclasses
import time

import numpy as np
from absl import logging

from tf_globalmp import configs
from tf_globalmp import export
from tf_globalmp import qat
from tf_globalmp import runs
from tf_globalmp.data import cifar10 as cifar10_data
from tf_globalmp.tasks import common
from tf_globalmp.tasks import epoch_logs

STATE_DIR = "qat_state"  # the QAT phase's checkpoints inside a run's workdir


def optimiser_config(config):
    """`config` with the optimiser fields of the QAT phase: `qat_epochs` epochs from
    `qat_learning_rate`, cosine to 0, no warmup (momentum, Nesterov, weight decay,
    label smoothing as the run)."""
    return dataclasses.replace(config, epochs=config.qat_epochs,
                               learning_rate=config.qat_learning_rate, lr_schedule="cosine",
                               warmup_epochs=0.0, lr_boundaries=(), lr_step_every=0)


def quantized_sparsity(model):
    """Fraction of zeros among the QAT model's quantized weights (kernel * mask)."""
    return qat.sparsity_report(model).total.sparsity


def pruned_weights_are_zero(model):
    """True if every masked-out kernel entry of the QAT model is exactly 0."""
    return all(not np.any(kernel.numpy()[mask.numpy() == 0])
               for _, _, kernel, mask in qat.masked_kernels(model))


def build(config, trained, strategy, steps_per_epoch):
    """The compiled QAT model of the trained, stripped model (float32: a mixed
    precision model is copied to float32 first), in `strategy`'s scope."""
    with strategy.scope():
        source = common.float32_copy(trained) if config.mixed_bfloat16 else trained
        model = qat.sparsity_preserving_qat(source)
        common.compile_sgd(model, optimiser_config(config), steps_per_epoch,
                           metrics=["accuracy"])
    return model


def train(config, trained, workdir, strategy, test_ds, steps_per_epoch):
    """Runs (or resumes) the QAT phase; returns (QAT model, metrics["qat"])."""
    start = time.time()
    model = build(config, trained, strategy, steps_per_epoch)
    config_dict = dataclasses.asdict(config)
    state = runs.RunState(workdir, model, config_dict,
                          configs.common.resumable_fields(config), name=STATE_DIR)
    done, history, extra = state.restore()
    in_epoch = common.steps_into_epoch(state.step, done, steps_per_epoch)
    callback = epoch_logs.EpochLog(
        state, history, extra, config.batch_size, steps_per_epoch,
        {"train_accuracy": "accuracy", "test_accuracy": "val_accuracy"},
        every_steps=config.checkpoint_every_steps, sparsity=quantized_sparsity)

    def data(epoch, skip):  # QAT's epochs follow the run's in the data stream
        return cifar10_data.load(config, initial_epoch=config.epochs + epoch,
                                 skip_batches=skip)[0]

    common.fit_epochs(model, data, done, in_epoch, config.qat_epochs, steps_per_epoch,
                      validation_data=test_ds, callbacks=[callback], verbose=config.verbose)
    metrics = {
        "epochs": config.qat_epochs,
        "learning_rate": config.qat_learning_rate,
        "test_accuracy": common.accuracy(model, test_ds),
        "quantized_weight_sparsity": quantized_sparsity(model),
        "pruned_weights_exactly_zero": pruned_weights_are_zero(model),
        "history": history,
        "wall_time_s_this_attempt": round(time.time() - start, 2),
    }
    logging.info("QAT (%d epochs): test accuracy %.4f (fake-quant), quantized weights "
                 "%.4f sparse", config.qat_epochs, metrics["test_accuracy"],
                 metrics["quantized_weight_sparsity"])
    return model, metrics


def int8_file(model, test_ds):
    """`runs.write_run_dir` extra file: model.tflite, the QAT model as a full-integer
    sparse file, verified against it; its LiteRT top-1 accuracy on the test set and
    agreement with the QAT model's top-1 go into the metrics."""

    def write(path):
        x, y = zip(*[(x.numpy(), y.numpy()) for x, y in test_ds])
        result = export.export_tflite(model, path, quantize="int8",
                                      representative_dataset=x[0][:16], compare_dense=True)
        with open(path, "rb") as f:
            lite = export.tflite_outputs(f.read(), x)[0].argmax(1)
        keras_top1 = np.concatenate([model(b, training=False).numpy() for b in x]).argmax(1)
        labels = np.concatenate(y).argmax(1)
        return dict(tflite_bytes=result.bytes, tflite_gzip_bytes=result.gzip_bytes,
                    tflite_dense_bytes=result.dense_bytes,
                    tflite_weight_sparsity=result.file_sparsity,
                    tflite_test_accuracy=float(np.mean(lite == labels)),
                    tflite_top1_agreement=float(np.mean(lite == keras_top1)))

    return write


def h5_file(model):
    """`runs.write_run_dir` extra file: the QAT model as h5 (load it under
    `tf_globalmp.qat.qat_scope()`; tfmot's QAT models do not reload from .keras)."""

    def write(path):
        model.save(path)

    return write
