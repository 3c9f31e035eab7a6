"""CIFAR-10: tfds `cifar10` (default) or an image-folder copy (`--data_dir`).

Both sources give the same `tf.data` interface (`load(config) -> (train, test,
info)`): batches of float32 NHWC images normalised with the paper's mean/std and
one-hot labels (for label smoothing). Training batches are augmented as in the
paper (reflect-pad 4, random 32x32 crop, random horizontal flip); the test
pipeline is deterministic (no shuffle, no augmentation).

Image folder layout: ``<data_dir>/train/<class>/*.jpg`` and ``<data_dir>/test/<class>/*.jpg``
with the 10 class folders named as in `CLASSES` (alphabetical = label order).
`data_dir` may also be a ``.tar.gz`` of that layout: it is unpacked once into a cache
directory outside the project (`default_cache_dir()`); decoded images are cached
there as uint8 ``.npy`` files so later runs start in a second.
"""

import hashlib
import os
import tarfile

import numpy as np
import tensorflow as tf
from absl import logging

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2023, 0.1994, 0.2010)
IMAGE_SHAPE = (32, 32, 3)
PAD = 4
SPLITS = ("train", "test")
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def default_cache_dir():
    """``$TF_GLOBALMP_CACHE/cifar10`` or ``~/.cache/tf_globalmp/cifar10``."""
    root = os.environ.get("TF_GLOBALMP_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "tf_globalmp")
    return os.path.join(root, "cifar10")


def _key(path):
    return hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:12]


def unpack_archive(archive, cache_dir=None):
    """Unpacks a ``.tar.gz`` image-folder copy once; returns the folder holding train/ test/."""
    if not os.path.isfile(archive):
        raise ValueError(f"data archive does not exist: {archive!r}")
    target = os.path.join(cache_dir or default_cache_dir(), "jpeg_" + _key(archive))
    done = os.path.join(target, ".unpacked")
    if not os.path.exists(done):
        logging.info("Unpacking %s into %s", archive, target)
        os.makedirs(target, exist_ok=True)
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(target, filter="data")
        open(done, "w").close()
    entries = [e for e in os.listdir(target) if not e.startswith(".")]
    if set(SPLITS) <= set(entries):
        return target
    if len(entries) == 1 and os.path.isdir(os.path.join(target, entries[0])):
        return os.path.join(target, entries[0])  # archive with one top-level folder
    raise ValueError(f"archive {archive!r} has no train/ and test/ folders (found {entries})")


def _list_split(data_dir, split):
    split_dir = os.path.join(data_dir, split)
    if not os.path.isdir(split_dir):
        raise ValueError(f"data_dir {data_dir!r} has no {split}/ folder")
    found = sorted(d for d in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, d)))
    if tuple(found) != CLASSES:
        raise ValueError(
            f"data_dir {data_dir!r}: {split}/ must hold the 10 class folders {list(CLASSES)}, "
            f"got {found}")
    paths, labels = [], []
    for label, name in enumerate(CLASSES):
        files = sorted(f for f in os.listdir(os.path.join(split_dir, name))
                       if f.lower().endswith(_IMAGE_EXTENSIONS))
        paths += [os.path.join(split_dir, name, f) for f in files]
        labels += [label] * len(files)
    if not paths:
        raise ValueError(f"data_dir {data_dir!r}: no images under {split}/")
    return paths, np.asarray(labels, np.int64)


