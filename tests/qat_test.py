"""Sparsity-preserving QAT (`tf_globalmp.qat`), its int8 TFLite export, the CIFAR-10
QAT phase, and what Keras 3's `model.quantize` does with zeros.

Small models: a Conv2D + BatchNorm, DepthwiseConv2D + BatchNorm, Dense network pruned
to 70% by Global MP (the kernels have shapes of their own, so the int8 file's tensors
can be matched to them; 16 channels, so the converter's 1x16 int8 blocks fit the
Dense kernel), and ResNet-8 on the tiny CIFAR-10 folder.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tf_globalmp  # noqa: F401  (must precede TensorFlow: selects tf-keras)

from tf_globalmp import _compat
from tf_globalmp import configs
from tf_globalmp import controller
from tf_globalmp import export
from tf_globalmp import optim
from tf_globalmp import prune
from tf_globalmp import qat
from tf_globalmp import schedules
from tf_globalmp.export import flatbuffer
from tf_globalmp.export import result as export_result
from tf_globalmp.tasks import cifar10 as cifar10_task
from tf_globalmp.tasks import epoch_logs

keras = _compat.keras
tfmot = _compat.tfmot
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")
FIXTURE = os.path.join(TESTS, "testdata", "cifar10_tiny")
SPARSITY = 0.7


def _network(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.ReLU(name="conv_relu")(keras.layers.BatchNormalization(name="conv_bn")(x))
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(x)
    x = keras.layers.ReLU(name="dw_relu")(keras.layers.BatchNormalization(name="dw_bn")(x))
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(5, name="fc")(x))
    rng = np.random.default_rng(seed)
    for name in ("conv_bn", "dw_bn"):  # BatchNorm that folding visibly changes
        bn = model.get_layer(name)
        bn.set_weights([rng.uniform(0.5, 2.0, w.shape) if i in (0, 3) else
                        rng.normal(0, 0.3, w.shape) for i, w in enumerate(bn.get_weights())])
    return model


def _pruned(seed=0, wrapped=False):
    """`_network` pruned to SPARSITY by Global MP (stripped unless `wrapped`)."""
    model = prune.prune_low_magnitude_global(
        _network(seed), schedules.GlobalConstantSparsity(SPARSITY, begin_step=0))
    controller.GlobalPruner(model).prune_to(SPARSITY, step=0)
    return model if wrapped else prune.strip_pruning(model)


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 8, 8, 3)).astype("float32"), rng.integers(0, 5, n)


def _zeros(model):
    """{layer/weight: kernel == 0} of a plain model's kernels."""
    return {f"{layer.name}/{w.name.split('/')[-1].split(':')[0]}": w.numpy() == 0
            for layer in model.layers for w in layer.weights if "kernel" in w.name}


def _kernels(qat_model):
    """{layer/weight: kernel variable} of a QAT model's quantized weights."""
    return {f"{layer.layer.name}/{w.name.split('/')[-1].split(':')[0]}": w
            for layer in qat_model.layers for w, _, _ in getattr(layer, "_weight_vars", [])}


def _regrown(qat_model, zeros):
    """{kernel: entries nonzero where the pruned model had zeros}."""
    return {name: int(np.count_nonzero(w.numpy()[zeros[name]]))
            for name, w in _kernels(qat_model).items() if name in zeros}


def _fit(model, optimizer, epochs=1, callbacks=()):
    x, y = _data()
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=list(callbacks))


# ------------------------------------------------------------------ masks
@pytest.mark.parametrize("values", [
    [0.0, -0.0, 1e-38, -2.5], [[0.0, 0.0], [0.0, 0.0]], [3.0], np.float32(1e-45) * np.ones(4)])
def test_nonzero_mask_marks_exactly_the_nonzero_entries(values):
    values = np.asarray(values, np.float32)
    mask = qat.nonzero_mask(values)
    assert mask.dtype == np.float32
    np.testing.assert_array_equal(mask, np.where(values != 0, 1.0, 0.0))


def test_every_zero_of_the_pruned_model_gets_a_mask():
    pruned = _pruned()
    model = qat.sparsity_preserving_qat(pruned)
    found = {f"{layer}/{weight}": mask.numpy()
             for layer, weight, _, mask in qat.masked_kernels(model)}
    zeros = _zeros(pruned)
    assert sorted(found) == sorted(zeros) == ["conv/kernel", "dw/depthwise_kernel", "fc/kernel"]
    for name, mask in found.items():
        np.testing.assert_array_equal(mask, (~zeros[name]).astype(np.float32))
    kept = sum(int(np.count_nonzero(m)) for m in found.values())
    total = sum(m.size for m in found.values())
    assert kept == total - round(SPARSITY * total)  # Global MP's exact count


