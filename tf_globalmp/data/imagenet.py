"""ImageNet (ILSVRC 2012): TFRecords in the standard layout, tfds, or fake data.

`load(config, strategy=None) -> (train, test, info)` like the other data modules;
with a strategy the datasets are built per input pipeline
(`distribute_datasets_from_function`): each replica gets batches of
``batch_size / num_replicas`` and each worker reads its own shard of the files.

Sources, chosen from the config:
- ``fake_data=True``: random images with the real shapes (smoke tests, throughput).
- ``data_dir`` holding ``train-*-of-*`` and ``validation-*-of-*`` TFRecord files
  (the layout of tensorflow/models' ``imagenet_to_gcs.py`` / the TPU recipes): each
  record has ``image/encoded`` (JPEG bytes) and ``image/class/label`` (1..1000,
  shifted here to 0..999).
- otherwise tfds ``imagenet2012`` (``data_dir`` is tfds' manual dir holding the
  ILSVRC2012 tar files; prepared data go to ``tfds_data_dir``).

Training: Inception-style random-resized-crop (area 8%..100%, aspect 3/4..4/3) to
``image_size``, random horizontal flip. Evaluation (deterministic): resize the
shorter side to ``image_size / eval_crop_fraction`` (256 for 224), center crop
``image_size``. Pixels are normalised with the ImageNet mean/std (or to [-1, 1]
with ``preprocessing="inception"``, what Keras' pretrained MobileNets expect);
labels are one-hot (for label smoothing).
"""

import glob
import os

import tensorflow as tf
from absl import logging

NUM_CLASSES = 1000
TRAIN_EXAMPLES = 1_281_167
EVAL_EXAMPLES = 50_000
TRAIN_PATTERN = "train-*-of-*"
EVAL_PATTERN = "validation-*-of-*"
MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STD_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)
PREPROCESSING = ("mean_std", "inception")
_AREA_RANGE = (0.08, 1.0)
_ASPECT_RANGE = (3 / 4, 4 / 3)
_FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/class/label": tf.io.FixedLenFeature([], tf.int64),
}


# ---------------------------------------------------------------- preprocessing
def normalize(image, preprocessing="mean_std"):
    """uint8/float RGB in [0, 255] -> float32 network input."""
    image = tf.cast(image, tf.float32)
    if preprocessing == "inception":
        return image / 127.5 - 1.0
    return (image - MEAN_RGB) / STD_RGB


def random_resized_crop(image_bytes, image_size):
    """Decode a random crop (area 8-100%, aspect 3/4-4/3) and resize it to image_size."""
    shape = tf.image.extract_jpeg_shape(image_bytes)
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        shape, bounding_boxes=tf.zeros([1, 0, 4]), min_object_covered=0.1,
        aspect_ratio_range=_ASPECT_RANGE, area_range=_AREA_RANGE, max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    image = tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    return tf.image.random_flip_left_right(image)


def resize_center_crop(image_bytes, image_size, crop_fraction=0.875):
    """Resize the shorter side to image_size / crop_fraction, center crop image_size."""
    image = tf.image.decode_jpeg(image_bytes, channels=3)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    resize = tf.round(image_size / crop_fraction)
    scale = resize / tf.reduce_min(shape)
    new = tf.cast(tf.maximum(tf.round(shape * scale), float(image_size)), tf.int32)
    image = tf.image.resize(image, new, method="bilinear", antialias=True)
    top = (new[0] - image_size) // 2
    left = (new[1] - image_size) // 2
    return image[top:top + image_size, left:left + image_size, :]


def parse_record(serialized):
    """A standard ImageNet TFRecord -> (JPEG bytes, label in 0..999)."""
    features = tf.io.parse_single_example(serialized, _FEATURES)
    return features["image/encoded"], tf.cast(features["image/class/label"] - 1, tf.int32)


# ---------------------------------------------------------------- sources
def record_files(data_dir, split):
    """Sorted TFRecord files of `split` ('train' or 'validation') in `data_dir`."""
    pattern = TRAIN_PATTERN if split == "train" else EVAL_PATTERN
    files = sorted(glob.glob(os.path.join(data_dir, pattern)))
    if not files:
        raise ValueError(f"data_dir {data_dir!r} has no {pattern} TFRecord files")
    return files


def is_tfrecord_dir(data_dir):
    return bool(data_dir) and bool(glob.glob(os.path.join(data_dir, TRAIN_PATTERN)))


