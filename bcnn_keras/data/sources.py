"""Where examples come from: Fashion-MNIST's IDX files, tensorflow-datasets, image folders, and
the fixed validation split held out of a training split.
"""

import gzip
import os
import socket
import urllib.parse
import zlib

import numpy as np
import tensorflow as tf

from bcnn_keras.data.folders import read_image
from bcnn_keras.data.registry import VALIDATION_SEED, VALIDATION_SPLIT, DatasetNotFoundError, ImageFolderError

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


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
        raise ValueError(
            f"{path} does not match its header: expected {int(np.prod(shape))} values, found {values.size}"
        )
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
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    except Exception as error:  # tfds raises many types for "no network" and "no manual files"
        raise DatasetNotFoundError(_how_to_get(name, data_dir, manual_dir)) from error
    return builder.as_dataset(split=split, as_supervised=True, shuffle_files=False)


def _source(name, split, *, data_dir, manual_dir):
    if name == "fashion_mnist":
        images, labels = load_fashion_mnist_arrays(split, data_dir=data_dir)
        return tf.data.Dataset.from_tensor_slices((images, labels))
    return _load_tfds(name, split, data_dir=data_dir, manual_dir=manual_dir)


def held_out_mask(train_size, validation_images):
    """A boolean mask over a training split of `train_size` examples: True for the
    `validation_images` held out as the validation set, a fixed seeded choice (`VALIDATION_SEED`).

    Example:
        >>> mask = held_out_mask(60_000, 5_000)
        >>> int(mask.sum()), bool(mask[:10].any() or mask[10:].any())
        (5000, True)
    """
    if not 0 < validation_images < train_size:
        raise ValueError(
            f"validation_images must be between 1 and {train_size - 1} (the training split's size), "
            f"got {validation_images}"
        )
    mask = np.zeros(train_size, dtype=bool)
    mask[np.random.default_rng(VALIDATION_SEED).permutation(train_size)[:validation_images]] = True
    return mask


def _split_source(name, split, spec, validation_images, *, data_dir, manual_dir):
    """The examples of `split`; with `validation_images`, the training split without its
    held-out images, or (split "validation") those images alone."""
    if not validation_images:
        return _source(name, split, data_dir=data_dir, manual_dir=manual_dir)
    if split not in (spec.train_split, VALIDATION_SPLIT):
        return _source(name, split, data_dir=data_dir, manual_dir=manual_dir)
    train = _source(name, spec.train_split, data_dir=data_dir, manual_dir=manual_dir)
    size = int(train.cardinality()) if train.cardinality() >= 0 else sum(1 for _ in train)
    keep = held_out_mask(size, validation_images) == (split == VALIDATION_SPLIT)

    def kept(index, example):
        return tf.constant(keep)[index]

    def without_index(index, example):
        return example

    selected = train.enumerate().filter(kept).map(without_index)
    return selected.apply(tf.data.experimental.assert_cardinality(int(keep.sum())))


def _folder_source(folder, split, image_shape, limit):
    """The split's images, decoded once (PIL) into memory, as a dataset of (uint8, label)."""
    if split not in folder.files:
        raise ValueError(f"an image folder has the splits 'train' and 'test', not {split!r}")
    files = folder.files[split][:limit] if limit else folder.files[split]
    if not files:
        raise ImageFolderError(f"image folder {folder.root} has no {split} images")
    images = np.stack([read_image(path, image_shape[:2], image_shape[2]) for path, _ in files])
    labels = np.array([label for _, label in files], dtype=np.int64)
    return tf.data.Dataset.from_tensor_slices((images, labels))
