"""Images on disk: reading PNG/JPEG files (PIL), scanning a folder of one subfolder per class,
and the `classes.json` file of class names. No TensorFlow.
"""

import dataclasses
import json
import os

import numpy as np

from bcnn_keras.data.registry import (
    CLASS_NAMES_FILE,
    DEFAULT_VALIDATION_SPLIT,
    FOLDER_PREFIX,
    DatasetNotFoundError,
    DATASETS,
    DatasetSpec,
    ImageFolderError,
    is_folder,
)
from bcnn_keras.files import write_json
from bcnn_keras.console import first_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


# PIL modes of one-channel images; every other mode (RGB, RGBA, palette, CMYK, YCbCr) is read as RGB.
_GREY_MODES = ("1", "L", "LA", "La", "I", "F")


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


def write_class_names(path, class_names):
    """Writes the class names as a JSON list of strings (the file `read_class_names` reads),
    atomically.

    Example:
        >>> write_class_names("classes.json", ["T-shirt/top", "Trouser"])
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
