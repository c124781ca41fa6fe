"""The datasets bcnn_keras knows, by name, and the names and constants the data modules share.

Nothing here imports TensorFlow: the training CLI checks its flags against this registry.
"""

import dataclasses

FOLDER_PREFIX = "folder:"


DEFAULT_VALIDATION_SPLIT = 0.2


# The split name of the images held out of a dataset's training split (`validation_images`).
VALIDATION_SPLIT = "validation"


# Seeds the choice of held-out images: the same validation set in every run, whatever its --seed.
VALIDATION_SEED = 1234


# What the training CLI writes next to `model.keras`, and the exporter and `predict` read.
CLASS_NAMES_FILE = "classes.json"


AUGMENTATIONS = ("standard", "flip", "none")


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
