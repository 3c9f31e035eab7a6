"""CIFAR-10 data pipeline, optimisation pieces, training glue and launcher.

Everything runs on `tests/testdata/cifar10_tiny/` (5 train + 2 test real JPEGs per
class from the CIFAR-10 JPEG copy), never the full data set.
"""

import dataclasses
import glob
import json
import os
import re
import subprocess
import sys
import tarfile

import numpy as np
import pytest

import tf_globalmp  # noqa: F401  (must precede TensorFlow: selects tf-keras)
import tensorflow as tf

from tf_globalmp import _compat
from tf_globalmp import configs
from tf_globalmp import controller
from tf_globalmp import export
from tf_globalmp import masks
from tf_globalmp import optim
from tf_globalmp import runs
from tf_globalmp.data import cifar10
from tf_globalmp.tasks import cifar10 as cifar10_task
from tf_globalmp.tasks import common
from tf_globalmp.tasks import epoch_logs

# pretrained must name an existing path (configs check it); any directory will do.
EXISTING = os.path.dirname(os.path.abspath(__file__))

keras = _compat.keras
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "testdata", "cifar10_tiny")


def _config(**overrides):
    values = dict(model="resnet8", data_dir=FIXTURE, cache_dir=False, batch_size=25,
                  eval_batch_size=20, epochs=1, verbose=0)
    values.update(overrides)
    return configs.cifar10_config(**values)


# ------------------------------------------------------------------- data
def test_image_folder_reads_real_images_in_label_order():
    images, labels = cifar10.read_image_folder(FIXTURE, "train", cache_dir=False)
    assert images.shape == (50, 32, 32, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.repeat(np.arange(10), 5))
    test_images, test_labels = cifar10.read_image_folder(FIXTURE, "test", cache_dir=False)
    assert test_images.shape == (20, 32, 32, 3)
    np.testing.assert_array_equal(test_labels, np.repeat(np.arange(10), 2))
    # Decoded like PIL (libjpeg's accurate IDCT), not TF's faster, biased default.
    from PIL import Image

    first = os.path.join(FIXTURE, "train", "airplane", sorted(
        os.listdir(os.path.join(FIXTURE, "train", "airplane")))[0])
    np.testing.assert_array_equal(images[0], np.asarray(Image.open(first).convert("RGB")))