def test_a_wrapped_model_is_stripped_first_with_the_same_masks():
    wrapped = _pruned(wrapped=True)
    model = qat.sparsity_preserving_qat(wrapped)
    zeros = _zeros(prune.strip_pruning(wrapped))
    for layer, weight, _, mask in qat.masked_kernels(model):
        np.testing.assert_array_equal(mask.numpy() == 0, zeros[f"{layer}/{weight}"])


# -------------------------------------------------------- exact zeros in training
class _ZeroCheck(keras.callbacks.Callback):
    """After every batch: entries regrown where the pruned model had zeros."""

    def __init__(self, zeros):
        super().__init__()
        self.zeros, self.regrown = zeros, []

    def on_train_batch_end(self, batch, logs=None):
        self.regrown.append(sum(_regrown(self.model, self.zeros).values()))


@pytest.mark.parametrize("optimizer", ["sgd_nesterov_l2", "adamw"])
def test_pruned_weights_stay_exactly_zero_after_every_batch(optimizer):
    pruned = _pruned()
    zeros = _zeros(pruned)
    model = qat.sparsity_preserving_qat(pruned)
    before = {name: w.numpy() for name, w in _kernels(model).items()}
    if optimizer == "adamw":
        opt = keras.optimizers.AdamW(0.01, weight_decay=0.1)
    else:
        opt = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
        optim.add_l2_penalty(model, 1e-2)
    check = _ZeroCheck(zeros)
    _fit(model, opt, epochs=2, callbacks=[check])
    assert len(check.regrown) == 8 and check.regrown == [0] * 8
    for name, w in _kernels(model).items():  # the kept weights did train
        assert not np.allclose(w.numpy()[~zeros[name]], before[name][~zeros[name]])


def test_tfmots_own_scheme_loses_depthwise_and_reloaded_zeros(tmp_path):
    """What the qat module docstring says of tfmot 0.8's prune-preserving scheme."""
    pruned = _pruned()
    zeros = _zeros(pruned)
    quant = tfmot.quantization.keras
    scheme = tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
    model = quant.quantize_apply(quant.quantize_annotate_model(pruned), scheme)
    _fit(model, keras.optimizers.SGD(0.1, momentum=0.9))
    regrown = _regrown(model, zeros)
    assert regrown["conv/kernel"] == regrown["fc/kernel"] == 0
    assert regrown["dw/depthwise_kernel"] > 0  # depthwise: preservation disabled
    path = str(tmp_path / "tfmot_qat.h5")
    model.save(path)
    with quant.quantize_scope():
        reloaded = keras.models.load_model(path)
    _fit(reloaded, keras.optimizers.SGD(0.1, momentum=0.9))
    assert _regrown(reloaded, zeros)["conv/kernel"] > 0  # no mask after a reload


def test_a_weightless_custom_layer_passes_through_where_tfmot_fails():
    from tf_globalmp.models import resnet_cifar

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    x = resnet_cifar.ZeroPadShortcut(16, name="shortcut")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(
        keras.layers.GlobalAveragePooling2D()(x)))
    quant = tfmot.quantization.keras
    with pytest.raises(ValueError, match="unsupported layer.*ZeroPadShortcut"):
        quant.quantize_apply(quant.quantize_annotate_model(model),
                             tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme())
    wrapper = qat.sparsity_preserving_qat(model).get_layer("quant_shortcut")
    assert isinstance(wrapper.quantize_config, qat.PassThroughQuantizeConfig)


def test_a_reloaded_qat_model_keeps_its_masks(tmp_path):
    pruned = _pruned()
    zeros = _zeros(pruned)
    path = str(tmp_path / "qat.h5")
    qat.sparsity_preserving_qat(pruned).save(path)
    with qat.qat_scope():
        reloaded = keras.models.load_model(path)
    check = _ZeroCheck(zeros)
    _fit(reloaded, keras.optimizers.SGD(0.1, momentum=0.9), callbacks=[check])
    assert check.regrown == [0] * 4
    assert len(qat.masked_kernels(reloaded)) == 3


