"""Seeded, deterministic `tf.data` pipelines of raw pixels (0..255 float32) and integer labels.

Datasets:
- `fashion_mnist`: the Debian package `dataset-fashion-mnist` (IDX files under
  `/usr/share/datasets/fashion-mnist/`) when present, tensorflow-datasets otherwise.
- `cifar10`: tensorflow-datasets (`data_dir`).
- `imagenet2012`: tensorflow-datasets with the manual download dir (`manual_dir`) holding
  `ILSVRC2012_img_train.tar` and `ILSVRC2012_img_val.tar`.

Example:
    >>> train = make_dataset("fashion_mnist", "train", batch_size=128, seed=0, limit=256)
    >>> images, labels = next(iter(train))
    >>> images.shape, images.dtype
    (TensorShape([128, 28, 28, 1]), tf.float32)
"""

import dataclasses
import gzip
import os
import socket
import urllib.parse
import zlib

import numpy as np
import tensorflow as tf

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class DatasetNotFoundError(RuntimeError):
    """A dataset is not on this machine; the message says how to get it."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a model needs to know about a dataset."""

    name: str
    image_shape: tuple
    classes: int
    train_split: str = "train"
    test_split: str = "test"


DATASETS = {
    "fashion_mnist": DatasetSpec("fashion_mnist", (28, 28, 1), 10),
    "cifar10": DatasetSpec("cifar10", (32, 32, 3), 10),
    "imagenet2012": DatasetSpec("imagenet2012", (224, 224, 3), 1000, test_split="validation"),
}


def dataset_spec(name):
    """The `DatasetSpec` of a supported dataset name."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def read_idx(path):
    """Reads a (gzipped) IDX file, the format of MNIST and Fashion-MNIST, into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            data = stream.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise ValueError(f"{path} is not a readable gzip file ({error})") from error
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    rank = data[3]
    if len(data) < 4 + 4 * rank:
        raise ValueError(f"{path} is truncated: its header announces {rank} dimensions")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if values.size != int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"{path} does not match its header: expected {int(np.prod(shape))} values, found {values.size}")
    return values.reshape(shape)


def load_fashion_mnist_arrays(split, data_dir=None):
    """Fashion-MNIST `split` ("train" or "test") as (uint8 images [N, 28, 28, 1], int64 labels).

    Reads the Debian package's IDX files (or IDX files in `data_dir`), else tensorflow-datasets.
    """
    idx_dir = data_dir if data_dir and _has_idx_files(data_dir) else FASHION_MNIST_DIR
    if _has_idx_files(idx_dir):
        image_file, label_file = _IDX_FILES[split]
        images = read_idx(os.path.join(idx_dir, image_file))
        labels = read_idx(os.path.join(idx_dir, label_file)).astype(np.int64)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{idx_dir}: {split} images of shape {images.shape} do not go with labels of shape {labels.shape}"
            )
        return images[..., None], labels
    dataset = _load_tfds("fashion_mnist", split, data_dir=data_dir, manual_dir=None)
    images, labels = zip(*dataset.as_numpy_iterator()) if dataset else ((), ())
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def _has_idx_files(directory):
    return all(os.path.exists(os.path.join(directory, f)) for files in _IDX_FILES.values() for f in files)


def _how_to_get(name, data_dir, manual_dir):
    if name == "fashion_mnist":
        return (
            "Fashion-MNIST not found: install it with `apt-get install dataset-fashion-mnist` "
            f"(IDX files in {FASHION_MNIST_DIR}) or let tensorflow-datasets download it into --data-dir"
        )
    if name == "imagenet2012":
        where = manual_dir or os.path.join(data_dir or "~/tensorflow_datasets", "downloads", "manual")
        return (
            f"ImageNet 2012 not found: download ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar "
            f"from image-net.org into the tensorflow-datasets manual dir {where} (--manual-dir)"
        )
    return (
        f"{name} not found in {data_dir or 'the default tensorflow-datasets dir'} and could not be "
        "downloaded: run `tfds build " + name + "` on a machine with internet access and pass its --data-dir"
    )


def _unreachable_hosts(builder):
    """The download hosts of a tfds builder that do not resolve (no network here)."""
    hosts = {urllib.parse.urlparse(url).hostname for url in (getattr(builder, "url_infos", None) or {})}
    unreachable = []
    for host in hosts:
        try:
            socket.getaddrinfo(host, 443)
        except OSError:
            unreachable.append(host)
    return unreachable