def test_decoded_arrays_are_cached_outside_the_data(tmp_path):
    first = cifar10.read_image_folder(FIXTURE, "test", cache_dir=str(tmp_path))
    cached = sorted(os.listdir(tmp_path / "npy"))
    assert len(cached) == 2 and all(name.endswith(".npy") for name in cached)
    second = cifar10.read_image_folder(FIXTURE, "test", cache_dir=str(tmp_path))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_a_tar_gz_is_unpacked_once_into_the_cache(tmp_path):
    archive = str(tmp_path / "tiny.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        for split in cifar10.SPLITS:
            tar.add(os.path.join(FIXTURE, split), arcname=split)
    folder = cifar10.unpack_archive(archive, str(tmp_path / "cache"))
    assert folder.startswith(str(tmp_path / "cache"))
    assert cifar10.unpack_archive(archive, str(tmp_path / "cache")) == folder
    images, _ = cifar10.read_image_folder(folder, "test", cache_dir=False)
    np.testing.assert_array_equal(
        images, cifar10.read_image_folder(FIXTURE, "test", cache_dir=False)[0])


def test_a_folder_without_the_ten_classes_is_rejected(tmp_path):
    os.makedirs(tmp_path / "train" / "cat")
    with pytest.raises(ValueError, match="10 class folders"):
        cifar10.read_image_folder(str(tmp_path), "train", cache_dir=False)
    with pytest.raises(ValueError, match="no test/ folder"):
        cifar10.read_image_folder(str(tmp_path), "test", cache_dir=False)
    with pytest.raises(ValueError, match="data_dir does not exist"):
        cifar10.load(_config(data_dir=str(tmp_path / "missing")))


def test_normalisation_uses_the_paper_mean_and_std():
    pixel = np.array([[[[0, 128, 255]]]], np.uint8)
    expected = (pixel / 255.0 - np.array(cifar10.MEAN)) / np.array(cifar10.STD)
    np.testing.assert_allclose(cifar10.normalize(pixel).numpy(), expected, atol=1e-6)
    assert cifar10.MEAN == (0.4914, 0.4822, 0.4465)
    assert cifar10.STD == (0.2023, 0.1994, 0.2010)


def test_eval_pipeline_is_deterministic_and_unaugmented():
    train_ds, test_ds, info = cifar10.load(_config())
    assert info["train_examples"] == 50 and info["test_examples"] == 20
    assert info["classes"][0] == "airplane" and info["classes"][9] == "truck"
    first = [(x.numpy(), y.numpy()) for x, y in test_ds]
    second = [(x.numpy(), y.numpy()) for x, y in test_ds]
    x = np.concatenate([b[0] for b in first])
    y = np.concatenate([b[1] for b in first])
    np.testing.assert_array_equal(x, np.concatenate([b[0] for b in second]))
    raw, labels = cifar10.read_image_folder(FIXTURE, "test", cache_dir=False)
    np.testing.assert_allclose(x, cifar10.normalize(raw).numpy(), rtol=0, atol=0)
    np.testing.assert_array_equal(y, np.eye(10)[labels])


def test_tfds_source_gives_the_same_interface():
    import tensorflow_datasets as tfds

    # tfds's mock generates random examples from the cifar10 builder's features: the
    # real tfds code path without a download.
    with tfds.testing.mock_data(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE):
        train_ds, test_ds, info = cifar10.load(_config(data_dir=None, batch_size=8))
        x, y = next(iter(train_ds))
        test_batches = sum(1 for _ in test_ds)
    assert info["name"] == "cifar10 (tfds)" and info["train_examples"] == 16
    assert x.shape == (8, 32, 32, 3) and x.dtype == tf.float32 and y.shape == (8, 10)
    assert test_batches == 1


def _windows(image):
    """Every 32x32 crop of the reflect-padded image and its mirror image."""
    padded = np.pad(image, [(4, 4), (4, 4), (0, 0)], mode="reflect")
    crops = [padded[i:i + 32, j:j + 32] for i in range(9) for j in range(9)]
    return crops + [c[:, ::-1] for c in crops]


def test_augmentation_is_a_reflect_padded_crop_maybe_flipped():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    windows = _windows(image)
    outputs = set()
    for s in range(40):
        out = cifar10.augment(tf.constant(image), tf.constant([s, 7], tf.int64)).numpy()
        assert out.shape == (32, 32, 3)
        assert any(np.array_equal(out, w) for w in windows)
        outputs.add(out.tobytes())
    assert len(outputs) > 10  # crops and flips vary with the seed
    again = cifar10.augment(tf.constant(image), tf.constant([3, 7], tf.int64)).numpy()
    np.testing.assert_array_equal(
        again, cifar10.augment(tf.constant(image), tf.constant([3, 7], tf.int64)).numpy())


def _epochs(train_ds, steps, count):
    batches = [(x.numpy(), y.numpy()) for x, y in train_ds.take(steps * count)]
    return [batches[i * steps:(i + 1) * steps] for i in range(count)]


def test_train_pipeline_augments_and_reshuffles_each_epoch():
    train_ds, _, info = cifar10.load(_config())
    epochs = _epochs(train_ds, info["steps_per_epoch"], 2)
    for batches in epochs:
        x = np.concatenate([b[0] for b in batches])
        y = np.concatenate([b[1] for b in batches])
        assert x.shape == (50, 32, 32, 3) and x.dtype == np.float32
        np.testing.assert_array_equal(np.sort(y.argmax(1)), np.repeat(np.arange(10), 5))
    a = np.concatenate([b[0] for b in epochs[0]])
    b = np.concatenate([b[0] for b in epochs[1]])
    assert not np.array_equal(a, b)
    # Augmented images are no longer the raw normalised ones.
    raw = cifar10.normalize(cifar10.read_image_folder(FIXTURE, "train", False)[0]).numpy()
    assert sum(any(np.array_equal(x, r) for r in raw) for x in a) < 25


def test_train_stream_resumed_at_an_epoch_is_the_uninterrupted_stream():
    full, _, info = cifar10.load(_config())
    steps = info["steps_per_epoch"]
    resumed = cifar10.load(_config(), initial_epoch=2)[0]
    want = _epochs(full, steps, 3)[2]
    got = _epochs(resumed, steps, 1)[0]
    for (xa, ya), (xb, yb) in zip(want, got):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


# ------------------------------------------------------------------ optim
def test_warmup_cosine_and_step_schedules():
    cosine = optim.WarmupSchedule(0.1, 110, "cosine", warmup_steps=10)
    values = [float(cosine(s)) for s in (0, 9, 10, 60, 110)]
    np.testing.assert_allclose(values, [0.01, 0.1, 0.1, 0.05, 0.0], atol=1e-6)
    step = optim.WarmupSchedule(0.1, 100, "step", boundaries=(40,), every=0, factor=0.1)
    np.testing.assert_allclose([float(step(s)) for s in (0, 39, 40, 99)],
                               [0.1, 0.1, 0.01, 0.01], rtol=1e-5)
    every = optim.WarmupSchedule(1.0, 100, "step", every=25, factor=0.56)
    np.testing.assert_allclose([float(every(s)) for s in (24, 25, 50)], [1, 0.56, 0.56 ** 2],
                               rtol=1e-5)
    with pytest.raises(ValueError, match="lr_schedule.*got 'linear'"):
        optim.WarmupSchedule(0.1, 10, "linear")


def test_weight_decay_is_coupled_l2_on_kernels_only():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.BatchNormalization(), keras.layers.Dense(2)])
    decayed = optim.add_l2_penalty(model, 0.01)
    assert sorted(w.name.split("/")[-1] for w in decayed) == ["kernel:0", "kernel:0"]
    with tf.GradientTape() as tape:
        penalty = tf.add_n(model.losses)
    grads = tape.gradient(penalty, model.trainable_weights)
    for weight, grad in zip(model.trainable_weights, grads):
        if any(weight is d for d in decayed):
            np.testing.assert_allclose(grad.numpy(), 0.01 * weight.numpy(), rtol=1e-6)
        else:
            assert grad is None


