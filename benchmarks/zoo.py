"""The models bcnn_keras is measured against: float networks (converted to int8 by TFLite's own
converter, or kept float32) and larq-zoo's binary networks, plus how an int8 file is made.

The 28x28 float CNNs take pixels scaled to 0..1 (`PIXEL_SCALE`); their int8 files then take
raw uint8 pixels, the input quantization being exactly 1/255 per step.
"""

import sys

import numpy as np
import tensorflow as tf

PIXEL_SCALE = 1 / 255
layers = tf.keras.layers


def _conv_bn_relu(x, filters, kernel_size=3, strides=1):
    x = layers.Conv2D(filters, kernel_size, strides, padding="same", use_bias=False)(x)
    return layers.ReLU()(layers.BatchNormalization()(x))


def cnn_2conv_2dense(input_shape=(28, 28, 1), classes=10):
    """The classic Keras MNIST CNN of the Fashion-MNIST benchmark table: 2 convs, 2 dense (431K parameters)."""
    image = tf.keras.Input(input_shape)
    x = layers.Conv2D(32, 3, activation="relu")(image)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.25)(layers.Flatten()(x))
    x = layers.Dropout(0.5)(layers.Dense(256, activation="relu")(x))
    return tf.keras.Model(image, layers.Dense(classes)(x), name="cnn_2conv_2dense")


def cnn_3conv_gap(input_shape=(28, 28, 1), classes=10):
    """A conv net under 100K parameters: 3 convs (32, 64, 128) with batch norm, global pooling (95K)."""
    image = tf.keras.Input(input_shape)
    x = layers.MaxPooling2D()(_conv_bn_relu(image, 32))
    x = layers.MaxPooling2D()(_conv_bn_relu(x, 64))
    x = layers.GlobalAveragePooling2D()(_conv_bn_relu(x, 128))
    return tf.keras.Model(image, layers.Dense(classes)(x), name="cnn_3conv_gap")


def cnn_6conv_gap(input_shape=(28, 28, 1), classes=10):
    """A VGG-style net: 6 convs in pairs (32, 64, 128) with batch norm, global pooling (289K)."""
    image = tf.keras.Input(input_shape)
    x = image
    for index, filters in enumerate((32, 64, 128)):
        x = _conv_bn_relu(_conv_bn_relu(x, filters), filters)
        x = layers.MaxPooling2D()(x) if index < 2 else layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(image, layers.Dense(classes)(x), name="cnn_6conv_gap")


def mobilenet_style(input_shape=(28, 28, 1), classes=10):
    """A small MobileNet-V1-style net: a 3x3 conv, then depthwise-separable blocks (38K parameters)."""
    image = tf.keras.Input(input_shape)
    x = _conv_bn_relu(image, 16)
    for filters, strides in ((32, 1), (64, 2), (64, 1), (128, 2), (128, 1)):
        x = layers.DepthwiseConv2D(3, strides, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = _conv_bn_relu(x, filters, kernel_size=1)
    x = layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(image, layers.Dense(classes)(x), name="mobilenet_style")


SMALL_CNNS = {
    "mobilenet_style": (mobilenet_style, "MobileNet-style, depthwise separable"),
    "cnn_3conv_gap": (cnn_3conv_gap, "3 conv + global pool (< 100K parameters)"),
    "cnn_6conv_gap": (cnn_6conv_gap, "6 conv (VGG-style) + global pool"),
    "cnn_2conv_2dense": (cnn_2conv_2dense, "2 conv + 2 dense (Keras MNIST CNN)"),
}


def int8_flatbuffer(model, representative_images):
    """`model` through TFLite's converter with full-integer post-training quantization: int8
    weights and activations, calibrated on `representative_images` (as the model takes them),
    uint8 input, float32 output."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([image[None].astype(np.float32)] for image in representative_images)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    return converter.convert()


def float_resnet18(input_shape=(224, 224, 3), classes=1000):
    """The float32 ResNet-18 of He et al. (7x7/2 stem, max-pool, basic blocks, 1x1 projections)."""

    def conv_bn(x, filters, kernel_size, strides=1, relu=True):
        x = layers.Conv2D(filters, kernel_size, strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x) if relu else x

    image = tf.keras.Input(input_shape)
    x = conv_bn(image, 64, 7, 2)
    x = layers.MaxPooling2D(3, 2, padding="same")(x)
    for stage, filters in enumerate((64, 128, 256, 512)):
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            shortcut = conv_bn(x, filters, 1, strides, relu=False) if strides > 1 else x
            y = conv_bn(x, filters, 3, strides)
            y = conv_bn(y, filters, 3, relu=False)
            x = layers.ReLU()(layers.Add()([shortcut, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(image, layers.Dense(classes, activation="softmax")(x), name="resnet18_float")


def larq_zoo(name, input_shape=(224, 224, 3), classes=1000):
    """A larq-zoo model with random weights (the `bench` extra)."""
    try:
        import larq_zoo
    except ImportError:
        sys.exit("error: larq-zoo is missing: pip install -e '.[bench]' (or run `make bench`)")
    family = larq_zoo.sota if hasattr(larq_zoo.sota, name) else larq_zoo.literature
    return getattr(family, name)(weights=None, input_shape=input_shape, num_classes=classes)
