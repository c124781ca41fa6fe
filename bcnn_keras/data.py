"""Seeded, deterministic `tf.data` pipelines of raw pixels (0..255 float32) and integer labels.

Datasets:
- `fashion_mnist`: the Debian package `dataset-fashion-mnist` (IDX files under
  `/usr/share/datasets/fashion-mnist/`) when present, tensorflow-datasets otherwise.
- `cifar10`: tensorflow-datasets (`data_dir`).
- `imagenet2012`: tensorflow-datasets with the manual download dir (`manual_dir`) holding
  `ILSVRC2012_img_train.tar` and `ILSVRC2012_img_val.tar`.
- `folder:PATH`: your own PNG and JPEG images, one subfolder per class (see `scan_image_folder`).

Example:
    >>> train = make_dataset("fashion_mnist", "train", batch_size=128, seed=0, limit=256)
    >>> images, labels = next(iter(train))
    >>> images.shape, images.dtype
    (TensorShape([128, 28, 28, 1]), tf.float32)
"""

import dataclasses
import gzip
import json
import os
import socket
import urllib.parse
import zlib

import numpy as np
import tensorflow as tf

from bcnn_keras.files import write_json
from bcnn_keras.loading import first_line

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


FOLDER_PREFIX = "folder:"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# PIL modes of one-channel images; every other mode (RGB, RGBA, palette, CMYK, YCbCr) is read as RGB.
_GREY_MODES = ("1", "L", "LA", "La", "I", "F")
DEFAULT_VALIDATION_SPLIT = 0.2
# The split name of the images held out of a dataset's training split (`validation_images`).
VALIDATION_SPLIT = "validation"
# Seeds the choice of held-out images: the same validation set in every run, whatever its --seed.
VALIDATION_SEED = 1234
# What the training CLI writes next to `model.keras`, and the exporter and `predict` read.
CLASS_NAMES_FILE = "classes.json"


class DatasetNotFoundError(RuntimeError):
    """A dataset is not on this machine; the message says how to get it."""


class ImageFolderError(ValueError):
    """An image folder (or image file) that cannot be used, as one line naming the culprit."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a model needs to know about a dataset (`class_names`: None when not known;
    `train_size`: the examples of the train split)."""

    name: str
    image_shape: tuple
    classes: int
    train_split: str = "train"
    test_split: str = "test"
    class_names: tuple | None = None
    train_size: int | None = None


FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

DATASETS = {
    "fashion_mnist": DatasetSpec(
        "fashion_mnist", (28, 28, 1), 10, class_names=FASHION_MNIST_CLASSES, train_size=60_000
    ),
    "cifar10": DatasetSpec("cifar10", (32, 32, 3), 10, class_names=CIFAR10_CLASSES, train_size=50_000),
    "imagenet2012": DatasetSpec("imagenet2012", (224, 224, 3), 1000, test_split="validation", train_size=1_281_167),
}


def is_folder(name):
    """Whether a dataset name is an image folder, `folder:PATH`.

    Example:
        >>> is_folder("folder:photos"), is_folder("cifar10")
        (True, False)
    """
    return str(name).startswith(FOLDER_PREFIX)


def dataset_spec(name, image_size=None):
    """The `DatasetSpec` of a supported dataset name, or of `folder:PATH` (scanned: its classes,
    channels and image size, `image_size` if given, else its first image's).

    Example:
        >>> dataset_spec("fashion_mnist").image_shape
        (28, 28, 1)
    """
    if is_folder(name):
        return scan_image_folder(name[len(FOLDER_PREFIX) :]).spec(image_size)
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)} or folder:PATH")
    if image_size is not None:
        raise ValueError(f"image_size is for folder:PATH datasets only; {name} images keep their size")
    return DATASETS[name]


def image_channels(image):
    """1 for a grey PIL image (alpha ignored), 3 for any other (RGB, palette, CMYK...).

    Example:
        >>> from PIL import Image
        >>> image_channels(Image.new("LA", (4, 4))), image_channels(Image.new("P", (4, 4)))
        (1, 3)
    """
    return 1 if image.mode in _GREY_MODES or image.mode.startswith("I;16") else 3


def _channel_name(channels):
    return {1: "grey", 3: "RGB"}.get(channels, f"{channels}-channel")


def _open_image(path):
    """Opens an image with PIL (only its header is read); unreadable files raise one line."""
    from PIL import Image  # PIL comes with matplotlib, a dependency

    try:
        return Image.open(path)
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError... for bad files
        raise ImageFolderError(f"{path}: not a readable image ({first_line(error)})") from error


