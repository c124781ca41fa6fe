import glob
import gzip
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from helpers import write_image_folder

from bcnn_keras import data


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as stream:
        stream.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def idx_dir(tmp_path):
    """A Fashion-MNIST-shaped dataset in IDX files: 96 train and 40 test images."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 96), ("test", 40)):
        image_file, label_file = data.sources._IDX_FILES[split]
        _write_idx(tmp_path / image_file, rng.integers(0, 256, (count, 28, 28)))
        _write_idx(tmp_path / label_file, rng.integers(0, 10, count))
    return tmp_path


def _batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def test_idx_reader_round_trips(idx_dir):
    images, labels = data.load_fashion_mnist_arrays("test", data_dir=str(idx_dir))
    assert images.shape == (40, 28, 28, 1) and images.dtype == np.uint8
    assert labels.shape == (40,) and labels.dtype == np.int64
    with gzip.open(idx_dir / data.sources._IDX_FILES["test"][0]) as stream:
        raw = np.frombuffer(stream.read(), np.uint8, offset=16)
    np.testing.assert_array_equal(images.ravel(), raw)


def test_truncated_idx_file_is_refused(tmp_path):
    path = tmp_path / "broken-idx3-ubyte.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + b"\0" * 100)
    with pytest.raises(ValueError, match="does not match its header"):
        data.read_idx(str(path))


def test_pipeline_shapes_dtypes_and_pixel_range(idx_dir):
    train = data.make_dataset("fashion_mnist", "train", 32, data_dir=str(idx_dir))
    batches = _batches(train)
    assert len(batches) == 3  # drop_remainder while training
    images, labels = batches[0]
    assert images.shape == (32, 28, 28, 1) and images.dtype == np.float32
    assert labels.shape == (32,) and labels.dtype == np.int64
    assert 0.0 <= images.min() and images.max() <= 255.0
    test = _batches(data.make_dataset("fashion_mnist", "test", 32, data_dir=str(idx_dir)))
    assert [len(y) for _, y in test] == [32, 8]  # evaluation keeps every example, in order


def test_evaluation_pipeline_is_the_data_itself(idx_dir):
    images, labels = data.load_fashion_mnist_arrays("test", data_dir=str(idx_dir))
    batches = _batches(data.make_dataset("fashion_mnist", "test", 64, data_dir=str(idx_dir)))
    np.testing.assert_array_equal(batches[0][0], images.astype(np.float32))
    np.testing.assert_array_equal(batches[0][1], labels)


def test_training_pipeline_is_seeded_and_deterministic(idx_dir):
    def epochs(seed, count=2):
        dataset = data.make_dataset("fashion_mnist", "train", 32, seed=seed, data_dir=str(idx_dir))
        return [_batches(dataset) for _ in range(count)]

    first, again, other = epochs(1), epochs(1), epochs(2)
    for epoch_a, epoch_b in zip(first, again):
        for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(first[0][0][0], other[0][0][0])
    assert not np.array_equal(first[0][0][0], first[1][0][0])  # each epoch reshuffles and re-augments


def test_augmentation_crops_and_flips_but_keeps_the_label_set(idx_dir):
    images, labels = data.load_fashion_mnist_arrays("train", data_dir=str(idx_dir))
    batches = _batches(data.make_dataset("fashion_mnist", "train", 96, data_dir=str(idx_dir)))
    augmented, augmented_labels = batches[0]
    assert sorted(augmented_labels) == sorted(labels)
    originals = {tuple(image.ravel()) for image in images.astype(np.float32)}
    changed = sum(tuple(image.ravel()) not in originals for image in augmented)
    assert changed > len(augmented) // 2


def test_training_without_augmentation_shuffles_the_images_themselves(idx_dir):
    images, labels = data.load_fashion_mnist_arrays("train", data_dir=str(idx_dir))
    batches = _batches(data.make_dataset("fashion_mnist", "train", 96, augment=False, data_dir=str(idx_dir)))
    shuffled, shuffled_labels = batches[0]
    pairs = {(tuple(image.ravel()), label) for image, label in zip(images.astype(np.float32), labels)}
    assert {(tuple(image.ravel()), label) for image, label in zip(shuffled, shuffled_labels)} == pairs
    assert not np.array_equal(shuffled_labels, labels)


def test_missing_fashion_mnist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data.sources, "FASHION_MNIST_DIR", str(tmp_path / "not-installed"))
    # Then tensorflow-datasets is tried, and it cannot download here.
    with pytest.raises(data.DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        data.make_dataset("fashion_mnist", "train", 32, data_dir=str(tmp_path / "tfds"))


def test_missing_imagenet_names_the_manual_dir(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="ILSVRC2012_img_train.tar") as error:
        data.make_dataset("imagenet2012", "train", 32, data_dir=str(tmp_path), manual_dir=str(tmp_path / "manual"))
    assert str(tmp_path / "manual") in str(error.value) and "\n" not in str(error.value)


def test_unknown_dataset_is_refused():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        data.make_dataset("mnist", "train", 32)


def test_imagenet_eval_preprocessing_center_crops_to_224():
    image = tf.random.uniform((300, 400, 3), 0, 255)
    assert data.batches._center_crop(image).shape == (224, 224, 3)
    assert data.batches._random_resized_crop(image, tf.constant([1, 2])).shape == (224, 224, 3)


def test_flip_augmentation_only_mirrors_images(idx_dir):
    images, labels = data.load_fashion_mnist_arrays("train", data_dir=str(idx_dir))
    batches = _batches(data.make_dataset("fashion_mnist", "train", 96, augment="flip", data_dir=str(idx_dir)))
    by_image = {tuple(image.ravel()): label for image, label in zip(images.astype(np.float32), labels)}
    flipped = 0
    for image, label in zip(*batches[0]):
        if tuple(image.ravel()) not in by_image:
            image = image[:, ::-1]
            flipped += 1
        assert by_image[tuple(image.ravel())] == label
    assert 0 < flipped < len(images)


def test_teacher_outputs_are_computed_once_and_travel_with_their_images(idx_dir):
    class CountingFlatten(tf.keras.layers.Flatten):
        """Counts the batches it runs on, in graph mode too."""

        def build(self, input_shape):
            self.runs = self.add_weight("runs", (), dtype=tf.int64, initializer="zeros", trainable=False)

        def call(self, images):
            self.runs.assign_add(1)
            return super().call(images)

    counter = CountingFlatten()
    teacher = tf.keras.Sequential([counter, tf.keras.layers.Dense(10, activation="softmax")])
    teacher.build((None, 28, 28, 1))
    dataset = data.make_dataset("fashion_mnist", "train", 32, augment="none", data_dir=str(idx_dir), teacher=teacher)
    plain = data.make_dataset("fashion_mnist", "train", 32, augment="none", data_dir=str(idx_dir))
    for _ in range(2):  # two epochs, each in the same order as without the teacher
        batches, plain_batches = list(dataset), list(plain)
    assert len(batches) == 3 and int(counter.runs.numpy()) == 1  # one predict batch, none per epoch
    for (images, (labels, outputs)), (plain_images, plain_labels) in zip(batches, plain_batches):
        # The same shuffle as without the teacher, and each output is the teacher's on its image.
        np.testing.assert_array_equal(images, plain_images)
        np.testing.assert_array_equal(labels, plain_labels)
        np.testing.assert_allclose(outputs, teacher(images), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="un-augmented"):
        data.make_dataset("fashion_mnist", "train", 32, augment="flip", data_dir=str(idx_dir), teacher=teacher)


def test_unknown_augmentation_is_refused():
    with pytest.raises(ValueError, match="augment must be one of"):
        data.make_dataset("fashion_mnist", "train", 32, augment="mixup")


# Image folders: `folder:PATH` datasets.


@pytest.fixture
def png_folder(tmp_path):
    """3 classes x 12 RGB PNG images of 20x20, one simple pattern per class."""
    return write_image_folder(str(tmp_path / "png"))


def _folder(path):
    return data.FOLDER_PREFIX + str(path)


def test_image_folder_shapes_labels_and_classes(png_folder):
    spec = data.dataset_spec(_folder(png_folder))
    assert spec.image_shape == (20, 20, 3) and spec.classes == 3
    assert spec.class_names == ("checkers", "horizontal", "vertical")  # sorted folder names
    train = _batches(data.make_dataset(_folder(png_folder), "train", 10, augment="none"))
    test = _batches(data.make_dataset(_folder(png_folder), "test", 10))
    assert [len(y) for _, y in train] == [10, 10, 10] and [len(y) for _, y in test] == [6]
    images, labels = test[0]
    assert images.shape == (6, 20, 20, 3) and images.dtype == np.float32 and labels.dtype == np.int64
    assert 0 <= images.min() and images.max() <= 255 and images.max() > 1  # raw pixels, not scaled
    assert sorted(labels) == [0, 0, 1, 1, 2, 2]  # 20 % of each class, at least one
    first = next(path for path, label in data.scan_image_folder(png_folder).files["test"])
    np.testing.assert_array_equal(images[0], data.read_image(first))


def test_image_folder_split_is_seeded_disjoint_and_complete(png_folder):
    def split(**kwargs):
        files = data.scan_image_folder(png_folder, **kwargs).files
        return {name: sorted(path for path, _ in pairs) for name, pairs in files.items()}

    first, again, other = split(), split(), split(split_seed=1)
    assert first == again and first["test"] != other["test"]
    assert not set(first["train"]) & set(first["test"]) and len(first["train"] + first["test"]) == 36
    assert len(split(validation_split=0.5)["test"]) == 18


def test_grey_jpeg_folder_is_resized_to_the_image_size(tmp_path):
    folder = write_image_folder(str(tmp_path / "grey"), mode="L", suffix=".jpg")
    assert data.dataset_spec(_folder(folder), image_size=24).image_shape == (24, 24, 1)
    images, labels = _batches(data.make_dataset(_folder(folder), "test", 32, image_size=24))[0]
    assert images.shape == (6, 24, 24, 1) and 0 <= images.min() and images.max() <= 255


def test_image_folder_with_its_own_train_and_test_splits(tmp_path):
    write_image_folder(str(tmp_path / "train"), per_class=4)
    write_image_folder(str(tmp_path / "test"), per_class=2)
    folder = data.scan_image_folder(str(tmp_path))
    assert len(folder.files["train"]) == 12 and len(folder.files["test"]) == 6
    assert all(os.sep + "test" + os.sep in path for path, _ in folder.files["test"])
    with pytest.raises(data.ImageFolderError, match="has its own train/ and test/ splits"):
        data.scan_image_folder(str(tmp_path), validation_split=0.3)


def _corrupt_image(root):
    path = os.path.join(root, "vertical", "003.png")
    with open(path, "r+b") as stream:
        stream.truncate(60)  # the header survives, the pixels do not
    return path


def _mixed_channels(root):
    write_image_folder(root, per_class=2, mode="L", patterns=("vertical",))
    return os.path.join(root, "vertical", "000.png")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: shutil.rmtree(root), "image folder {root} does not exist"),
        (lambda root: [shutil.rmtree(os.path.join(root, d)) for d in os.listdir(root)], "image folder {root} is empty"),
        (
            lambda root: [shutil.rmtree(os.path.join(root, d)) for d in ("horizontal", "vertical")],
            "has only one class folder (checkers)",
        ),
        (
            lambda root: [os.remove(p) for p in glob.glob(os.path.join(root, "checkers", "*"))],
            "class folder {root}/checkers holds no .png/.jpg/.jpeg images",
        ),
        (_corrupt_image, "{root}/vertical/003.png: not a readable image"),
        (_mixed_channels, "mixed grey and RGB images: {root}/vertical/000.png is grey, {root}/checkers/000.png is RGB"),
        (
            lambda root: open(os.path.join(root, "checkers", "000.png"), "wb").close(),
            "{root}/checkers/000.png: not a readable image",
        ),
    ],
    ids=["missing", "empty", "one-class", "class-without-images", "corrupt-image", "mixed-channels", "empty-file"],
)
def test_bad_image_folders_give_one_line_naming_the_culprit(png_folder, damage, message):
    damage(png_folder)
    with pytest.raises((data.ImageFolderError, data.DatasetNotFoundError)) as error:
        data.make_dataset(_folder(png_folder), "train", 8)  # a corrupt body fails only when decoded
    assert message.format(root=png_folder) in str(error.value) and "\n" not in str(error.value)


def test_folder_options_are_for_folders_only():
    with pytest.raises(ValueError, match="image_size is for folder:PATH datasets only"):
        data.make_dataset("fashion_mnist", "train", 32, image_size=32)
    with pytest.raises(ValueError, match="validation_split is for folder:PATH datasets only"):
        data.make_dataset("fashion_mnist", "train", 32, validation_split=0.1)


def test_class_names_round_trip_and_malformed_files_are_refused(tmp_path):
    path = str(tmp_path / "classes.json")
    data.write_class_names(path, data.dataset_spec("fashion_mnist").class_names)
    assert data.read_class_names(path, 10)[9] == "Ankle boot"
    with pytest.raises(ValueError, match="10 class names, but the model has 3 outputs"):
        data.read_class_names(path, 3)
    for text in ('{"a": 1}', "[1, 2]", "not json"):
        (tmp_path / "classes.json").write_text(text)
        with pytest.raises(ValueError, match="classes.json: "):
            data.read_class_names(path)
