"""Sparsity-preserving QAT on CIFAR-10: int8 accuracy, int8 sparsity and file size.

    nice -n 5 python benchmarks/qat.py --data_dir /work/shared/data/cifar10-jpeg.tar.gz \\
        --out BENCHMARKS.md --readme README.md

For each committed pruned + fine-tuned model (`--runs`; ResNet-20/32 at 90%, Global MP
and tfmot's per-layer `prune_low_magnitude`): its float32 test accuracy (Keras); the
int8 post-training file (full integer, calibrated on `--calibration` augmented
training images); `tf_globalmp.sparsity_preserving_qat` trained `--qat_epochs` with
the task's QAT phase (`tasks/qat.py`: the run's SGD recipe at `--qat_learning_rate`,
cosine to 0; checkpointed, so a killed benchmark resumes), and its int8 file. Every
file is evaluated in LiteRT (1 thread) on the 10,000 test images; the sparsity is
that of the int8 Conv/Dense weights stored in the file (BatchNorm folded in); bytes
are compared with the dense float32 file of the dense model the run pruned.

Results go to `--results` (JSON, one entry per run, kept between invocations: a run
already there is not measured again); the tables are generated from it.
"""

import tf_globalmp  # noqa: F401  (selects tf-keras first)

import json
import os
import time

from absl import app
from absl import flags
import numpy as np

import sections  # benchmarks/sections.py, beside this script

_RUNS = flags.DEFINE_list("runs", [
    "saved_models/cifar10_resnet20_gmp90_global_1ep_cpu",
    "saved_models/cifar10_resnet20_gmp90_tfmot_1ep_cpu",
    "saved_models/cifar10_resnet32_gmp90_global_1ep_cpu",
    "saved_models/cifar10_resnet32_gmp90_tfmot_1ep_cpu"], "Pruned run directories.")
_DATA = flags.DEFINE_string("data_dir", "/work/shared/data/cifar10-jpeg.tar.gz",
                            "CIFAR-10 image folder or .tar.gz.")
_QAT_EPOCHS = flags.DEFINE_integer("qat_epochs", 1, "QAT epochs (reduced budget).")
_QAT_LR = flags.DEFINE_float("qat_learning_rate", 0.001, "QAT peak learning rate.")
_CALIBRATION = flags.DEFINE_integer("calibration", 512, "Post-training calibration images.")
_THREADS = flags.DEFINE_integer("threads", 1, "TensorFlow and LiteRT threads.")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/tf_globalmp_qat", "QAT checkpoints, files.")
_RESULTS = flags.DEFINE_string("results", "benchmarks/results/qat_cifar10.json",
                               "Results JSON (read, extended, rewritten).")
_OUT = flags.DEFINE_string("out", None, "Write the section into this BENCHMARKS.md.")
_README = flags.DEFINE_string("readme", None, "Write the table between the README markers.")
_TABLE_ONLY = flags.DEFINE_bool("table_only", False, "Only regenerate the tables.")

HEADING = "## Sparsity-preserving quantization-aware training (CIFAR-10)"
BEGIN, END = "<!-- qat-table:begin -->", "<!-- qat-table:end -->"


def _top1(logits, labels):
    return float(np.mean(np.argmax(logits, 1) == labels))


