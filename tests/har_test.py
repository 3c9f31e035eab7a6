"""tf_globalmp.data.har: the shared npz, the official text layout, HAR-2 labels, z-score."""

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