# ------------------------------------------------------------------ refusals
def test_layers_tfmot_cannot_quantize_are_named():
    inputs = keras.Input((6,))
    x = keras.layers.LayerNormalization(name="norm")(keras.layers.Dense(4, name="d")(inputs))
    with pytest.raises(ValueError, match=r"norm \(LayerNormalization: not in tfmot"):
        qat.sparsity_preserving_qat(keras.Model(inputs, x))


def test_subclassed_and_already_quantized_models_are_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = keras.layers.Dense(2)

        def call(self, x):
            return self.fc(x)

    net = Net()
    net(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="must be a Sequential or functional.*subclassed Net"):
        qat.sparsity_preserving_qat(net)
    model = qat.sparsity_preserving_qat(_pruned())
    with pytest.raises(ValueError, match="already quantization-aware"):
        qat.sparsity_preserving_qat(model)


# ------------------------------------------------------------------ export
@pytest.fixture(scope="module")
def trained_qat():
    pruned = _pruned()
    model = qat.sparsity_preserving_qat(pruned)
    _fit(model, keras.optimizers.SGD(0.05, momentum=0.9), epochs=2)
    return pruned, model


def _file_kernels(path):
    """{shape: int8 array} of the constant int8 tensors of a (dense-encoded) file."""
    from ai_edge_litert import interpreter as litert

    interpreter = litert.Interpreter(model_path=path)
    found = {}
    for detail in interpreter.get_tensor_details():
        if detail["dtype"] == np.int8 and len(detail["shape"]) in (2, 4):
            try:
                found[tuple(detail["shape"])] = interpreter.get_tensor(detail["index"])
            except ValueError:  # an activation: no data before invoke
                pass
    return found


def test_int8_file_of_a_qat_model_is_zero_wherever_the_mask_is(trained_qat, tmp_path):
    pruned, model = trained_qat
    zeros = _zeros(pruned)
    path = str(tmp_path / "dense_encoded.tflite")
    report = export.export_tflite(model, path, quantize="int8", sparse=False)
    kernels = _file_kernels(path)
    # TFLite layouts: conv OHWI, depthwise 1HW(C*M), fully connected (out, in).
    in_file = {"conv/kernel": kernels[(16, 3, 3, 3)].transpose(1, 2, 3, 0),
               "dw/depthwise_kernel": kernels[(1, 3, 3, 16)].reshape(3, 3, 16, 1),
               "fc/kernel": kernels[(5, 16)].T}
    for name, values in in_file.items():
        assert not np.any(values[zeros[name]]), name  # BatchNorm folding kept the zeros
        assert np.count_nonzero(values) >= 0.9 * np.count_nonzero(~zeros[name])
    kept = sum(int(np.count_nonzero(~z)) for z in zeros.values())
    assert report.quantization_aware and report.nonzero_weights == kept


def test_qat_model_exports_sparse_int8_without_representative_data(trained_qat, tmp_path):
    pruned, model = trained_qat
    report = export.export_tflite(model, str(tmp_path / "qat.tflite"), quantize="int8")
    zeros = sum(int(z.sum()) for z in _zeros(pruned).values())
    assert report.sparse_tensors >= 1 and report.file_weights == report.prunable_weights
    assert report.file_weights - report.file_nonzero_weights >= zeros
    assert report.top1_agreement is not None and report.top1_agreement >= 0.75
    assert report.max_abs_diff is not None and report.rtol is None
    assert "int8 (quantization-aware) + sparse" in report.to_table()
    with open(str(tmp_path / "qat.tflite") + ".json") as f:
        assert json.load(f)["file_sparsity"] == pytest.approx(report.file_sparsity)


def test_a_qat_model_is_only_exported_as_int8(trained_qat, tmp_path):
    with pytest.raises(ValueError, match="quantization-aware.*quantize='int8'.*None"):
        export.export_tflite(trained_qat[1], str(tmp_path / "f.tflite"))


def test_cli_exports_a_saved_qat_model_as_int8(trained_qat, tmp_path, capsys):
    from tf_globalmp.export import __main__ as cli

    trained_qat[1].save(str(tmp_path / "qat.h5"))
    out = str(tmp_path / "cli.tflite")
    try:
        cli.FLAGS(["cli", "--model", str(tmp_path / "qat.h5"), "--out", out, "--quantize",
                   "int8"])
        assert cli.main(["cli"]) == 0
        cli.FLAGS.unparse_flags()
        cli.FLAGS(["cli", "--model", str(tmp_path / "qat.h5"), "--out", out])
        assert cli.main(["cli"]) == 1  # a QAT model is int8 only
    finally:
        cli.FLAGS.unparse_flags()
    assert "quantize='int8'" in capsys.readouterr().err
    with open(out + ".json") as f:
        saved = json.load(f)
    assert saved["quantization_aware"] and saved["quantize"] == "int8"