def _records(config, training, input_context):
    """(JPEG bytes, label) pairs of one input pipeline, before shuffling/decoding."""
    shards = input_context.num_input_pipelines if input_context else 1
    index = input_context.input_pipeline_id if input_context else 0
    if is_tfrecord_dir(config.data_dir):
        files = record_files(config.data_dir, "train" if training else "validation")
        by_file = shards > 1 and len(files) >= shards  # else every worker reads, keeps 1/n
        ds = tf.data.Dataset.from_tensor_slices(files)
        if by_file:
            ds = ds.shard(shards, index)
        if training:
            ds = ds.shuffle(len(files), seed=config.seed)
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(16, len(files)),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
        if shards > 1 and not by_file:
            ds = ds.shard(shards, index)
        return ds.map(parse_record, num_parallel_calls=tf.data.AUTOTUNE)
    import tensorflow_datasets as tfds  # only for the tfds source

    builder = tfds.builder("imagenet2012", data_dir=config.tfds_data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=config.data_dir))
    read_config = tfds.ReadConfig(input_context=input_context, shuffle_seed=config.seed)
    ds = builder.as_dataset(split="train" if training else "validation",
                            shuffle_files=training, read_config=read_config,
                            decoders={"image": tfds.decode.SkipDecoding()})
    return ds.map(lambda e: (e["image"], tf.cast(e["label"], tf.int32)),
                  num_parallel_calls=tf.data.AUTOTUNE)


def _fake(config, training, batch_size, replicas=1):
    """One fixed random batch per replica, repeated (train) / `eval_steps` global
    batches (test); `replicas`: replicas fed by this input pipeline."""
    size = config.image_size
    count = batch_size * replicas * (1 if training else max(config.eval_steps, 1))
    seed = (config.seed, 1 if training else 2)
    images = tf.random.stateless_uniform([count, size, size, 3], seed, maxval=255.0)
    labels = tf.random.stateless_uniform([count], seed, maxval=NUM_CLASSES, dtype=tf.int32)
    ds = tf.data.Dataset.from_tensor_slices((normalize(images, config.preprocessing),
                                             tf.one_hot(labels, NUM_CLASSES)))
    ds = ds.batch(batch_size, drop_remainder=True).cache()
    return ds.repeat() if training else ds


def dataset(config, training, input_context=None):
    """Batches of (float32 images (B, S, S, 3), one-hot labels (B, 1000)) for one input
    pipeline. B is the per-replica batch when `input_context` is given."""
    global_batch = config.batch_size if training else config.eval_batch_size
    batch = input_context.get_per_replica_batch_size(global_batch) if input_context else global_batch
    if config.fake_data:
        replicas = (input_context.num_replicas_in_sync // input_context.num_input_pipelines
                    if input_context else 1)
        return _fake(config, training, batch, replicas)
    ds = _records(config, training, input_context)
    if config.cache:
        ds = ds.cache()  # encoded JPEGs: ~140 GB for the full train set, mind the RAM
    if training:
        ds = ds.shuffle(config.shuffle_buffer, seed=config.seed).repeat()

    def prepare(image_bytes, label):
        if training:
            image = random_resized_crop(image_bytes, config.image_size)
        else:
            image = resize_center_crop(image_bytes, config.image_size, config.eval_crop_fraction)
        return normalize(image, config.preprocessing), tf.one_hot(label, NUM_CLASSES)

    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not training)
    ds = ds.batch(batch, drop_remainder=training)
    options = tf.data.Options()
    options.deterministic = not training
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def load(config, strategy=None):
    """(train, test, info): per-replica-batched distributed datasets under `strategy`
    (plain datasets without one). info: name, num_classes, input_shape, example counts,
    steps_per_epoch."""
    for name in ("batch_size", "eval_batch_size"):
        replicas = strategy.num_replicas_in_sync if strategy else 1
        if getattr(config, name) % replicas:
            raise ValueError(f"{name} must be divisible by the {replicas} replicas, got "
                             f"{getattr(config, name)}")
    if strategy is None:
        train, test = dataset(config, True), dataset(config, False)
    else:
        train = strategy.distribute_datasets_from_function(lambda ctx: dataset(config, True, ctx))
        test = strategy.distribute_datasets_from_function(lambda ctx: dataset(config, False, ctx))
    source = ("fake" if config.fake_data else
              "tfrecord" if is_tfrecord_dir(config.data_dir) else "tfds")
    steps = config.steps_per_epoch or max(config.train_examples // config.batch_size, 1)
    info = {"name": f"imagenet2012 ({source})", "source": source, "num_classes": NUM_CLASSES,
            "input_shape": (config.image_size, config.image_size, 3),
            "train_examples": config.train_examples, "test_examples": config.eval_examples,
            "steps_per_epoch": steps}
    logging.info("ImageNet from %s: %d steps of %d images per epoch", source, steps,
                 config.batch_size)
    return train, test, info