def image_header(path):
    """`((height, width), channels)` of an image file, from its header only.

    Example:
        >>> from PIL import Image
        >>> Image.new("RGB", (30, 20)).save("cat.png")  # 30 wide, 20 high
        >>> image_header("cat.png")
        ((20, 30), 3)
    """
    with _open_image(path) as image:
        return (image.height, image.width), image_channels(image)


def read_image(path, size=None, channels=None, convert=False):
    """An image file as uint8 pixels `[height, width, channels]`, resized (bilinear, PIL) to
    `size` `(height, width)` if given. Alpha is dropped and palettes expanded; grey images have
    one channel, others three. With `channels`, an image of another channel count is refused,
    unless `convert`: then RGB becomes grey (PIL's `convert("L")`) and grey is repeated into
    three channels. Raises `ImageFolderError` naming the file.

    Training (`make_dataset` on a folder, never converting: a folder is one kind of image) and
    `bcnn_keras.predict` (converting) both read images with it.

    Example:
        >>> from PIL import Image
        >>> Image.new("RGB", (20, 20)).save("cat.png")
        >>> read_image("cat.png", size=(32, 32)).shape, read_image("cat.png", channels=1, convert=True).shape
        ((32, 32, 3), (20, 20, 1))
    """
    with _open_image(path) as image:
        return image_pixels(image, size, channels, convert, label=path)


def image_pixels(image, size=None, channels=None, convert=False, label="image"):
    """`read_image` for an open PIL image; errors name it `label`."""
    found = image_channels(image)
    if channels is not None and found != channels and not convert:
        raise ImageFolderError(
            f"{label}: a {_channel_name(found)} image, but the model takes {_channel_name(channels)} "
            f"images (convert the image to {_channel_name(channels)} first)"
        )
    wanted = channels if channels is not None else found
    try:
        image = image.convert("L" if wanted == 1 else "RGB")
        if size is not None and (image.height, image.width) != tuple(size):
            image = image.resize((size[1], size[0]), resample=_bilinear())
        pixels = np.asarray(image, dtype=np.uint8)
    except Exception as error:  # a truncated or corrupt body fails only when decoded
        raise ImageFolderError(f"{label}: not a readable image ({first_line(error)})") from error
    return pixels.reshape(*pixels.shape[:2], wanted)


def _bilinear():
    from PIL import Image

    return Image.Resampling.BILINEAR


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """A scanned image folder: class names, `(path, label)` pairs per split ("train", "test"),
    the images' channel count and the first image's `(height, width)`."""

    root: str
    class_names: tuple
    files: dict
    channels: int
    first_size: tuple

    def spec(self, image_size=None):
        """The `DatasetSpec`: images resized to `image_size` (an int or `(height, width)`),
        by default the size of the folder's first image."""
        size = _size_pair(image_size) if image_size is not None else self.first_size
        return DatasetSpec(
            FOLDER_PREFIX + self.root,
            (*size, self.channels),
            len(self.class_names),
            class_names=self.class_names,
            train_size=len(self.files["train"]),
        )


def _size_pair(image_size):
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or not all(isinstance(side, int) and side > 0 for side in size):
        raise ValueError(f"image size must be a positive int or (height, width), got {image_size!r}")
    return size


def _visible_entries(directory):
    return sorted(entry for entry in os.listdir(directory) if not entry.startswith("."))


def _class_folders(directory):
    """The class names (subfolders) of `directory`, checked: at least two."""
    classes = [name for name in _visible_entries(directory) if os.path.isdir(os.path.join(directory, name))]
    if not classes:
        what = "is empty" if not _visible_entries(directory) else "has no class subfolders"
        raise ImageFolderError(f"image folder {directory} {what}: expected one subfolder of images per class")
    if len(classes) == 1:
        raise ImageFolderError(
            f"image folder {directory} has only one class folder ({classes[0]}): a classifier needs at least two"
        )
    return classes


def images_under(folder):
    """The PNG and JPEG files under `folder` (subfolders included, hidden entries skipped), sorted.

    Example:
        >>> from PIL import Image
        >>> os.makedirs("shots/day")
        >>> for name in ("shots/day/b.png", "shots/a.jpg", "shots/.hidden.png"):
        ...     Image.new("L", (4, 4)).save(name)
        >>> images_under("shots")
        ['shots/a.jpg', 'shots/day/b.png']
    """
    found = []
    for directory, subdirectories, names in os.walk(folder):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        found += [
            os.path.join(directory, name)
            for name in sorted(names)
            if not name.startswith(".") and name.lower().endswith(IMAGE_SUFFIXES)
        ]
    return found


def _image_files(class_dir):
    """The images of a class folder; raises `ImageFolderError` when there are none."""
    found = images_under(class_dir)
    if not found:
        raise ImageFolderError(f"class folder {class_dir} holds no {'/'.join(IMAGE_SUFFIXES)} images")
    return found