# --------------------------------------------------------------- training
@pytest.fixture(scope="module")
def dense_run(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("runs") / "dense")
    return workdir, cifar10_task.run(_config(), workdir)


def test_dense_run_writes_the_run_dir(dense_run):
    workdir, metrics = dense_run
    assert sorted(os.listdir(workdir)) == ["config.json", "flops.json", "metrics.json",
                                           "model.keras", "sparsity.json"]
    with open(os.path.join(workdir, "metrics.json")) as f:
        assert json.load(f)["final_test_accuracy"] == metrics["final_test_accuracy"]
    assert metrics["epochs_done"] == 1 and metrics["achieved_sparsity"] == 0.0
    assert {"best_test_accuracy", "best_epoch", "budget", "history"} <= set(metrics)


def test_one_shot_keeps_the_exact_sparsity_and_a_fixed_mask(dense_run, tmp_path):
    metrics = cifar10_task.run(
        _config(mode="one_shot", pretrained=dense_run[0], sparsity=0.9, mixed_bfloat16=True,
                min_weights=50, label_smoothing=0.1), str(tmp_path / "gmp"))
    total = metrics["prunable_weights"]
    assert metrics["nonzero_prunable_weights"] == masks.n_keep_for(total, 0.9)
    assert metrics["masks_fixed_during_finetune"] is True
    assert metrics["dense_test_accuracy"] == pytest.approx(
        dense_run[1]["final_test_accuracy"], abs=0.051)  # float32 vs bfloat16 evaluation
    with open(tmp_path / "gmp" / "sparsity.json") as f:
        layers = json.load(f)["layers"]
    assert min(row["nonzero"] for row in layers) >= 50
    assert metrics["flops_pruned"] > 0.5  # FLOPs follow the pruned convs
    assert os.path.getsize(tmp_path / "gmp" / "layer_sparsity.png") > 1000


def test_tfmot_baseline_prunes_every_layer_to_the_sparsity_with_tfmots_code(
        dense_run, tmp_path):
    metrics = cifar10_task.run(
        _config(mode="one_shot", pretrained=dense_run[0], sparsity=0.9,
                layer_distribution="tfmot"), str(tmp_path / "tfmot"))
    with open(tmp_path / "tfmot" / "sparsity.json") as f:
        layers = json.load(f)["layers"]
    # tfmot keeps round(n * (1 - s)) weights in every layer (no ties in trained weights).
    expected = [int(np.round(np.float32(r["weights"]) * (np.float32(1) - np.float32(0.9))))
                for r in layers]
    assert [r["nonzero"] for r in layers] == expected
    assert metrics["layer_distribution"] == "tfmot"
    assert metrics["masks_fixed_during_finetune"] is True
    assert metrics["one_shot_test_accuracy"] is not None


