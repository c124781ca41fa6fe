"""Shared test helpers: small models, images, and non-trivial BatchNormalization statistics."""

import numpy as np
import tensorflow as tf

import bcnn_keras

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
