"""Shared test helpers: small models, images, and non-trivial BatchNormalization statistics."""

import os

import numpy as np
import tensorflow as tf

import bcnn_keras

# The tests' own list of TFLite's float matrix ops, written from TFLite's op set and kept apart
# from `bcnn_keras.export.FLOAT_MATRIX_OPS` on purpose: a test that imported the exporter's list
# would pass with the exporter when an op went missing from both.
FLOAT_MATRIX_OPS = {"CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV"}


def small_bcnn18(**kwargs):
    """A BCNN18 small enough to build, train and convert in seconds."""
    config = dict(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
    return bcnn_keras.BCNN18(**{**config, **kwargs})


def random_images(count, shape=(28, 28, 1), seed=0):
    """Raw pixels in 0..255, as float32."""
    return np.random.default_rng(seed).uniform(0, 255, (count, *shape)).astype("float32")


def randomize_statistics(model, seed=0):
    """Gives every BatchNormalization and learned threshold non-trivial values.

    Freshly initialised BN (mean 0, variance 1) leaves binary pre-activations on exact integers,
    where sign ties make Keras and LCE disagree for reasons that say nothing about the model.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape) * rng.choice([-1, 1], gamma.shape),
                    rng.normal(0, 1, beta.shape),
                    rng.normal(0, 3, mean.shape),
                    rng.uniform(2, 20, variance.shape),
                ]
            )
        elif isinstance(layer, bcnn_keras.LearnedThreshold):
            layer.set_weights([rng.normal(0, 0.3, w.shape) for w in layer.get_weights()])
    return model


CLASS_PATTERNS = ("horizontal", "vertical", "checkers")


def pattern_image(pattern, size=20, channels=3, seed=0):
    """A uint8 image of a simple, learnable pattern with a random phase and noise."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[:size, :size] + rng.integers(0, 4, 2)[:, None, None]
    stripes = {"horizontal": rows // 2 % 2, "vertical": columns // 2 % 2, "checkers": (rows // 3 + columns // 3) % 2}
    image = 40 + 170 * stripes[pattern][..., None] + rng.integers(0, 40, (size, size, channels))
    return image.astype(np.uint8)


def write_image_folder(root, per_class=12, size=20, mode="RGB", suffix=".png", patterns=CLASS_PATTERNS):
    """Writes `root/<pattern>/<i><suffix>`: one class folder per pattern; returns `root`."""
    from PIL import Image

    channels = 1 if mode == "L" else 3
    for label, pattern in enumerate(patterns):
        os.makedirs(os.path.join(root, pattern), exist_ok=True)
        for index in range(per_class):
            pixels = pattern_image(pattern, size, channels, seed=100 * label + index)
            Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(
                os.path.join(root, pattern, f"{index:03d}{suffix}")
            )
    return root