def test_tfmot_baseline_refuses_minimum_threshold():
    with pytest.raises(ValueError, match="layer_distribution 'tfmot'.*min_weights=5"):
        _config(mode="one_shot", pretrained=EXISTING, layer_distribution="tfmot", min_weights=5)
    with pytest.raises(ValueError, match="layer_distribution must be one of .*'magnitude'"):
        _config(layer_distribution="magnitude")


def test_layer_distributions_are_the_packages_plus_tfmot():
    from tf_globalmp import distributions
    assert configs.CIFAR10_LAYER_DISTRIBUTIONS == distributions.METHODS + ("tfmot",)


class _Stop(Exception):
    pass


def _stopped_run(config, workdir, monkeypatch, hook):
    """Runs `config` until the first `EpochLog.<hook>` call has saved, stops it there
    (as a kill would), restores the hook; returns the saved train_state/state.json."""
    original = getattr(epoch_logs.EpochLog, hook)

    def save_then_stop(self, *args, **kwargs):
        original(self, *args, **kwargs)
        raise _Stop

    monkeypatch.setattr(epoch_logs.EpochLog, hook, save_then_stop)
    with pytest.raises(_Stop):
        cifar10_task.run(config, workdir)
    monkeypatch.setattr(epoch_logs.EpochLog, hook, original)
    with open(os.path.join(workdir, runs.STATE_DIR, "state.json")) as f:
        return json.load(f)


def test_one_shot_killed_inside_its_first_epoch_keeps_its_restored_mask(
        dense_run, tmp_path, monkeypatch):
    workdir = str(tmp_path / "oneshot")
    config = _config(mode="one_shot", pretrained=dense_run[0], sparsity=0.8,
                     checkpoint_every_steps=1)  # 50 images / batch 25: save after step 1
    saved = _stopped_run(config, workdir, monkeypatch, "on_train_batch_end")
    assert (saved["epoch"], saved["step"]) == (0, 1)
    pruned_at_start = []
    monkeypatch.setattr(controller.GlobalPruner, "prune_to",
                        lambda *a, **k: pruned_at_start.append(1))
    metrics = cifar10_task.run(config, workdir)
    assert pruned_at_start == []  # the mask came from the checkpoint
    assert metrics["one_shot_test_accuracy"] == saved["extra"]["one_shot_test_accuracy"]
    assert metrics["masks_fixed_during_finetune"] is True
    assert metrics["history"][0]["steps_after_resume"] == 1
    assert metrics["nonzero_prunable_weights"] == masks.n_keep_for(
        metrics["prunable_weights"], 0.8)


def test_an_interrupted_gradual_run_resumes_from_its_last_epoch(tmp_path, monkeypatch):
    workdir = str(tmp_path / "resume")
    config = _config(mode="gradual", sparsity=0.5, epochs=2, pruning_begin=0.0,
                     pruning_end=0.5)
    saved = _stopped_run(config, workdir, monkeypatch, "on_epoch_end")
    assert saved["epoch"] == 1
    begun = []
    monkeypatch.setattr(epoch_logs.EpochLog, "on_epoch_begin",
                        lambda self, epoch, logs=None: begun.append(epoch))
    metrics = cifar10_task.run(config, workdir)
    assert begun == [1]  # only the second epoch ran
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["history"][0] == saved["history"][0]
    # Gradual: 0 at step 0, the target at the next (last) update; "best" counts only
    # the epochs at the target.
    assert [h["sparsity"] for h in metrics["history"]] == [0.0, pytest.approx(0.5, abs=1e-5)]
    assert metrics["best_epoch"] == 2
    assert metrics["nonzero_prunable_weights"] == masks.n_keep_for(
        metrics["prunable_weights"], 0.5)
    assert not os.path.exists(os.path.join(workdir, runs.STATE_DIR))
    # A finished run is returned as it is; another config in the same workdir is refused.
    assert cifar10_task.run(config, workdir)["history"] == metrics["history"]


