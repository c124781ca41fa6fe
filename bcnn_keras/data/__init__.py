"""Seeded, deterministic `tf.data` pipelines of raw pixels (0..255 float32) and integer labels.

Datasets:
- `fashion_mnist`: the Debian package `dataset-fashion-mnist` (IDX files under
  `/usr/share/datasets/fashion-mnist/`) when present, tensorflow-datasets otherwise.
- `cifar10`: tensorflow-datasets (`data_dir`).
- `imagenet2012`: tensorflow-datasets with the manual download dir (`manual_dir`) holding
  `ILSVRC2012_img_train.tar` and `ILSVRC2012_img_val.tar`.
- `folder:PATH`: your own PNG and JPEG images, one subfolder per class (see `scan_image_folder`).

The modules, from names to batches: `registry` (the datasets and shared constants; no
TensorFlow), `folders` (image files, image folders, class-name files; no TensorFlow), `sources`
(IDX files, tensorflow-datasets, the validation split) and `batches` (`make_dataset`,
augmentation). Their public names are this package's, imported on first use.

Example:
    >>> train = bcnn_keras.data.make_dataset("fashion_mnist", "train", batch_size=128, seed=0, limit=256)
    >>> images, labels = next(iter(train))
    >>> images.shape, images.dtype
    (TensorShape([128, 28, 28, 1]), tf.float32)
"""

from bcnn_keras.lazy import lazy_package

_EXPORTS = {
    **dict.fromkeys(
        (
            "AUGMENTATIONS",
            "CIFAR10_CLASSES",
            "CLASS_NAMES_FILE",
            "DATASETS",
            "DEFAULT_VALIDATION_SPLIT",
            "FASHION_MNIST_CLASSES",
            "FOLDER_PREFIX",
            "VALIDATION_SEED",
            "VALIDATION_SPLIT",
            "DatasetNotFoundError",
            "DatasetSpec",
            "ImageFolderError",
            "is_folder",
        ),
        "registry",
    ),
    **dict.fromkeys(
        (
            "IMAGE_SUFFIXES",
            "ImageFolder",
            "class_names_next_to",
            "dataset_spec",
            "image_channels",
            "image_header",
            "image_pixels",
            "images_under",
            "read_class_names",
            "read_image",
            "scan_image_folder",
            "write_class_names",
        ),
        "folders",
    ),
    **dict.fromkeys(
        ("FASHION_MNIST_DIR", "held_out_mask", "load_fashion_mnist_arrays", "read_idx"),
        "sources",
    ),
    "make_dataset": "batches",
}
_SUBMODULES = ("batches", "folders", "registry", "sources")

__all__ = sorted([*_EXPORTS, *_SUBMODULES])
lazy_package(__name__, _EXPORTS, _SUBMODULES)