def _decode(paths):
    def read(path):
        content = tf.io.read_file(path)
        # INTEGER_ACCURATE: TF's default JPEG IDCT is biased (about 1 grey level
        # darker on CIFAR); this one matches PIL / libjpeg's reference decoder.
        image = tf.cond(
            tf.io.is_jpeg(content),
            lambda: tf.io.decode_jpeg(content, channels=3, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(content, channels=3, expand_animations=False))
        return tf.ensure_shape(image, IMAGE_SHAPE)

    ds = tf.data.Dataset.from_tensor_slices(paths).map(read, num_parallel_calls=tf.data.AUTOTUNE)
    return np.concatenate([b.numpy() for b in ds.batch(2000)], axis=0).astype(np.uint8)


def read_image_folder(data_dir, split, cache_dir=None):
    """(uint8 images [N, 32, 32, 3], int64 labels [N]) of one split of an image folder.

    Decoded arrays are cached as ``.npy`` under `cache_dir` (default
    `default_cache_dir()`); `cache_dir=False` disables the cache.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    paths, labels = _list_split(data_dir, split)
    cache = None
    if cache_dir is not False:
        cache = os.path.join(cache_dir or default_cache_dir(), "npy",
                             f"{_key(data_dir)}_{split}_{len(paths)}")
        if os.path.exists(cache + "_labels.npy"):
            return np.load(cache + "_images.npy"), np.load(cache + "_labels.npy")
    logging.info("Decoding %d %s images from %s", len(paths), split, data_dir)
    images = _decode(paths)
    if cache is not None:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        for suffix, array in (("_images.npy", images), ("_labels.npy", labels)):
            tmp = f"{cache}{suffix}.tmp.npy"
            np.save(tmp, array)
            os.replace(tmp, cache + suffix)  # labels last: their presence marks a full cache
    return images, labels


def normalize(images):
    """uint8 (or [0, 255] float) images -> float32, (x / 255 - MEAN) / STD."""
    x = tf.cast(images, tf.float32) / 255.0
    return (x - tf.constant(MEAN)) / tf.constant(STD)


def augment(image, seed):
    """Paper augmentation of one HWC image with a stateless `seed` (shape [2]):
    reflect-pad 4, random 32x32 crop, random horizontal flip."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    padded = tf.pad(image, [[PAD, PAD], [PAD, PAD], [0, 0]], mode="REFLECT")
    crop = tf.image.stateless_random_crop(padded, tf.shape(image), seed=seeds[0])
    return tf.image.stateless_random_flip_left_right(crop, seed=seeds[1])


def _arrays(config, split):
    """(uint8 images [N, 32, 32, 3], int64 labels [N]) of one split, from either source."""
    if config.data_dir:
        data_dir = config.data_dir
        if os.path.isfile(data_dir):
            data_dir = unpack_archive(data_dir, config.cache_dir)
        elif not os.path.isdir(data_dir):
            raise ValueError(f"data_dir does not exist: {config.data_dir!r}")
        return read_image_folder(data_dir, split, config.cache_dir)
    import tensorflow_datasets as tfds

    ds = tfds.load("cifar10", split=split, as_supervised=True, data_dir=config.tfds_data_dir)
    batches = [(x.numpy(), y.numpy()) for x, y in ds.batch(10_000)]
    return (np.concatenate([b[0] for b in batches]).astype(np.uint8),
            np.concatenate([b[1] for b in batches]).astype(np.int64))


def make_dataset(images, labels, training, batch_size, seed=0, num_classes=len(CLASSES),
                 initial_epoch=0, skip_batches=0):
    """Batches of (normalised float32 images, one-hot labels) from uint8 arrays.

    Training data is endless (fit with `steps_per_epoch`) and a pure function of
    (seed, epoch): epoch e's order is a stateless shuffle seeded by (seed, e) and each
    image's crop/flip a stateless draw seeded by (seed, e * N + position), so a run
    resumed at `initial_epoch` sees exactly the batches an uninterrupted run would;
    `skip_batches` resumes inside that epoch (after a step-interval checkpoint).
    The pipeline shuffles indices, not images (no 50,000-image shuffle buffer), and
    gathers each image from one tensor. Evaluation data is one ordered pass.
    """
    images = tf.convert_to_tensor(images, tf.uint8)
    labels = tf.convert_to_tensor(labels, tf.int64)
    n = int(labels.shape[0])
    if not training:
        ds = tf.data.Dataset.range(n).batch(batch_size).map(
            lambda i: (tf.gather(images, i), tf.gather(labels, i)))
    else:
        def one_epoch(epoch):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch]))
            positions = tf.data.Dataset.range(n)
            return tf.data.Dataset.zip((tf.data.Dataset.from_tensor_slices(order), positions)).map(
                lambda i, k: (augment(tf.gather(images, i),
                                      tf.stack([tf.constant(seed, tf.int64) + 1, epoch * n + k])),
                              tf.gather(labels, i)),
                num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)

        ds = tf.data.Dataset.range(int(initial_epoch), 2**62).flat_map(one_epoch)
        if skip_batches:
            ds = ds.skip(int(skip_batches))
    ds = ds.map(lambda x, y: (normalize(x), tf.one_hot(y, num_classes)),
                num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def load(config, initial_epoch=0, skip_batches=0):
    """(train, test, info) for a config with `data_dir`, `tfds_data_dir`, `cache_dir`,
    `batch_size`, `eval_batch_size`, `seed` and optional `max_train_examples`.

    `train` is endless, starting at `initial_epoch` after `skip_batches` of its batches
    (see `make_dataset`); one epoch is `info["steps_per_epoch"]` batches."""
    x_train, y_train = _arrays(config, "train")
    x_test, y_test = _arrays(config, "test")
    limit = getattr(config, "max_train_examples", None)
    if limit and limit < len(y_train):
        # A fixed, class-mixed subset (the folder source is ordered by class).
        keep = np.sort(np.random.default_rng(config.seed).permutation(len(y_train))[:limit])
        x_train, y_train = x_train[keep], y_train[keep]
    train = make_dataset(x_train, y_train, True, config.batch_size, config.seed,
                         initial_epoch=initial_epoch, skip_batches=skip_batches)
    test = make_dataset(x_test, y_test, False, config.eval_batch_size)
    n_train, n_test = len(y_train), len(y_test)
    name = f"cifar10 (image folder {config.data_dir})" if config.data_dir else "cifar10 (tfds)"
    info = {"name": name, "train_examples": n_train, "test_examples": n_test,
            "steps_per_epoch": -(-n_train // config.batch_size),
            "input_shape": IMAGE_SHAPE, "num_classes": len(CLASSES), "classes": list(CLASSES)}
    return train, test, info
