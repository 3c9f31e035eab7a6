"""ImageNet pipeline on a few generated TFRecords in the standard layout."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import tf_globalmp  # noqa: F401
from tf_globalmp import configs
from tf_globalmp.data import imagenet

# (height, width, gray level, 1-based label) per image, per file.
FILES = {
    "train-00000-of-00002": [(40, 60, 30, 1), (64, 48, 90, 7), (50, 50, 150, 1000)],
    "train-00001-of-00002": [(70, 35, 200, 3), (48, 64, 60, 500)],
    "validation-00000-of-00001": [(60, 80, 128, 5), (80, 60, 128, 1000), (45, 45, 10, 1)],
}


def _example(height, width, gray, label):
    image = np.full((height, width, 3), gray, np.uint8)
    image[: height // 2, :, 0] = 255 - gray  # a little structure
    encoded = tf.io.encode_jpeg(image, quality=95).numpy()
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    for name, images in FILES.items():
        with tf.io.TFRecordWriter(str(root / name)) as writer:
            for spec in images:
                writer.write(_example(*spec))
    return str(root)


def _config(data_dir, **overrides):
    values = dict(data_dir=data_dir, image_size=32, batch_size=2, eval_batch_size=2,
                  shuffle_buffer=8, train_examples=5, eval_examples=3)
    values.update(overrides)
    return configs.ImagenetConfig(**values).validate()


def _arrays(ds):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(images), np.concatenate(labels)


def test_train_batches_have_the_shapes_and_0_based_labels(data_dir):
    ds = imagenet.dataset(_config(data_dir), training=True)
    for images, labels in ds.take(6):
        assert images.shape == (2, 32, 32, 3) and images.dtype == tf.float32
        assert labels.shape == (2, 1000)
        assert np.all(labels.numpy().sum(axis=1) == 1)
        assert set(np.argmax(labels.numpy(), 1)) <= {0, 6, 999, 2, 499}


def test_eval_is_deterministic_in_file_order_with_a_final_partial_batch(data_dir):
    config = _config(data_dir)
    images, labels = _arrays(imagenet.dataset(config, training=False))
    again, labels_again = _arrays(imagenet.dataset(config, training=False))
    assert images.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(np.argmax(labels, 1), [4, 999, 0])
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(labels, labels_again)


def test_eval_resizes_then_center_crops():
    # 40x80 image: left half 0, right half 255; resize to 37x73 (shorter side 32/0.875),
    # center crop 32x32 keeps the middle: both halves present, split near the centre.
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, 40:] = 255
    encoded = tf.io.encode_png(image)
    crop = imagenet.resize_center_crop(tf.image.encode_jpeg(image, quality=100), 32).numpy()
    assert crop.shape == (32, 32, 3)
    assert crop[:, :12].max() < 40 and crop[:, 20:].min() > 215
    assert encoded is not None


def test_normalisation_of_a_gray_image():
    gray = tf.fill([4, 4, 3], 128.0)
    expected = (128.0 - np.array(imagenet.MEAN_RGB)) / np.array(imagenet.STD_RGB)
    np.testing.assert_allclose(imagenet.normalize(gray).numpy()[0, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(imagenet.normalize(gray, "inception").numpy(), 128 / 127.5 - 1,
                               atol=1e-6)


def test_per_replica_batch_and_file_sharding(data_dir):
    config = _config(data_dir, batch_size=4)
    context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                         num_replicas_in_sync=2)
    images, _ = next(iter(imagenet.dataset(config, True, context)))
    assert images.shape[0] == 2
    train_files = []
    for index in range(2):  # two train files, two workers: one file each
        context = tf.distribute.InputContext(2, index, 2)
        _, labels = next(iter(imagenet.dataset(dataclasses.replace(config, batch_size=2),
                                               True, context).take(1)))
        train_files.append(set(np.argmax(labels.numpy(), 1)))
    assert train_files[0] <= {0, 6, 999} and train_files[1] <= {2, 499}
    per_worker = []
    for index in range(2):
        context = tf.distribute.InputContext(2, index, 2)
        _, labels = _arrays(imagenet.dataset(dataclasses.replace(config, eval_batch_size=2),
                                             False, context))
        per_worker.append(labels.shape[0])
    assert per_worker == [2, 1]  # one validation file: sharded by record


def test_random_resized_crop_is_random_and_sized():
    image = np.random.default_rng(0).integers(0, 255, (60, 90, 3), dtype=np.uint8)
    encoded = tf.io.encode_jpeg(image)
    crops = [imagenet.random_resized_crop(encoded, 24).numpy() for _ in range(4)]
    assert all(c.shape == (24, 24, 3) for c in crops)
    assert any(not np.array_equal(crops[0], c) for c in crops[1:])


def test_fake_data_and_load_info():
    config = configs.imagenet_config("cpu_fake_resnet50_oneshot90")
    train, test, info = imagenet.load(config)
    x, y = next(iter(train))
    assert x.shape == (8, 64, 64, 3) and y.shape == (8, 1000)
    assert info["steps_per_epoch"] == 3 and info["source"] == "fake"
    assert sum(1 for _ in test) == config.eval_steps


def test_missing_files_and_indivisible_batch_are_named(tmp_path, data_dir):
    with pytest.raises(ValueError, match="has no validation-\\*-of-\\* TFRecord"):
        imagenet.record_files(str(tmp_path), "validation")
    strategy = tf.distribute.get_strategy()
    assert imagenet.load(_config(data_dir), strategy)[2]["source"] == "tfrecord"

    class Two:
        num_replicas_in_sync = 2

    with pytest.raises(ValueError, match="batch_size must be divisible by the 2 replicas, got 3"):
        imagenet.load(_config(data_dir, batch_size=3), Two())
