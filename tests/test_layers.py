import subprocess
import sys

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from helpers import FLOAT_MATRIX_OPS, random_images, randomize_statistics, small_bcnn18

import bcnn_keras
from bcnn_keras import export, layers


@pytest.mark.parametrize(
    "layer",
    [
        layers.PhasedSign(phase=1),
        layers.HardTanh(),
        layers.BinaryConv2D(16, 3, strides=2),
        layers.BinaryConv2D(16, 1, binary=False),
        layers.LearnedThreshold(),
        layers.RPReLU(slope_initializer=0.1),
        layers.ThermometerEncoding(levels=8, pixel_max=1.0, trainable_thresholds=True),
        layers.ChannelDuplication(24),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_get_config_round_trip(layer):
    config = tf.keras.layers.serialize(layer)
    clone = tf.keras.layers.deserialize(config)
    assert type(clone) is type(layer)
    assert tf.keras.layers.serialize(clone) == config


def test_binary_conv_defaults_are_what_lce_binarizes():
    conv = layers.BinaryConv2D(8)
    assert isinstance(conv.input_quantizer, lq.quantizers.SteSign)
    assert isinstance(conv.kernel_quantizer, layers.PhasedSign)
    assert conv.padding == "same" and conv.pad_values == 1.0 and not conv.use_bias
    float_twin = layers.BinaryConv2D(8, binary=False)
    assert isinstance(float_twin.input_quantizer, layers.HardTanh)
    assert float_twin.kernel_quantizer is None


def test_phased_sign_is_identity_in_phase_1_and_sign_in_phase_2():
    kernel = tf.constant([-0.7, -0.1, 0.2, 0.9])
    quantizer = layers.PhasedSign(phase=1)
    np.testing.assert_array_equal(quantizer(kernel), kernel)
    quantizer.phase = 2
    np.testing.assert_array_equal(quantizer(kernel), [-1, -1, 1, 1])
    with pytest.raises(ValueError, match="phase must be 1"):
        quantizer.phase = 3


def test_thermometer_planes_count_the_levels_below_each_pixel():
    encoding = layers.ThermometerEncoding(levels=4)
    pixels = tf.constant([0.0, 70.0, 130.0, 255.0], shape=(4, 1, 1, 1))
    planes = tf.sign(encoding(pixels)).numpy().reshape(4, 4)
    np.testing.assert_array_equal((planes > 0).sum(axis=1), [0, 1, 2, 4])
    # Planes are +-1 and monotone: a thermometer code.
    assert set(np.unique(planes)) == {-1.0, 1.0}
    assert (np.diff(planes, axis=1) <= 0).all()


def test_thermometer_orders_channels_level_major():
    encoding = layers.ThermometerEncoding(levels=2)
    rgb = tf.constant([[[[0.0, 255.0, 0.0]]]])
    planes = tf.sign(encoding(rgb)).numpy().ravel()
    np.testing.assert_array_equal(planes, [-1, 1, -1, -1, 1, -1])


def test_channel_duplication_handles_non_multiples():
    x = tf.constant([[[[1.0, 2.0, 3.0]]]])
    np.testing.assert_array_equal(layers.ChannelDuplication(5)(x).numpy().ravel(), [1, 2, 3, 1, 2])


def test_rprelu_matches_its_formula():
    layer = layers.RPReLU()
    x = tf.constant([[-2.0, 0.5, 3.0]])
    layer.build(x.shape)
    layer.set_weights([np.array([1.0, 0.0, -1.0]), np.array([0.5, 0.25, 0.1]), np.array([0.1, 0.2, 0.3])])
    shifted = np.array([-3.0, 0.5, 4.0])
    expected = np.where(shifted >= 0, shifted, shifted * [0.5, 0.25, 0.1]) + [0.1, 0.2, 0.3]
    np.testing.assert_allclose(layer(x).numpy().ravel(), expected, rtol=1e-6)


def test_rprelu_converts_to_one_prelu_op():
    inputs = tf.keras.Input((8, 8, 32))
    layer = layers.RPReLU()
    model = tf.keras.Model(inputs, layer(inputs))
    rng = np.random.default_rng(0)
    layer.set_weights([rng.normal(size=32), rng.uniform(0.1, 0.5, 32), rng.normal(size=32)])
    ops = export.op_counts(export.convert(model))
    assert ops["PRELU"] == 1 and not {"RELU", "MINIMUM", "MAXIMUM", "NEG"} & set(ops), ops


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh", "trained-statistics"])
@pytest.mark.parametrize("phase", [1, 2])
def test_straight_through_gradient_reaches_every_trainable_variable(phase, fresh):
    model = small_bcnn18(input_encoding="learned")
    if not fresh:
        randomize_statistics(model)
    bcnn_keras.set_phase(model, phase)
    images = random_images(16)
    labels = np.arange(16) % 10
    with tf.GradientTape() as tape:
        loss = tf.keras.losses.sparse_categorical_crossentropy(labels, model(images, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    dead = [v.name for v, g in zip(model.trainable_variables, gradients) if g is None or not np.any(g)]
    assert not dead, f"no gradient reaches {dead}"
    assert any("stem_encoding/thresholds" in v.name for v in model.trainable_variables)


def _single_block_model(build_block, input_shape):
    inputs = tf.keras.Input(input_shape)
    return tf.keras.Model(inputs, build_block(inputs))


@pytest.mark.parametrize(
    "name, build_block, input_shape",
    [
        ("input 3x3", lambda x: layers.binary_input_block(x, 32, name="stem"), (16, 16, 1)),
        (
            "input patchify",
            lambda x: layers.binary_input_block(x, 32, kernel_size=4, strides=4, name="stem"),
            (16, 16, 3),
        ),
        ("bcnn 3x3", lambda x: layers.bcnn_block(x, 32, name="b"), (8, 8, 32)),
        ("bcnn downsampling", lambda x: layers.bcnn_block(x, 64, strides=2, name="b"), (8, 8, 32)),
        ("bcnn 1x1", lambda x: layers.bcnn_block(x, 64, kernel_size=1, name="b"), (8, 8, 32)),
        ("classifier", lambda x: layers.binary_classifier(x, 10), (64,)),
    ],
)
def test_each_block_type_converts_to_one_bconv(name, build_block, input_shape):
    model = randomize_statistics(_single_block_model(build_block, input_shape))
    ops = export.op_counts(export.convert(model))
    assert ops["LceBconv2d"] == 1, ops
    assert not FLOAT_MATRIX_OPS & set(ops), ops


def test_phase_is_required_to_be_known():
    float_twin = small_bcnn18(binary=False)
    with pytest.raises(ValueError, match="no phased binary kernels"):
        bcnn_keras.get_phase(float_twin)
    with pytest.raises(ValueError, match="no phased binary kernels"):
        bcnn_keras.set_phase(float_twin, 1)


def test_set_phase_changes_what_the_model_computes():
    model = randomize_statistics(small_bcnn18(classifier_activation=None))
    images = random_images(4)
    binary_outputs = model(images).numpy()
    bcnn_keras.set_phase(model, 1)
    assert bcnn_keras.get_phase(model) == 1
    assert not np.allclose(model(images).numpy(), binary_outputs)
    bcnn_keras.set_phase(model, 2)
    np.testing.assert_array_equal(model(images).numpy(), binary_outputs)


def test_import_after_keras3_fails_with_one_line():
    code = "import tensorflow as tf; tf.keras.layers; import bcnn_keras"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: bcnn_keras needs Keras 2")
    assert "TF_USE_LEGACY_KERAS=1" in last_line


def test_import_refuses_an_explicit_keras3_choice_without_overriding_it():
    result = subprocess.run(
        [sys.executable, "-c", "import bcnn_keras"],
        capture_output=True,
        text=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin", "TF_USE_LEGACY_KERAS": "0"},
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: bcnn_keras needs Keras 2") and "TF_USE_LEGACY_KERAS=0" in last_line
    accepted = subprocess.run(
        [sys.executable, "-c", "import bcnn_keras, os; print(os.environ['TF_USE_LEGACY_KERAS'])"],
        capture_output=True,
        text=True,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin", "TF_USE_LEGACY_KERAS": "true"},
    )
    assert accepted.returncode == 0 and accepted.stdout.strip() == "true"


@pytest.mark.parametrize("setting, enabled", [(None, True), ("0", False)])
def test_import_turns_onednn_on_unless_opted_out(setting, enabled):
    code = (
        "import bcnn_keras; from tensorflow.python.util import _pywrap_util_port; "
        "print(_pywrap_util_port.IsMklEnabled())"
    )
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(enabled)
