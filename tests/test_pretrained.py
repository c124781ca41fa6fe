"""Shipped trained weights (`weights="fashion_mnist"`) and the packed weights format."""

import hashlib
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf
from helpers import random_images, randomize_statistics, small_bcnn18

import bcnn_keras
from bcnn_keras import pretrained
from bcnn_keras.export.verify import parity

SHIPPED = pretrained.SHIPPED[("BCNN18", "fashion_mnist")]


def test_shipped_weights_give_the_recorded_accuracy_on_the_10k_test_set():
    model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, weights="fashion_mnist")
    assert bcnn_keras.get_phase(model) == 2
    test = bcnn_keras.data.make_dataset("fashion_mnist", "test", batch_size=500)
    labels = np.concatenate([y for _, y in test])
    predictions = model.predict(test, verbose=0).argmax(axis=1)
    assert len(labels) == 10_000
    record = SHIPPED.record
    assert np.mean(predictions == labels) == pytest.approx(record["test_top1"]["keras"], abs=1e-4)
    assert SHIPPED.top1 == pytest.approx(record["test_top1"]["keras"], abs=1e-4)
    assert record["sha256"] == SHIPPED.sha256 and "bcnn_keras.train" in record["training_command"]


def test_shipped_tflite_is_the_export_of_the_shipped_weights():
    flatbuffer = SHIPPED.tflite_path.read_bytes()
    recorded = SHIPPED.record["exported_tflite"]
    assert hashlib.sha256(flatbuffer).hexdigest() == recorded["sha256"]
    images, labels = bcnn_keras.data.load_fashion_mnist_arrays("test")
    model = bcnn_keras.BCNN18(weights="fashion_mnist")
    result = parity(model, flatbuffer, images[:1000].astype("float32"), labels[:1000])
    assert result.top1_agreement >= 0.998
    assert bcnn_keras.data.read_class_names(SHIPPED.tflite_path.parent / "classes.json", 10)[9] == "Ankle boot"


def test_named_weights_fill_in_the_architecture_they_were_trained_with():
    model = bcnn_keras.BCNN18(weights="fashion_mnist")
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 10)
    assert model.get_layer("block1_conv").filters == 16  # width 0.25


@pytest.mark.parametrize(
    "builder, arguments, message",
    [
        (bcnn_keras.BCNN18, dict(width_multiplier=0.5), "were trained with width_multiplier=0.25"),
        (bcnn_keras.BCNN18, dict(input_shape=(32, 32, 3)), "were trained with input_shape=(28, 28, 1)"),
        (
            bcnn_keras.BCNN18,
            dict(classes=5),
            "classes=10, got classes=5; for other classes, build the trunk with include_top=False",
        ),
        (bcnn_keras.BCNN18, dict(include_top=False, input_shape=(28, 28, 3)), "are for images of 1 channel(s)"),
        (bcnn_keras.BCNN18, dict(binary=False), "need binary=True"),
        (bcnn_keras.BCNNA, dict(), "exist only for BCNN18, not for BCNNA"),
    ],
)
def test_named_weights_refuse_another_architecture(builder, arguments, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        builder(weights="fashion_mnist", **arguments)


def test_trunk_with_the_shipped_weights_for_fine_tuning():
    """keras.applications' way: include_top=False gives the trained trunk, at any size."""
    full = bcnn_keras.BCNN18(weights="fashion_mnist")
    trunk = bcnn_keras.BCNN18(weights="fashion_mnist", include_top=False, pooling="avg")
    images = bcnn_keras.data.load_fashion_mnist_arrays("test")[0][:64].astype("float32")
    features = tf.keras.Model(full.input, full.get_layer("avg_pool").output)
    np.testing.assert_array_equal(trunk.predict(images, verbose=0), features.predict(images, verbose=0))
    assert trunk.output_shape == (None, 128) and not any(layer.name.startswith("classifier") for layer in trunk.layers)
    larger = bcnn_keras.BCNN18(weights="fashion_mnist", include_top=False, input_shape=(64, 64, 1))
    assert larger.output_shape == (None, 8, 8, 128)
    np.testing.assert_array_equal(
        larger.get_layer("block16_conv").kernel.numpy(), full.get_layer("block16_conv").kernel.numpy()
    )
    assert full.class_names[9] == "Ankle boot"


def test_unknown_weights_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="'fashion_mnist'"):
        bcnn_keras.BCNN18(weights="cifar10")


def test_packed_weights_round_trip_gives_the_same_outputs_at_a_fraction_of_the_size(tmp_path):
    model = randomize_statistics(small_bcnn18(), seed=3)
    bcnn_keras.set_phase(model, 1)  # real latent weights: only their signs must survive
    images = random_images(16, seed=4)
    bcnn_keras.set_phase(model, 2)
    expected = model.predict(images, verbose=0)
    pretrained.save_binary_weights(model, tmp_path / "packed.npz")
    model.save_weights(tmp_path / "keras.weights.h5")

    loaded = small_bcnn18()
    bcnn_keras.set_phase(loaded, 1)
    pretrained.load_binary_weights(loaded, tmp_path / "packed.npz")
    assert bcnn_keras.get_phase(loaded) == 2
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), expected)
    kernel = loaded.get_layer("block1_conv").kernel.latent_variable.numpy()
    assert set(np.unique(kernel)) == {-1.0, 1.0}
    assert (tmp_path / "packed.npz").stat().st_size * 5 < (tmp_path / "keras.weights.h5").stat().st_size


def test_damaged_or_foreign_weights_files_are_refused(tmp_path):
    damaged = tmp_path / "damaged.npz"
    shutil.copy(SHIPPED.path, damaged)
    with open(damaged, "r+b") as stream:
        stream.seek(1000)
        stream.write(b"\x00\x01\x02")
    model = bcnn_keras.BCNN18(**SHIPPED.architecture)
    with pytest.raises(ValueError, match="does not match its recorded checksum"):
        pretrained.load_binary_weights(model, damaged, sha256=SHIPPED.sha256)

    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{"stem_bn/gamma:0": np.array([{"code": 1}], dtype=object)})
    with pytest.raises(ValueError, match="is not a weights file"):
        pretrained.load_binary_weights(model, pickled)

    other = tmp_path / "other.npz"
    pretrained.save_binary_weights(small_bcnn18(width_multiplier=0.5), other)
    with pytest.raises(ValueError, match="has shape"):
        pretrained.load_binary_weights(model, other)

    # np.unpackbits would pad short sign bits with -1 weights: refused.
    with np.load(SHIPPED.path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    key = next(k for k in arrays if k.startswith("sign_bits:"))
    short = tmp_path / "short.npz"
    np.savez(short, **{**arrays, key: arrays[key][:-1]})
    with pytest.raises(ValueError, match="do not fit its shape"):
        pretrained.load_binary_weights(model, short)

    # A model without RPReLU has no place for the file's RPReLU weights.
    with pytest.raises(ValueError, match="has no place for"):
        pretrained.load_binary_weights(bcnn_keras.BCNN18(**SHIPPED.architecture, nonlinearity=None), SHIPPED.path)


def test_record_is_json_with_the_commands():
    record = SHIPPED.record
    json.dumps(record)
    assert record["architecture"]["width_multiplier"] == SHIPPED.architecture["width_multiplier"]