def test_weight_tensors_read_what_a_float_file_stores(tmp_path):
    pruned = _pruned()
    nonzero = sum(int(np.count_nonzero(~z)) for z in _zeros(pruned).values())
    for sparse in (False, True):
        report = export.export_tflite(pruned, str(tmp_path / f"{sparse}.tflite"), sparse=sparse)
        with open(report.path, "rb") as f:
            stored = flatbuffer.weight_tensors(f.read())
        assert sorted(t.shape for t in stored) == [(1, 3, 3, 16), (5, 16), (16, 3, 3, 3)]
        assert sum(t.nonzero for t in stored) == nonzero
        assert any(t.sparse for t in stored) == sparse


@pytest.mark.parametrize("reference, candidate, expected", [
    ([[[1, 2], [3, 0]]], [[[0, 5], [1, 0]]], 1.0),
    ([[[1, 2], [3, 0]]], [[[5, 0], [1, 0]]], 0.5),
    ([[1.0, 2.0]], [[2.0, 1.0]], None),  # no 2-D output
])
def test_top1_agreement_compares_the_arg_max_of_the_first_2d_output(reference, candidate,
                                                                    expected):
    assert export_result.top1_agreement(reference, candidate) == expected


# ------------------------------------------------------ MirroredStrategy, 2 CPUs
MIRRORED = textwrap.dedent(r'''
    import json, sys
    import numpy as np
    import tf_globalmp
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, sys.argv[1])
    import qat_test as t
    from tf_globalmp import qat
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    pruned = t._pruned()
    zeros = t._zeros(pruned)
    out = {"replicas": strategy.num_replicas_in_sync, "regrown": [], "identical": True}

    class Check(t.keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            regrown = 0
            for layer, weight, kernel, mask in qat.masked_kernels(self.model):
                values = [v.numpy() for v in strategy.experimental_local_results(kernel)]
                masks = [v.numpy() for v in strategy.experimental_local_results(mask)]
                out["identical"] &= all(np.array_equal(m, masks[0]) for m in masks)
                out["per_replica"] = len(values)
                regrown += sum(int(np.count_nonzero(v[zeros[f"{layer}/{weight}"]]))
                               for v in values)
            out["regrown"].append(regrown)

    with strategy.scope():
        model = qat.sparsity_preserving_qat(pruned)
        model.compile(t.keras.optimizers.SGD(0.1, momentum=0.9),
                      t.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = t._data()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[Check()])
    print(json.dumps(out))
''')


def test_pruned_weights_stay_zero_on_both_replicas_of_a_mirrored_strategy(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, str(script), TESTS], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["replicas"] == out["per_replica"] == 2 and out["identical"]
    assert out["regrown"] == [0] * 4


# ------------------------------------------------------------------ Keras 3
KERAS3 = textwrap.dedent(r'''
    import json
    import numpy as np
    import tf_globalmp.keras3 as k3
    import keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)),
                              keras.layers.Conv2D(8, 3, use_bias=False, name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(16, name="fc1"),
                              keras.layers.Dense(4, name="fc2")])
    k3.GlobalPruner(model, k3.GlobalConstantSparsity(0.8, begin_step=0)).prune_to(0.8)
    x = np.random.default_rng(0).normal(size=(32, 8, 8, 3)).astype("float32")
    before = model.predict(x, verbose=0)
    zeros = {l.name: l.kernel.numpy() == 0 for l in model.layers if hasattr(l, "kernel")}
    model.quantize("int8")
    fc1 = model.get_layer("fc1")
    out = {"dtype": str(fc1._kernel.dtype), "conv_dtype": str(model.get_layer("conv").kernel.dtype),
           "max_rel_diff": float(np.abs(model.predict(x, verbose=0) - before).max()
                                 / np.abs(before).max())}
    for name in ("fc1", "fc2"):
        q = model.get_layer(name)._kernel.numpy()
        out[name] = {"pruned_nonzero": int(np.count_nonzero(q[zeros[name]])),
                     "extra_zeros": int(np.sum(q[~zeros[name]] == 0))}
    out["conv_pruned_nonzero"] = int(np.count_nonzero(
        model.get_layer("conv").kernel.numpy()[zeros["conv"]]))
    int8 = fc1._kernel.numpy().copy()
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, np.arange(32) % 4, epochs=1, verbose=0)
    out["int8_trainable"] = bool(fc1._kernel.trainable)
    out["int8_changed_by_fit"] = bool(np.any(fc1._kernel.numpy() != int8))
    print(json.dumps(out))
''')