def test_resuming_with_another_config_is_refused(tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    _stopped_run(_config(epochs=2), workdir, monkeypatch, "on_epoch_end")
    with pytest.raises(ValueError, match="different config.*learning_rate"):
        cifar10_task.run(_config(epochs=2, learning_rate=0.5), workdir)


MIRRORED = r'''
import sys
import tf_globalmp
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tf_globalmp import configs, masks
from tf_globalmp.tasks import cifar10 as cifar10_task
config = configs.cifar10_config(model="resnet8", data_dir=sys.argv[1], cache_dir=False,
    batch_size=25, eval_batch_size=20, epochs=1, verbose=0, mode="gradual", sparsity=0.7,
    pruning_begin=0.0, pruning_end=1.0, pruning_frequency=1, distribution="mirrored")
m = cifar10_task.run(config, sys.argv[2])
assert m["nonzero_prunable_weights"] == masks.n_keep_for(m["prunable_weights"], 0.7), m
print("OK", m["achieved_sparsity"])
'''


def test_gradual_run_under_mirrored_strategy_on_two_logical_cpus(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    done = subprocess.run([sys.executable, str(script), FIXTURE, str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "OK" in done.stdout


# --------------------------------------------------------------- presets
def test_every_cpu_preset_is_labelled_reduced_budget(tmp_path):
    dense = str(tmp_path)  # any existing path: the check is only that it exists
    cpu = [p for p in configs.CIFAR10_PRESETS if p.startswith("cpu_")]
    paper = [p for p in configs.CIFAR10_PRESETS if p.startswith("paper_")]
    assert len(paper) == 12 and len(cpu) >= len(paper)
    for name in cpu:
        config = configs.cifar10_config(name, pretrained=dense)
        assert config.budget.startswith("reduced budget: ")
        # bfloat16, except the float32 presets of committed runs made on a CPU without it.
        assert config.mixed_bfloat16 != name.endswith(("_12ep", "_1ep", "_20k"))
    for name in paper:
        assert configs.cifar10_config(name, pretrained=dense).budget == "paper"
    assert configs.cifar10_config("paper_resnet32_dense", epochs=5).budget == (
        "reduced budget: 5 epochs of 300")


def test_paper_presets_carry_the_paper_hyperparameters():
    wrn = configs.cifar10_config("paper_wrn28_8_gmp95", pretrained=EXISTING)
    assert (wrn.epochs, wrn.batch_size, wrn.momentum, wrn.weight_decay, wrn.learning_rate,
            wrn.nesterov, wrn.sparsity) == (200, 128, 0.9, 2e-5, 0.0256, True, 0.95)
    mnv2 = configs.cifar10_config("paper_mobilenet_v2_gmp98_mt", pretrained=EXISTING)
    assert (mnv2.lr_step_every, mnv2.lr_decay_factor, mnv2.min_weights_fraction,
            mnv2.batch_size) == (25, 0.56, 0.0002, 64)


def test_resnet32_short_budget_presets_share_one_recipe():
    dense = configs.cifar10_config("cpu_resnet32_dense")
    assert (dense.mode, dense.model, dense.epochs, dense.batch_size, dense.learning_rate,
            dense.warmup_epochs, dense.lr_schedule, dense.momentum, dense.nesterov,
            dense.weight_decay, dense.label_smoothing, dense.steps_per_execution) == (
        "dense", "resnet32", 40, 128, 0.1, 2.0, "cosine", 0.9, True, 5e-4, 0.1, 10)
    assert dense.budget == "reduced budget: 40 epochs of 300"
    for sparsity in (90, 95):
        ours = configs.cifar10_config(f"cpu_resnet32_gmp{sparsity}", pretrained=EXISTING)
        tfmot = configs.cifar10_config(f"cpu_resnet32_gmp{sparsity}_tfmot", pretrained=EXISTING)
        assert (ours.mode, ours.sparsity, ours.epochs, ours.learning_rate) == (
            "one_shot", sparsity / 100, 20, 0.05)
        assert (ours.layer_distribution, tfmot.layer_distribution) == ("global", "tfmot")
        differ = {k for k, v in vars(ours).items() if getattr(tfmot, k) != v}
        assert differ == {"layer_distribution", "preset"}  # the same budget and recipe


# The committed runs (saved_models/cifar10_resnet32_*_cpu/config.json, made with the
# old cpu_resnet32_* presets plus flags) as presets of their own, so they stay reproducible.
@pytest.mark.parametrize("preset, values", [
    ("cpu_resnet32_dense_12ep", dict(mode="dense", epochs=12, learning_rate=0.05,
                                     weight_decay=1e-3, label_smoothing=0.0)),
    ("cpu_resnet32_gmp90_1ep", dict(mode="one_shot", sparsity=0.9, epochs=1, learning_rate=0.01,
                                    weight_decay=1e-3, layer_distribution="global")),
    ("cpu_resnet32_gmp95_tfmot_1ep", dict(mode="one_shot", sparsity=0.95, epochs=1,
                                          learning_rate=0.01, weight_decay=1e-5,
                                          layer_distribution="tfmot", label_smoothing=0.1)),
])
def test_committed_resnet32_runs_keep_presets_of_their_own(preset, values):
    config = configs.cifar10_config(preset, pretrained=EXISTING)
    common = dict(model="resnet32", batch_size=128, momentum=0.9, nesterov=False,
                  lr_schedule="cosine", warmup_epochs=0.0, mixed_bfloat16=False,
                  steps_per_execution=1)
    assert {k: getattr(config, k) for k in {**common, **values}} == {**common, **values}


# Every committed CIFAR-10 run directory -> the preset that remakes it (no flag but
# execution ones: threads, data, workdir, pretrained, seed; "_seed<N>" runs repeat a
# preset with another seed).
_COMMITTED_PRESETS = {
    "resnet20_dense": "cpu_resnet20_dense", "resnet20_gmp90": "cpu_resnet20_gmp90",
    "resnet32_gmp90_global_1ep": "cpu_resnet32_gmp90_1ep",
    "resnet32_gmp95_global_1ep": "cpu_resnet32_gmp95_1ep",
    "resnet32_gmp90_global": "cpu_resnet32_gmp90",
    "resnet32_gmp95_global": "cpu_resnet32_gmp95",
    "resnet20_gradual90": "cpu_resnet20_gradual90_20k",
    "mobilenet_v2_dense": "cpu_mobilenet_v2_dense_20k",
    "mobilenet_v2_gmp98": "cpu_mobilenet_v2_gmp98_20k",
    "mobilenet_v2_gmp98_mt": "cpu_mobilenet_v2_gmp98_mt_20k",
}
_EXECUTION = {"preset", "budget", "threads", "verbose", "checkpoint_every_steps", "data_dir",
              "pretrained", "cache_dir", "tfds_data_dir", "export_tflite", "deterministic",
              "distribution", "seed"}


@pytest.mark.parametrize("run_dir", sorted(
    glob.glob(os.path.join(os.path.dirname(__file__), "..", "saved_models", "cifar10_*_cpu"))))
def test_every_committed_run_is_remade_by_a_preset(run_dir):
    row = re.sub(r"_seed\d+$", "", os.path.basename(run_dir)[len("cifar10_"):-len("_cpu")])
    with open(os.path.join(run_dir, "config.json")) as f:
        committed = json.load(f)
    config = configs.cifar10_config(_COMMITTED_PRESETS.get(row, f"cpu_{row}"),
                                    pretrained=EXISTING if committed["mode"] != "dense" else None)
    made = json.loads(json.dumps(dataclasses.asdict(config)))
    # Fields added after a run was made hold their defaults (e.g. steps_per_execution 1).
    committed = {**made, **committed, "min_weights_fraction":
                 committed.get("min_weights_fraction") or made["min_weights_fraction"]}
    inert = set(config.inert_fields())  # e.g. channel options of a weight-granularity run
    differ = {k for k in made if k not in _EXECUTION | inert and made[k] != committed[k]}
    assert not differ, {k: (committed[k], made[k]) for k in differ}


def test_steps_per_execution_must_be_a_positive_int():
    with pytest.raises(ValueError, match="steps_per_execution must be an int >= 1, got 0"):
        _config(steps_per_execution=0)
    with pytest.raises(ValueError, match="steps_per_execution must be a positive int"):
        configs.har2_config(steps_per_execution=0)
    with pytest.raises(ValueError, match="steps_per_execution must be an int >= 1, got 0"):
        configs.imagenet_config(fake_data=True, steps_per_execution=0)


def test_compile_takes_steps_per_execution_from_the_config():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    cifar10_task.compile_model(model, _config(steps_per_execution=7), steps_per_epoch=5)
    assert int(model._steps_per_execution.numpy()) == 7


@pytest.mark.parametrize("layer_distribution", ["global", "tfmot"])
def test_one_shot_with_steps_per_execution_trains_exactly_like_one_step(
        dense_run, tmp_path, layer_distribution):
    results = {}
    for spe in (1, 3):  # batch 10: 5 steps per epoch, executions of 3 + 2 steps
        workdir = tmp_path / f"spe{spe}"
        metrics = cifar10_task.run(
            _config(mode="one_shot", pretrained=dense_run[0], sparsity=0.8, epochs=2,
                    batch_size=10, layer_distribution=layer_distribution,
                    steps_per_execution=spe), str(workdir))
        weights = runs.load_model(str(workdir)).get_weights()
        results[spe] = metrics, weights
    (m1, w1), (m3, w3) = results[1], results[3]
    assert m3["masks_fixed_during_finetune"] is True
    assert m3["nonzero_prunable_weights"] == m1["nonzero_prunable_weights"]
    assert [h["test_accuracy"] for h in m3["history"]] == [
        h["test_accuracy"] for h in m1["history"]]
    for a, b in zip(w1, w3):
        np.testing.assert_array_equal(a == 0, b == 0)
        np.testing.assert_allclose(a, b, atol=1e-5)


# --------------------------------------------------------------- launcher
@pytest.mark.parametrize("args, flag", [
    (["--sparsity=1.5"], "--sparsity"),
    (["--mode=one_shot"], "--pretrained"),
    (["--model=vgg16"], "--model"),
    (["--preset=paper_resnet99"], "--preset"),
    (["--steps_per_execution=0"], "--steps_per_execution"),
])
def test_launcher_bad_flags_exit_with_a_line_naming_the_flag(args, flag, tmp_path):
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "launchers", "cifar10.py"),
         f"--workdir={tmp_path / 'run'}", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    lines = [l for l in done.stderr.splitlines() if flag in l]
    assert lines, done.stderr[-2000:]
    assert not os.path.exists(tmp_path / "run")


def test_native_bfloat16_is_read_from_the_cpu_flags(tmp_path):
    amx, plain = tmp_path / "amx", tmp_path / "plain"
    amx.write_text("flags\t: fpu sse avx512f amx_bf16 amx_tile\n")
    plain.write_text("flags\t: fpu sse avx2\n")
    assert common.cpu_has_native_bfloat16(str(amx)) is True
    assert common.cpu_has_native_bfloat16(str(plain)) is False
    assert common.cpu_has_native_bfloat16(str(tmp_path / "missing")) is None


class _RecordingState:
    def __init__(self):
        self.saves = []

    def save(self, epoch, history, extra, step=None, mid_epoch=False):
        self.saves.append((epoch, step, mid_epoch))


def test_epoch_log_saves_every_n_steps_inside_epochs_and_at_epoch_ends():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    state = _RecordingState()
    log = epoch_logs.EpochLog(state, [], {}, 4, 5, {}, every_steps=2)
    data = tf.data.Dataset.from_tensors((tf.zeros((4, 3)), tf.zeros((4, 2)))).repeat()
    model.fit(data, epochs=2, steps_per_epoch=5, callbacks=[log], verbose=0)
    assert state.saves == [(0, 2, True), (0, 4, True), (1, 5, False), (1, 6, True),
                           (1, 8, True), (2, 10, False)]
    assert [h["epoch"] for h in log.history] == [1, 2]


def test_epoch_log_saves_after_crossing_n_steps_with_steps_per_execution():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", steps_per_execution=3)
    state = _RecordingState()
    log = epoch_logs.EpochLog(state, [], {}, 4, 5, {}, every_steps=2)
    data = tf.data.Dataset.from_tensors((tf.zeros((4, 3)), tf.zeros((4, 2)))).repeat()
    model.fit(data, epochs=2, steps_per_epoch=5, callbacks=[log], verbose=0)
    # Batch ends at steps 3, 5 | 8, 10: no step is a multiple of 2 inside an epoch.
    assert state.saves == [(0, 3, True), (1, 5, False), (1, 8, True), (2, 10, False)]