def _load_tfds(name, split, *, data_dir, manual_dir):
    """Loads a tfds split as (image, label) tuples, preparing it if it is not built yet."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    prepared = tf.io.gfile.exists(os.path.join(builder.data_dir, "dataset_info.json"))
    if not prepared and _unreachable_hosts(builder):  # fail at once instead of after tfds' retries
        raise DatasetNotFoundError(_how_to_get(name, data_dir, manual_dir))
    try:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
        )
    except Exception as error:  # tfds raises many types for "no network" and "no manual files"
        raise DatasetNotFoundError(_how_to_get(name, data_dir, manual_dir)) from error
    return builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)


def _source(name, split, *, data_dir, manual_dir):
    if name == "fashion_mnist":
        images, labels = load_fashion_mnist_arrays(split, data_dir=data_dir)
        return tf.data.Dataset.from_tensor_slices((images, labels))
    return _load_tfds(name, split, data_dir=data_dir, manual_dir=manual_dir)


def _pad_and_crop(image, seed, padding):
    height, width, channels = image.shape
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    return tf.image.stateless_random_crop(padded, (height, width, channels), seed)


AUGMENTATIONS = ("standard", "flip", "none")


def _augmentation(augment):
    """The name of an `augment` argument: True is "standard", False or None is "none"."""
    name = {True: "standard", False: "none", None: "none"}.get(augment, augment)
    if name not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS} (or True/False), got {augment!r}")
    return name


def _augment(name, image, seed, augmentation="standard"):
    """Training augmentation. "standard": pad-and-crop (+ flip) for small images, random resized
    crop and flip for ImageNet; "flip": a horizontal flip only. `seed` is a stateless seed, so
    the result is reproducible."""
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if augmentation == "standard":
        if name == "imagenet2012":
            image = _random_resized_crop(image, crop_seed)
        else:
            image = _pad_and_crop(image, crop_seed, padding=2 if name == "fashion_mnist" else 4)
    return tf.image.stateless_random_flip_left_right(image, flip_seed)


def _random_resized_crop(image, seed, size=224):
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        tf.shape(image),
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        area_range=(0.08, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3),
        use_image_if_no_bounding_boxes=True,
    )
    image = tf.slice(image, begin, crop_size)
    return tf.image.resize(image, (size, size))


def _center_crop(image, size=224, resize_to=256):
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scaled = tf.cast(tf.round(shape * resize_to / tf.reduce_min(shape)), tf.int32)
    image = tf.image.resize(image, scaled)
    return tf.image.resize_with_crop_or_pad(image, size, size)


def make_dataset(
    name,
    split,
    batch_size,
    *,
    training=None,
    augment=True,
    seed=0,
    data_dir=None,
    manual_dir=None,
    limit=None,
    cache=True,
    teacher=None,
):
    """A batched, prefetched `tf.data.Dataset` of (float32 pixels in 0..255, int64 labels).

    With `training` (default: `split` is the train split) it shuffles and augments, seeded: the
    same `seed` gives the same batches, epoch after epoch. `augment` is "standard" (or True),
    "flip" (a horizontal flip only) or "none" (or False). `limit`
    keeps the first `limit` examples (for quick runs). Raises `DatasetNotFoundError` with one
    line saying how to get a missing dataset.

    With a `teacher` model (training without augmentation only), its outputs on every image are
    computed once, here, and each batch is `(images, (labels, teacher_outputs))`:
    `distillation.Distiller` then skips the teacher's forward pass in every step.

    Example:
        >>> test = make_dataset("fashion_mnist", "test", batch_size=256)
    """
    spec = dataset_spec(name)
    augmentation = _augmentation(augment)
    if training is None:
        training = split == spec.train_split
    if teacher is not None and training and augmentation != "none":
        raise ValueError("teacher outputs can be computed once only for un-augmented training data (augment='none')")
    if teacher is not None and name == "imagenet2012":
        raise ValueError("teacher outputs are kept in memory: not for imagenet2012 (1.28M x 1000 floats)")
    dataset = _source(name, split, data_dir=data_dir, manual_dir=manual_dir)
    if limit:
        dataset = dataset.take(limit)
    dataset = dataset.map(lambda image, label: (tf.cast(image, tf.float32), tf.cast(label, tf.int64)))
    # Batching needs one image size; only the standard ImageNet augmentation crops to it.
    if name == "imagenet2012" and not (training and augmentation == "standard"):
        dataset = dataset.map(lambda image, label: (_center_crop(image), label), tf.data.AUTOTUNE)
    if teacher is not None:
        dataset = _with_teacher_outputs(dataset, teacher)
    if cache and name != "imagenet2012":
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(_shuffle_buffer(name), seed=seed, reshuffle_each_iteration=True)
    if training and augmentation != "none":
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip((dataset, seeds)).map(
            lambda example, pair: (_augment(name, example[0], pair, augmentation), example[1]),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    dataset = dataset.batch(batch_size, drop_remainder=training)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _with_teacher_outputs(dataset, teacher, batch_size=1024):
    """Pairs each (image, label) with `teacher`'s output on the image, in one inference pass."""
    outputs = teacher.predict(dataset.map(lambda image, label: image).batch(batch_size), verbose=0)
    teacher_outputs = tf.data.Dataset.from_tensor_slices(outputs)
    return tf.data.Dataset.zip((dataset, teacher_outputs)).map(
        lambda example, output: (example[0], (example[1], output))
    )


def _shuffle_buffer(name):
    return 10_000 if name == "imagenet2012" else 60_000