def _labelled_files(directory, classes):
    return [(path, label) for label, name in enumerate(classes) for path in _image_files(os.path.join(directory, name))]


def _split_files(labelled, fraction, seed):
    """A seeded split per class: `round(fraction * n)` of each class's n images (at least one,
    and one left for training) go to "test"; each split in a seeded random order, so that a
    `limit` takes images of every class."""
    rng = np.random.default_rng(seed)
    splits = {"train": [], "test": []}
    for label in sorted({label for _, label in labelled}):
        files = [pair for pair in labelled if pair[1] == label]
        count = min(max(1, round(fraction * len(files))), len(files) - 1) if len(files) > 1 else 0
        order = rng.permutation(len(files))
        splits["test"] += [files[i] for i in order[:count]]
        splits["train"] += [files[i] for i in order[count:]]
    return {split: [files[i] for i in rng.permutation(len(files))] for split, files in splits.items()}


def _check_channels(labelled):
    """The one channel count of all images (1 or 3), read from their headers; also returns the
    first image's size. Mixed grey and RGB images are refused, naming one of each."""
    first_of = {}
    first_size = None
    for path, _ in labelled:
        size, channels = image_header(path)
        first_size = first_size or size
        first_of.setdefault(channels, path)
    if len(first_of) > 1:
        raise ImageFolderError(
            f"mixed grey and RGB images: {first_of[1]} is grey, {first_of[3]} is RGB; convert them all to one"
        )
    return next(iter(first_of)), first_size


def scan_image_folder(path, validation_split=None, split_seed=0):
    """Scans `path`: one subfolder per class (sorted names are the classes), each holding PNG or
    JPEG images (in subfolders too), or `train/` and `test/` each with the same class
    subfolders. Without `train/` and `test/`, a seeded share `validation_split` (default 0.2) of
    each class is the test split; `split_seed` chooses it. Reads only the images' headers.

    Raises `DatasetNotFoundError` for a missing folder and `ImageFolderError` (one line naming
    the folder or file) for an empty folder, a single class, a class without images, an
    unreadable image or mixed grey and RGB images.

    Example:
        >>> from PIL import Image
        >>> for label in ("cat", "dog"):
        ...     os.makedirs(f"photos/{label}")
        ...     for i in range(25):
        ...         Image.new("RGB", (20, 20), (10 * i, 0, 0)).save(f"photos/{label}/{i}.png")
        >>> folder = scan_image_folder("photos")
        >>> folder.class_names, folder.channels, len(folder.files["test"])
        (('cat', 'dog'), 3, 10)
    """
    root = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(root):
        what = "is not a folder" if os.path.exists(root) else "does not exist"
        raise DatasetNotFoundError(f"image folder {path} {what}")
    split_dirs = [os.path.isdir(os.path.join(root, split)) for split in ("train", "test")]
    if any(split_dirs):
        if not all(split_dirs):
            raise ImageFolderError(
                f"image folder {path} has a {'train' if split_dirs[0] else 'test'}/ split but not the other"
            )
        if validation_split is not None:
            raise ImageFolderError(
                f"image folder {path} has its own train/ and test/ splits: drop the validation split"
            )
        classes = _class_folders(os.path.join(root, "train"))
        test_classes = _class_folders(os.path.join(root, "test"))
        if test_classes != classes:
            raise ImageFolderError(
                f"image folder {path}: test/ has the classes {test_classes}, train/ has {classes}; "
                "they must be the same"
            )
        files = {split: _labelled_files(os.path.join(root, split), classes) for split in ("train", "test")}
        channels, first_size = _check_channels(files["train"] + files["test"])
    else:
        fraction = DEFAULT_VALIDATION_SPLIT if validation_split is None else validation_split
        if not 0 < fraction < 1:
            raise ImageFolderError(f"validation split must be between 0 and 1 (exclusive), got {fraction}")
        classes = _class_folders(root)
        labelled = _labelled_files(root, classes)
        channels, first_size = _check_channels(labelled)  # in sorted order: the first files are named
        files = _split_files(labelled, fraction, split_seed)
    return ImageFolder(root, tuple(classes), files, channels, first_size)


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


def write_class_names(path, class_names):
    """Writes the class names as a JSON list of strings (the file `read_class_names` reads),
    atomically.

    Example:
        >>> write_class_names("classes.json", dataset_spec("fashion_mnist").class_names)
    """
    write_json(path, list(class_names), indent=1)


