"""tf_globalmp.data.har (the shared npz, the official text layout, HAR-2 labels, z-score,
the validation split) and the HAR-2 config: LR schedule, tuning runs, presets of the
committed runs."""

import dataclasses
import glob
import json
import os

import numpy as np
import pytest

from tf_globalmp import configs
from tf_globalmp.data import har

SHARED = os.path.exists(har.DEFAULT_PATH)
needs_shared = pytest.mark.skipif(not SHARED, reason=f"{har.DEFAULT_PATH} not present")


def _write_official(root, n_train=5, n_test=3, seed=0):
    """A tiny "UCI HAR Dataset" folder in the official text format; returns its arrays."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x = rng.standard_normal((n, har.TIMESTEPS, len(har.CHANNELS))).astype(np.float32)
        y = np.arange(n) % 6 + 1
        subjects = np.arange(n) // 2 + 1
        folder = os.path.join(root, "UCI HAR Dataset", split, "Inertial Signals")
        os.makedirs(folder)
        for c, channel in enumerate(har.CHANNELS):
            with open(os.path.join(folder, f"{channel}_{split}.txt"), "w") as f:
                for row in x[:, :, c]:  # official: space-separated 8-digit scientific
                    f.write(" " + " ".join(f"{v: .8e}" for v in row) + "\n")
        np.savetxt(os.path.join(root, "UCI HAR Dataset", split, f"y_{split}.txt"), y, fmt="%d")
        np.savetxt(os.path.join(root, "UCI HAR Dataset", split, f"subject_{split}.txt"),
                   subjects, fmt="%d")
        arrays.update({f"X_{split}": x, f"y_{split}": y, f"subject_{split}": subjects})
    return arrays


@pytest.mark.parametrize("inner", [False, True])
def test_official_text_folder_is_read(tmp_path, inner):
    expected = _write_official(str(tmp_path))
    path = os.path.join(tmp_path, "UCI HAR Dataset") if inner else str(tmp_path)
    arrays = har.load_arrays(path)
    for key, value in expected.items():
        np.testing.assert_allclose(arrays[key], value, rtol=1e-7, err_msg=key)
    assert arrays["X_train"].shape == (5, 128, 9) and arrays["X_train"].dtype == np.float32


def test_official_folder_with_missing_channel_names_the_file(tmp_path):
    _write_official(str(tmp_path))
    os.remove(os.path.join(tmp_path, "UCI HAR Dataset", "test", "Inertial Signals",
                           "total_acc_z_test.txt"))
    with pytest.raises(FileNotFoundError, match="total_acc_z_test.txt"):
        har.load_arrays(str(tmp_path))


def test_missing_data_names_the_path(tmp_path):
    missing = os.path.join(tmp_path, "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere.*Nothing is downloaded"):
        har.load_arrays(missing)


def test_har2_labels():
    np.testing.assert_array_equal(har.har2_labels([1, 2, 3, 4, 5, 6]), [0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"1\.\.6, got range \[0, 6\]"):
        har.har2_labels([0, 6])


def test_zscore_uses_train_stats_and_floors_constant_features():
    x = np.random.default_rng(0).standard_normal((50, 4, 3)).astype(np.float32) * 3 + 1
    x[:, 0, 0] = 7.0  # constant feature
    mean, std = har.zscore_stats(x)
    assert std[0] == 1.0
    z = har.normalize(x, mean, std).reshape(50, -1)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0)[1:], 1, atol=1e-4)
    assert np.all(z[:, 0] == 0)


def test_validation_split_holds_out_whole_subjects(tmp_path):
    np.savez(os.path.join(tmp_path, "h.npz"), **_fake_npz(subjects=10, per_subject=8))
    data = har.har2_arrays(os.path.join(tmp_path, "h.npz"), validation_fraction=0.3, seed=1)
    held = data["info"]["validation_subjects"]
    assert 1 <= len(held) <= 3
    assert len(data["y_val"]) == 8 * len(held)
    assert len(data["y_train"]) + len(data["y_val"]) == 80
    flat = data["x_train"].reshape(len(data["x_train"]), -1)
    np.testing.assert_allclose(flat.mean(0), 0, atol=1e-4)  # stats of the kept subjects


def _fake_npz(subjects=4, per_subject=5, n_test=6):
    rng = np.random.default_rng(0)
    n = subjects * per_subject
    return {
        "X_train": rng.standard_normal((n, 128, 9)).astype(np.float32),
        "y_train": rng.integers(1, 7, n), "subject_train": np.repeat(np.arange(subjects), per_subject),
        "X_test": rng.standard_normal((n_test, 128, 9)).astype(np.float32),
        "y_test": rng.integers(1, 7, n_test), "subject_test": np.zeros(n_test, int),
    }


def test_bad_validation_fraction():
    with pytest.raises(ValueError, match="validation_fraction must be in \\[0, 1\\), got 1.0"):
        har.validation_subjects(np.arange(4), 1.0)


def test_load_returns_batched_datasets(tmp_path):
    path = os.path.join(tmp_path, "h.npz")
    np.savez(path, **_fake_npz())
    config = configs.Har2Config(data_dir=path, batch_size=8)
    train, test, info = har.load(config)
    x, y = next(iter(train))
    assert x.shape == (8, 128, 9) and y.dtype.name == "int32"
    assert info["train_examples"] == 20 and info["test_examples"] == 6
    assert info["x_test_sample"].shape == (6, 128, 9)


@needs_shared
def test_shared_npz_counts_per_class():
    raw = har.load_arrays()
    assert raw["X_train"].shape == (7352, 128, 9) and raw["X_test"].shape == (2947, 128, 9)
    np.testing.assert_array_equal(np.bincount(raw["y_train"])[1:],
                                  [1226, 1073, 986, 1286, 1374, 1407])
    np.testing.assert_array_equal(np.bincount(raw["y_test"])[1:], [496, 471, 420, 491, 532, 537])
    y2 = har.har2_labels(raw["y_train"])
    assert int(y2.sum()) == 1073 + 1286 + 1407


def test_validation_split_does_not_depend_on_the_training_seed(tmp_path):
    path = os.path.join(tmp_path, "h.npz")
    np.savez(path, **_fake_npz(subjects=10, per_subject=4))
    held = [har.load(configs.Har2Config(data_dir=path, validation_fraction=0.3, seed=s,
                                        validation_seed=v))[2]["validation_subjects"]
            for s, v in ((0, 0), (7, 0), (0, 3))]
    assert held[0] == held[1]  # training seed: same subjects
    assert held[0] != held[2]  # validation seed: another choice
    assert held[0] == [int(i) for i in har.validation_subjects(np.repeat(np.arange(10), 4),
                                                                0.3, 0)]


@needs_shared
def test_uci_validation_subjects_are_the_documented_ones():
    subjects = har.load_arrays()["subject_train"]
    held = har.validation_subjects(subjects, 0.3, 0)
    assert held.tolist() == [5, 7, 17, 21, 26, 28]
    assert int(np.isin(subjects, held).sum()) == 2160


# --------------------------------------------------------------- learning-rate schedule
@pytest.mark.parametrize("kwargs, message", [
    (dict(lr_schedule="step"), "lr_boundaries must be given with lr_schedule 'step'"),
    (dict(lr_boundaries=(5,)), "lr_boundaries must be given with lr_schedule 'step'"),
    (dict(lr_schedule="step", lr_boundaries=(300,)), r"in \(0, epochs=300\), got \(300,\)"),
    (dict(lr_decay_factor=0.0), r"lr_decay_factor must be in \(0, 1\], got 0.0"),
    (dict(validation_seed=-1), "validation_seed must be an int >= 0, got -1"),
])
def test_bad_learning_rate_schedule_is_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        configs.har2_config(**kwargs)


@pytest.mark.parametrize("schedule, expected", [
    # steps_per_epoch 10, 30 epochs: lr at steps 0, 150, 200, 299
    ("constant", [0.004] * 4),
    ("cosine", [0.004 * 0.5 * (1 + np.cos(np.pi * s / 300)) for s in (0, 150, 200, 299)]),
    ("step", [0.004, 0.004, 0.0004, 0.0004]),
])
def test_adam_learning_rate_follows_the_schedule(schedule, expected):
    from tf_globalmp.tasks import har2 as har2_task
    config = configs.har2_config(learning_rate=0.004, epochs=30, lr_schedule=schedule,
                                 lr_boundaries=(20,) if schedule == "step" else ())
    lr = har2_task.learning_rate(config, steps_per_epoch=10)
    got = [float(lr(s)) if callable(lr) else lr for s in (0, 150, 200, 299)]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)  # float32


def test_tuning_run_never_evaluates_the_test_set(tmp_path, monkeypatch):
    from tf_globalmp.tasks import common as task_common
    from tf_globalmp.tasks import har2 as har2_task
    path = os.path.join(tmp_path, "h.npz")
    np.savez(path, **_fake_npz(subjects=4, per_subject=6))

    def no_test(*args, **kwargs):
        raise AssertionError("the test set was evaluated")

    monkeypatch.setattr(task_common, "accuracy", no_test)
    config = configs.har2_config(data_dir=path, epochs=1, batch_size=8, units=4,
                                 unroll=False, validation_fraction=0.25, budget="test")
    metrics = har2_task.run(config, str(tmp_path / "run"))
    assert not [k for k in metrics if "test_accuracy" in k]
    assert "test_accuracy" not in metrics["history"][0]
    assert metrics["final_val_accuracy"] == metrics["history"][-1]["val_accuracy"]
    assert metrics["validation_examples"] == 6 * len(metrics["validation_subjects"])


# --------------------------------------------------------------- presets
def test_tuned_presets_share_one_recipe_per_row_and_differ_by_seed(tmp_path):
    def values(name):
        return {k: v for k, v in vars(configs.har2_config(name, pretrained=str(tmp_path)))
                .items() if k not in ("seed", "preset")}

    for row in ("train", "r9_8", "r9_7", "r8_7"):
        seeds = [configs.har2_config(f"tuned_{row}_s{s}", pretrained=str(tmp_path)).seed
                 for s in configs.har2.TUNED_SEEDS]
        assert seeds == [0, 1, 2]
        assert all(values(f"tuned_{row}_s{s}") == values(f"tuned_{row}_s0") for s in (1, 2))
        config = configs.har2_config(f"tuned_{row}_s0", pretrained=str(tmp_path))
        paper = configs.HAR2_PRESETS[f"paper_{row}"]
        assert config.batch_size == paper["batch_size"]
        assert config.budget == (f"reduced budget: {config.epochs} of 300 epochs "
                                 "(chosen on held-out training subjects)")
        assert config.paper_learning_rate == paper["learning_rate"]
    finetunes = {values(f"tuned_{r}_s0")["learning_rate"] for r in ("r9_8", "r9_7", "r8_7")}
    assert len(finetunes) == 1  # one fine-tune recipe for the three rows


@pytest.mark.parametrize("row", ["train", "r9_8", "r9_7", "r8_7"])
def test_adam1e3_seed_presets_repeat_the_committed_row(row, tmp_path):
    base = dataclasses.asdict(configs.har2_config(f"adam1e3_{row}", pretrained=str(tmp_path)))
    for seed in (1, 2):
        more = dataclasses.asdict(configs.har2_config(f"adam1e3_{row}_s{seed}",
                                                      pretrained=str(tmp_path)))
        assert {k for k in base if base[k] != more[k]} == {"seed", "preset"}
        assert more["seed"] == seed


# Every committed HAR-2 run directory -> the preset that remakes it (no flag but
# execution ones: threads, data, pretrained, export).
_COMMITTED_PRESETS = {
    "dense": "adam1e3_train", "r9_8": "adam1e3_r9_8", "r9_7": "adam1e3_r9_7",
    "r8_7": "adam1e3_r8_7", "unstructured_r9_8": "adam1e3_unstructured_r9_8",
    "r9_8_global": "adam1e3_r9_8_global_156ep",
}
_EXECUTION = {"preset", "threads", "pretrained", "data_dir", "export_tflite"}
_SAVED = os.path.join(os.path.dirname(__file__), "..", "saved_models")


@pytest.mark.parametrize("run_dir", sorted(glob.glob(os.path.join(_SAVED, "har2_fastgrnn_*"))))
def test_every_committed_run_is_remade_by_a_preset(run_dir, tmp_path):
    row = os.path.basename(run_dir)[len("har2_fastgrnn_"):]
    with open(os.path.join(run_dir, "config.json")) as f:
        committed = json.load(f)
    preset = _COMMITTED_PRESETS.get(row, row)
    config = configs.har2_config(preset, pretrained=str(tmp_path)
                                 if committed["mode"] != "dense" else None)
    made = json.loads(json.dumps(dataclasses.asdict(config)))
    committed = {**made, **committed}  # fields added after a run hold their defaults
    differ = {k for k in made if k not in _EXECUTION and made[k] != committed[k]}
    assert not differ, {k: (committed[k], made[k]) for k in differ}


def test_factor_ranks_of_a_diverged_model_are_none():
    from tf_globalmp.models import fastgrnn
    from tf_globalmp.tasks import har2 as har2_task
    model = fastgrnn.build(units=4, unroll=False)
    cell = fastgrnn.cell_of(model)
    assert har2_task.factor_ranks(model) == [4, 4]  # W: 9 -> 4, U: 4 -> 4
    cell.U1.assign(np.full(cell.U1.shape, np.nan, np.float32))
    assert har2_task.factor_ranks(model) == [4, None]
