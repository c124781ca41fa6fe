"""`make_dataset`: the seeded, deterministic `tf.data` pipeline of a split, with augmentation."""

import tensorflow as tf

from bcnn_keras.data.folders import dataset_spec, scan_image_folder
from bcnn_keras.data.registry import AUGMENTATIONS, FOLDER_PREFIX, VALIDATION_SPLIT, is_folder
from bcnn_keras.data.sources import _folder_source, _split_source


def _pad_and_crop(image, seed, padding):
    height, width, channels = image.shape
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    return tf.image.stateless_random_crop(padded, (height, width, channels), seed)


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