def test_keras3_quantize_int8_keeps_dense_zeros_and_has_no_qat(tmp_path):
    script = tmp_path / "keras3_quantize.py"
    script.write_text(KERAS3)
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env.update(PYTHONPATH=os.pathsep.join([ROOT, env.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["dtype"] == "int8" and out["conv_dtype"] == "float32"  # Dense only
    assert out["fc1"]["pruned_nonzero"] == out["fc2"]["pruned_nonzero"] == 0
    assert out["conv_pruned_nonzero"] == 0
    assert out["max_rel_diff"] < 0.05
    # Post-training only: the int8 kernel is not trained by fit (no QAT).
    assert out["int8_trainable"] is False and out["int8_changed_by_fit"] is False


# ------------------------------------------------------------------ CIFAR-10 phase
def _qat_config(**overrides):
    values = dict(model="resnet8", data_dir=FIXTURE, cache_dir=False, batch_size=25,
                  eval_batch_size=20, epochs=1, verbose=0, mode="gradual", sparsity=0.5,
                  pruning_begin=0.0, pruning_end=0.5, qat_epochs=1, qat_learning_rate=0.01,
                  checkpoint_every_steps=1, export_tflite=True, quantize="int8")
    values.update(overrides)
    return configs.cifar10_config(**values)


def test_qat_options_are_checked():
    with pytest.raises(ValueError, match="quantize must be 'int8'.*got quantize='none'"):
        _qat_config(quantize="none")
    with pytest.raises(ValueError, match="qat_epochs must be an int >= 0, got -1"):
        _qat_config(qat_epochs=-1)
    with pytest.raises(ValueError, match="qat_learning_rate must be > 0, got 0"):
        _qat_config(qat_learning_rate=0)


class _Stop(Exception):
    pass


def test_cifar10_run_with_qat_resumes_inside_qat_and_exports_sparse_int8(tmp_path,
                                                                        monkeypatch):
    workdir = str(tmp_path / "run")
    config = _qat_config()
    original = epoch_logs.EpochLog.on_train_batch_end

    def stop_in_qat(self, batch, logs=None):  # a kill after QAT's first step was saved
        original(self, batch, logs)
        if qat.is_qat_model(self.model):
            raise _Stop

    monkeypatch.setattr(epoch_logs.EpochLog, "on_train_batch_end", stop_in_qat)
    with pytest.raises(_Stop):
        cifar10_task.run(config, workdir)
    monkeypatch.setattr(epoch_logs.EpochLog, "on_train_batch_end", original)
    with open(os.path.join(workdir, "qat_state", "state.json")) as f:
        assert json.load(f)["step"] == 1
    metrics = cifar10_task.run(config, workdir)
    q = metrics["qat"]
    assert [h["epoch"] for h in q["history"]] == [1]
    assert q["history"][0]["steps_after_resume"] == 1
    assert q["pruned_weights_exactly_zero"] is True
    assert q["history"][-1]["sparsity"] == pytest.approx(metrics["achieved_sparsity"], abs=0.01)
    assert metrics["tflite_weight_sparsity"] >= metrics["achieved_sparsity"] - 0.01
    assert 0 <= metrics["tflite_test_accuracy"] <= 1 and metrics["tflite_top1_agreement"] >= 0.5
    assert {"model.keras", "model_qat.h5", "model.tflite"} <= set(os.listdir(workdir))
    with qat.qat_scope():
        reloaded = keras.models.load_model(os.path.join(workdir, "model_qat.h5"))
    float_model = keras.models.load_model(os.path.join(workdir, "model.keras"))
    zeros = _zeros(float_model)
    for layer, weight, kernel, mask in qat.masked_kernels(reloaded):
        np.testing.assert_array_equal(mask.numpy() == 0, zeros[f"{layer}/{weight}"])
        assert not np.any(kernel.numpy()[zeros[f"{layer}/{weight}"]])