def _measure(run_dir, workdir):
    """One entry of the results: the run's float, post-training int8 and QAT int8."""
    import tensorflow as tf

    from tf_globalmp import configs
    from tf_globalmp import export
    from tf_globalmp import runs
    from tf_globalmp.data import cifar10 as cifar10_data
    from tf_globalmp.tasks import qat as qat_task

    start = time.time()
    with open(os.path.join(run_dir, "config.json")) as f:
        committed = json.load(f)
    with open(os.path.join(run_dir, "metrics.json")) as f:
        run_metrics = json.load(f)
    values = {k: v for k, v in committed.items() if k not in ("preset", "budget")}
    values["lr_boundaries"] = tuple(values["lr_boundaries"])
    values.update(data_dir=_DATA.value, threads=_THREADS.value, verbose=2,
                  checkpoint_every_steps=50, qat_epochs=_QAT_EPOCHS.value,
                  qat_learning_rate=_QAT_LR.value, export_tflite=False)
    config = configs.cifar10_config(**values)
    name = os.path.basename(run_dir)
    train_ds, test_ds, info = cifar10_data.load(config)
    x_test, y_test = zip(*[(x.numpy(), y.numpy()) for x, y in test_ds])
    labels = np.concatenate(y_test).argmax(1)
    calibration = np.concatenate([x.numpy() for x, _ in train_ds.take(
        -(-_CALIBRATION.value // config.batch_size))])[:_CALIBRATION.value]

    kernels = {}

    def litert_top1(path):
        with open(path, "rb") as f:
            outputs, kernels[os.path.basename(path)] = export.tflite_outputs(
                f.read(), x_test, _THREADS.value)
        return outputs

    pruned = runs.load_model(run_dir)
    float_logits = np.concatenate([pruned(x, training=False).numpy() for x in x_test])
    dense = runs.load_model(committed["pretrained"])
    dense_file = export.export_tflite(dense, os.path.join(workdir, "dense_float32.tflite"),
                                      sparse=False, representative_dataset=x_test[0][:16])
    ptq = export.export_tflite(pruned, os.path.join(workdir, "ptq_int8.tflite"),
                               quantize="int8", representative_dataset=calibration)
    ptq_logits = litert_top1(ptq.path)
    model, qat_metrics = qat_task.train(config, pruned, workdir,
                                        tf.distribute.get_strategy(), test_ds,
                                        info["steps_per_epoch"])
    qat_logits = np.concatenate([model(x, training=False).numpy() for x in x_test])
    qat_file = export.export_tflite(model, os.path.join(workdir, "qat_int8.tflite"),
                                    quantize="int8", representative_dataset=x_test[0][:16])
    qat_file_logits = litert_top1(qat_file.path)

    def file_entry(result, logits, reference):
        return {"bytes": result.bytes,
                "ratio_vs_dense_float32": result.bytes / dense_file.dense_bytes,
                "weight_sparsity": result.file_sparsity,
                "nonzero_weights": result.file_nonzero_weights,
                "weights": result.file_weights, "sparse_tensors": result.sparse_tensors,
                "test_accuracy": _top1(logits, labels),
                "top1_agreement_with_keras": float(np.mean(
                    logits.argmax(1) == reference.argmax(1))),
                "max_abs_diff_verification_batch": result.max_abs_diff}

    return {
        "run": name, "model": committed["model"],
        "pruning": ("tfmot prune_low_magnitude (per layer)"
                    if committed["layer_distribution"] == "tfmot" else "Global MP"),
        "run_budget": run_metrics["budget"], "sparsity": run_metrics["achieved_sparsity"],
        "float_test_accuracy": _top1(float_logits, labels),
        "dense_float32_bytes": dense_file.dense_bytes,  # the converter's file
        "dense_float32_minified_bytes": dense_file.bytes,
        "ptq_calibration_images": len(calibration),
        "ptq_int8": file_entry(ptq, ptq_logits, float_logits),
        "qat": {k: v for k, v in qat_metrics.items() if k != "wall_time_s_this_attempt"},
        "qat_keras_test_accuracy": _top1(qat_logits, labels),
        "qat_steps": _QAT_EPOCHS.value * info["steps_per_epoch"],
        "qat_int8": file_entry(qat_file, qat_file_logits, qat_logits),
        "litert_kernels": kernels,
        "threads": _THREADS.value, "tensorflow": tf.__version__,
        "seconds": round(time.time() - start, 1),
    }


def _pct(value):
    return f"{100 * value:.2f}"


def table(results):
    """The Markdown table of `results` (one row per run)."""
    lines = ["| model | pruning (90%) | float32 sparse top-1 % | int8 post-training top-1 % "
             "| int8 QAT top-1 % (Keras fake-quant) | int8 weight sparsity in file, PTQ / QAT % "
             "| QAT file bytes | vs dense float32 file | PTQ file bytes (vs dense) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        ptq, q = r["ptq_int8"], r["qat_int8"]
        lines.append(
            f"| {r['model']} | {r['pruning']} | {_pct(r['float_test_accuracy'])} "
            f"| {_pct(ptq['test_accuracy'])} | {_pct(q['test_accuracy'])} "
            f"({_pct(r['qat_keras_test_accuracy'])}) "
            f"| {_pct(ptq['weight_sparsity'])} / {_pct(q['weight_sparsity'])} "
            f"| {q['bytes']:,} | {q['ratio_vs_dense_float32']:.3f}x "
            f"| {ptq['bytes']:,} ({ptq['ratio_vs_dense_float32']:.3f}x) |")
    return lines


SUMMARY_SECTION = "Sparsity-preserving QAT"


def summary_rows(results):
    """The rows of BENCHMARKS.md's summary table: one per architecture (Global MP)."""
    rows = []
    for r in results:
        if r["pruning"] != "Global MP":
            continue
        rows.append(
            f"| int8 full-integer + sparse `.tflite` after sparsity-preserving QAT, "
            f"CIFAR-10 {r['model']} at 90% (1-epoch fine-tune, {r['qat']['epochs']} QAT "
            f"epoch: reduced budget) | {r['qat_int8']['ratio_vs_dense_float32']:.3f}x the "
            f"dense float32 file, int8 weights {_pct(r['qat_int8']['weight_sparsity'])}% "
            f"zero; top-1 {_pct(r['qat_int8']['test_accuracy'])}% (float32 sparse "
            f"{_pct(r['float_test_accuracy'])}%, post-training int8 "
            f"{_pct(r['ptq_int8']['test_accuracy'])}%) | {SUMMARY_SECTION} |")
    return rows


def command():
    return ("nice -n 5 python benchmarks/qat.py --data_dir "
            f"{_DATA.value} --qat_epochs {_QAT_EPOCHS.value} --qat_learning_rate "
            f"{_QAT_LR.value:g} --calibration {_CALIBRATION.value} --threads {_THREADS.value} "
            "--out BENCHMARKS.md --readme README.md")


def section(results):
    r0 = results[0]
    return "\n".join([
        HEADING, "",
        f"Command: `{command()}` (results: `{_RESULTS.value}`; "
        f"{sum(r['seconds'] for r in results) / 60:.0f} min in all, {r0['threads']} thread, "
        f"TensorFlow {r0['tensorflow']}).", "",
        "Start: the committed pruned + fine-tuned models (one-shot to 90%, **1 fine-tuning "
        f"epoch: reduced budget**, `{'`, `'.join(r['run'] for r in results)}`). "
        "float32 sparse: the Keras model. int8 post-training: `export_tflite(model, "
        f"quantize=\"int8\", representative_dataset=...)`, calibrated on "
        f"{r0['ptq_calibration_images']} augmented training images. int8 QAT: "
        "`sparsity_preserving_qat(model)` trained with plain `model.fit` for "
        f"{r0['qat']['epochs']} epoch ({r0['qat_steps']} steps of 128; **reduced budget**; "
        f"SGD momentum 0.9 from {r0['qat']['learning_rate']:g}, cosine to 0, the run's "
        "L2 and label smoothing), then `export_tflite(qat_model, quantize=\"int8\")` "
        "(no representative data). Top-1 is measured in LiteRT on the 10,000 test "
        "images of the CIFAR-10 JPEG copy; in parentheses the QAT model in Keras "
        "(fake-quant). QAT is also one more epoch of training at a small learning rate, "
        "so part of a gain over float32 is training, not quantization. Weight sparsity: "
        "zeros among the int8 Conv/Dense weights stored in the file (BatchNorm folded in; "
        "int8 rounding adds a few zeros to the pruned ones). Bytes: the full-integer "
        "sparse-encoded file (minified) vs the float32 file of the dense model the run "
        "pruned, as the converter writes it "
        f"({r0['dense_float32_bytes']:,} bytes for {r0['model']}; minified: "
        f"{r0['dense_float32_minified_bytes']:,}).", "",
        *table(results), "",
        "Pruned weights exactly zero in the QAT model after training: " + ", ".join(
            f"{r['model']} {r['pruning'].split(' ')[0]}: "
            f"{r['qat']['pruned_weights_exactly_zero']}" for r in results) + ". "
        "LiteRT vs Keras top-1 agreement on the test set, post-training vs float32 / "
        "QAT file vs QAT model: " + ", ".join(
            f"{r['model']} {r['pruning'].split(' ')[0]}: "
            f"{_pct(r['ptq_int8']['top1_agreement_with_keras'])} / "
            f"{_pct(r['qat_int8']['top1_agreement_with_keras'])}%" for r in results) + ". "
        "LiteRT kernels: " + ", ".join(
            f"{r['model']} {r['pruning'].split(' ')[0]}: "
            f"{'/'.join(sorted(set(r['litert_kernels'].values())))}" for r in results)
        + " (XNNPACK cannot prepare some sparse int8 FullyConnected weights; those files "
        "run on the builtin kernels).",
    ]) + "\n"


def main(argv):
    del argv
    results = []
    if os.path.exists(_RESULTS.value):
        with open(_RESULTS.value) as f:
            results = json.load(f)
    if not _TABLE_ONLY.value:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
        tf.config.threading.set_inter_op_parallelism_threads(_THREADS.value)
        done = {r["run"] for r in results}
        for run_dir in _RUNS.value:
            if os.path.basename(run_dir) in done:
                continue
            workdir = os.path.join(_WORKDIR.value, os.path.basename(run_dir))
            os.makedirs(workdir, exist_ok=True)
            results.append(_measure(run_dir, workdir))
            os.makedirs(os.path.dirname(_RESULTS.value) or ".", exist_ok=True)
            with open(_RESULTS.value, "w") as f:
                json.dump(results, f, indent=2)
            print("\n".join(table(results)), flush=True)
    order = {os.path.basename(r): i for i, r in enumerate(_RUNS.value)}
    results = sorted(results, key=lambda r: order.get(r["run"], len(order)))
    text = section(results)
    print(text)
    if _OUT.value:
        doc = sections.replace_heading(sections.read(_OUT.value, sections.NEW_FILE), HEADING,
                                       text)
        sections.write(_OUT.value, sections.replace_summary_rows(
            doc, lambda line: line.endswith(f"| {SUMMARY_SECTION} |"), summary_rows(results)))
    if _README.value:
        sections.write_marked(_README.value, BEGIN, END, "\n".join(table(results)))


if __name__ == "__main__":
    app.run(main)