def class_names_next_to(model_file, classes=None):
    """The names in the `classes.json` beside `model_file` (a model or `.tflite` file), or None
    when there is none; a malformed file raises `ValueError` as `read_class_names` does.

    Example:
        >>> write_class_names("classes.json", ["cat", "dog"])
        >>> class_names_next_to("model.tflite", 2), class_names_next_to("/no/such/dir/model.tflite")
        (['cat', 'dog'], None)
    """
    path = os.path.join(os.path.dirname(os.path.abspath(model_file)), CLASS_NAMES_FILE)
    return read_class_names(path, classes) if os.path.exists(path) else None


def read_class_names(path, classes=None):
    """The class names in a `classes.json` file: a JSON list of strings, `classes` of them if
    given (the model's output size); an export report (a JSON object with such a list in
    `class_names`) works too. Anything else raises `ValueError` with one line.

    Example:
        >>> write_class_names("classes.json", ["cat", "dog"])
        >>> read_class_names("classes.json", 2)
        ['cat', 'dog']
    """
    try:
        with open(path, "rb") as stream:
            names = json.loads(stream.read(16 << 20).decode())  # names are small: a huge file is cut, and fails
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable JSON file of class names ({first_line(error)})") from error
    if isinstance(names, dict):
        names = names.get("class_names")
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{path}: class names must be a JSON list of strings")
    if classes is not None and len(names) != classes:
        raise ValueError(f"{path}: {len(names)} class names, but the model has {classes} outputs")
    return names


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
            image = _pad_and_crop(image, crop_seed, padding=_crop_padding(name, image))
    return tf.image.stateless_random_flip_left_right(image, flip_seed)


def _crop_padding(name, image):
    """Pad-and-crop padding: 2 px on Fashion-MNIST, 4 on CIFAR-10, an eighth of the shorter
    side (as on CIFAR-10) on an image folder."""
    if name == "fashion_mnist":
        return 2
    return max(1, min(image.shape[:2]) // 8) if is_folder(name) else 4


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
    image_size=None,
    validation_split=None,
    split_seed=0,
    validation_images=None,
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

    `name` may be `folder:PATH`, an image folder (see `scan_image_folder`; its splits are
    "train" and "test"): its images are decoded once into memory, resized to `image_size` (an
    int or `(height, width)`; default: the first image's size), and, without `train/` and
    `test/` subfolders, split by `validation_split` (default 0.2) with `split_seed`, the same
    for both splits. `image_size` and `validation_split` are for folders only.

    `validation_images` holds a fixed, seeded set of that many training images out (see
    `held_out_mask`): the train split is the rest, and the split "validation" is those images.
    Recipes are chosen on it, so that the test split is evaluated once, at the end.

    The last batch of an epoch may be smaller than `batch_size`: no image is left out.

    Example:
        >>> test = make_dataset("fashion_mnist", "test", batch_size=256)
        >>> validation = make_dataset("fashion_mnist", "validation", 1000, validation_images=5000)
        >>> sum(len(labels) for _, labels in validation)
        5000
    """
    folder = None
    if is_folder(name):
        folder = scan_image_folder(name[len(FOLDER_PREFIX) :], validation_split, split_seed)
        spec = folder.spec(image_size)
    else:
        if validation_split is not None:
            raise ValueError(f"validation_split is for folder:PATH datasets only; {name} has its own test split")
        spec = dataset_spec(name, image_size)
    if validation_images and folder is not None:
        raise ValueError("validation_images is for the named datasets; a folder's test split is its validation_split")
    augmentation = _augmentation(augment)
    if training is None:
        training = split == spec.train_split
    if split == VALIDATION_SPLIT and not validation_images:
        raise ValueError(
            f"the split {VALIDATION_SPLIT!r} exists only with validation_images (held out of the training split)"
        )
    if teacher is not None and training and augmentation != "none":
        raise ValueError("teacher outputs can be computed once only for un-augmented training data (augment='none')")
    if teacher is not None and name == "imagenet2012":
        raise ValueError("teacher outputs are kept in memory: not for imagenet2012 (1.28M x 1000 floats)")
    if folder is not None:
        dataset = _folder_source(folder, split, spec.image_shape, limit)
    else:
        dataset = _split_source(name, split, spec, validation_images, data_dir=data_dir, manual_dir=manual_dir)
    if limit:
        dataset = dataset.take(limit)
    dataset = dataset.map(lambda image, label: (tf.cast(image, tf.float32), tf.cast(label, tf.int64)))
    # Batching needs one image size; only the standard ImageNet augmentation crops to it.
    if name == "imagenet2012" and not (training and augmentation == "standard"):
        dataset = dataset.map(lambda image, label: (_center_crop(image), label), tf.data.AUTOTUNE)
    if teacher is not None:
        dataset = _with_teacher_outputs(dataset, teacher)
    if cache and name != "imagenet2012" and folder is None:  # a folder's images are in memory already
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
    dataset = dataset.batch(batch_size)
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
