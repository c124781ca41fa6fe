import io
import contextlib

import larq as lq
import larq_compute_engine as lce
import numpy as np
import pytest
import tensorflow as tf
from helpers import FLOAT_MATRIX_OPS, random_images, randomize_statistics, small_bcnn18

import bcnn_keras
from bcnn_keras import architecture, export, models


@pytest.mark.parametrize("builder", [bcnn_keras.BCNN18, bcnn_keras.BCNNA])
@pytest.mark.parametrize(
    "input_shape, feature_side",
    [((224, 224, 3), 7), ((32, 32, 3), 4), ((28, 28, 1), 4)],
)
def test_output_shapes(builder, input_shape, feature_side):
    # BCNNA downsamples once more than BCNN18 on small inputs (its 1024-wide last stage).
    if builder is bcnn_keras.BCNNA and input_shape[0] <= 64:
        feature_side = -(-feature_side // 2)
    model = builder(input_shape=input_shape, classes=7, width_multiplier=0.25)
    assert model.output_shape == (None, 7)
    features = builder(input_shape=input_shape, include_top=False, width_multiplier=0.25)
    assert features.output_shape[1:3] == (feature_side, feature_side)
    pooled = builder(input_shape=input_shape, include_top=False, pooling="avg", width_multiplier=0.25)
    assert len(pooled.output_shape) == 2


def test_default_model_is_imagenet_shaped_and_in_phase_2():
    model = bcnn_keras.BCNN18()
    assert model.input_shape == (None, 224, 224, 3)
    assert model.output_shape == (None, 1000)
    assert bcnn_keras.get_phase(model) == 2


def test_small_images_keep_full_resolution_in_the_stem():
    small = small_bcnn18()
    assert small.get_layer("stem_conv").output.shape[1:3] == (28, 28)
    large = bcnn_keras.BCNN18(input_shape=(96, 96, 3), width_multiplier=0.25)
    assert large.get_layer("stem_conv").output.shape[1:3] == (24, 24)


@pytest.mark.parametrize("stem_strides, side", [(1, 28), (2, 14), (4, 7)])
def test_stem_strides_sets_the_input_block_stride(stem_strides, side):
    model = small_bcnn18(stem_strides=stem_strides)
    assert model.get_layer("stem_conv").output.shape[1:3] == (side, side)
    assert model.get_layer("stem_conv").kernel_size == ((3, 3) if stem_strides == 1 else (stem_strides,) * 2)
    with pytest.raises(ValueError, match="stem_strides"):
        small_bcnn18(stem_strides=3)


@pytest.mark.parametrize("channels, planes", [(1, 32), (3, 30), (4, 32)])
def test_default_encoding_fills_one_packed_word_per_pixel(channels, planes):
    model = bcnn_keras.BCNN18(input_shape=(32, 32, channels), classes=10, width_multiplier=0.25)
    assert model.get_layer("stem_encoding").output.shape[-1] == planes
    explicit = bcnn_keras.BCNN18(input_shape=(32, 32, 3), classes=10, width_multiplier=0.25, encoding_levels=32)
    assert explicit.get_layer("stem_encoding").output.shape[-1] == 96


def test_input_tensor_is_used_as_the_input():
    image = tf.keras.Input((32, 32, 3))
    model = bcnn_keras.BCNN18(input_tensor=image, classes=10, width_multiplier=0.25)
    assert model.inputs[0] is image


@pytest.mark.parametrize("extension", [".keras", ".h5"])
@pytest.mark.parametrize("phase", [1, 2])
def test_save_and_load_round_trip_keeps_outputs_and_phase(tmp_path, extension, phase):
    model = randomize_statistics(small_bcnn18(input_encoding="learned"))
    bcnn_keras.set_phase(model, phase)
    images = random_images(8)
    path = str(tmp_path / f"model{extension}")
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    assert bcnn_keras.get_phase(loaded) == phase
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), model.predict(images, verbose=0))


def test_weights_file_and_checkpoint_restore_the_phase(tmp_path):
    model = randomize_statistics(small_bcnn18())
    bcnn_keras.set_phase(model, 1)
    model.save_weights(str(tmp_path / "weights.h5"))
    checkpoint = tf.train.Checkpoint(model=model)
    checkpoint_path = checkpoint.write(str(tmp_path / "ckpt"))

    from_h5 = small_bcnn18(weights=str(tmp_path / "weights.h5"))
    assert bcnn_keras.get_phase(from_h5) == 1
    fresh = small_bcnn18()
    tf.train.Checkpoint(model=fresh).read(checkpoint_path).assert_consumed()
    assert bcnn_keras.get_phase(fresh) == 1


def test_float_twin_has_the_same_architecture_with_real_weights():
    binary = small_bcnn18()
    twin = small_bcnn18(binary=False)
    assert [type(layer) for layer in twin.layers] == [type(layer) for layer in binary.layers]
    assert [w.shape for w in twin.trainable_weights] == [w.shape for w in binary.trainable_weights]
    assert twin.name == "bcnn18_float"
    assert not any(isinstance(m, bcnn_keras.PhasedSign) for m in twin.submodules)


@pytest.mark.parametrize("builder", [bcnn_keras.BCNN18, bcnn_keras.BCNNA])
def test_summary_shows_every_matrix_multiply_as_1_bit(builder):
    model = builder(input_shape=(32, 32, 3), classes=10, width_multiplier=0.25)
    profile = lq.models.ModelProfile(model)
    conv_profiles = [p for p in profile.layer_profiles if p.op_profiles]
    assert len(conv_profiles) == sum(isinstance(layer, bcnn_keras.BinaryConv2D) for layer in model.layers)
    for layer_profile in conv_profiles:
        assert layer_profile.input_precision == 1, layer_profile.name
        assert layer_profile.op_count("mac", 32) == 0, layer_profile.name
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        lq.models.summary(model)
    assert "Ratio of MACs that are binarized  1.0000" in output.getvalue()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_shape=(28, 28)), "input_shape must be a fully defined"),
        (dict(input_shape=(8, 8, 3)), "too small"),
        (dict(input_shape=(None, None, 3)), "input_shape must be a fully defined"),
        (dict(classes=0), "classes must be an integer >= 1"),
        (dict(input_encoding="gray"), "input_encoding must be one of"),
        (dict(weights="imagenet"), "no ImageNet weights"),
        (dict(weights="/no/such/file.h5"), "weights must be None, the name of shipped weights"),
        (dict(pooling="median", include_top=False), "pooling must be"),
        (dict(width_multiplier=0), "width_multiplier must be > 0"),
        (dict(nonlinearity="relu"), "nonlinearity must be"),
        (dict(channel_multiple=16), "channel_multiple must be one of"),
        (dict(input_layer="ternary"), "input_layer must be one of"),
        (dict(classifier="dense"), "classifier must be one of"),
        (dict(shortcut="conv"), "shortcut must be one of"),
        (dict(stem_strides=2, stem_kernel_size=1), "stem_kernel_size must be >="),
    ],
)
def test_bad_arguments_raise_one_clear_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as error:
        bcnn_keras.BCNN18(**{"input_shape": (28, 28, 1), **kwargs})
    assert "\n" not in str(error.value)


@pytest.fixture(scope="module")
def default_bcnn18_flatbuffer():
    return export.convert(bcnn_keras.BCNN18())


def test_default_bcnn18_converts_fully_binary_within_1_6_mb(default_bcnn18_flatbuffer):
    ops = export.op_counts(default_bcnn18_flatbuffer)
    assert not FLOAT_MATRIX_OPS & set(ops), ops
    assert ops["LceBconv2d"] == 18  # stem + 16 block convs + classifier
    assert len(default_bcnn18_flatbuffer) <= 1_600_000


def test_keras_and_lce_agree_given_non_trivial_statistics():
    model = randomize_statistics(small_bcnn18(width_multiplier=0.5, classifier_activation=None), seed=3)
    images = random_images(100, seed=1)
    keras_logits = model.predict(images, verbose=0)
    interpreter = lce.testing.Interpreter(export.convert(model), use_indirect_bgemm=True)
    lce_logits = np.concatenate([interpreter.predict(image[None]) for image in images])
    agreement = np.mean(keras_logits.argmax(1) == lce_logits.argmax(1))
    close = np.all(np.isclose(keras_logits, lce_logits, rtol=1e-3, atol=1e-3), axis=1)
    assert agreement >= 0.97, agreement
    assert close.mean() >= 0.9, close.mean()


def _conv_widths(model):
    return [layer.filters for layer in model.layers if isinstance(layer, bcnn_keras.BinaryConv2D)][:-1]


@pytest.mark.parametrize("channel_multiple, stage_widths", [(8, [24, 48, 96, 192]), (32, [32, 64, 96, 192])])
def test_channel_multiple_rounds_every_width(channel_multiple, stage_widths):
    model = small_bcnn18(width_multiplier=0.375, channel_multiple=channel_multiple)
    widths = _conv_widths(model)
    assert widths[0] == stage_widths[0]  # the input block
    assert [widths[1 + 4 * stage] for stage in range(4)] == stage_widths
    assert architecture.scaled_width(64, 0.1, channel_multiple=32) == 32  # never below one word


def test_saved_model_keeps_its_widths_whatever_the_default_rounding(tmp_path):
    model = small_bcnn18(width_multiplier=0.375, channel_multiple=32)
    model.save(tmp_path / "model.keras")
    loaded = _conv_widths(tf.keras.models.load_model(tmp_path / "model.keras"))
    assert loaded == _conv_widths(model) != _conv_widths(small_bcnn18(width_multiplier=0.375))


def test_stem_kernel_size_overlaps_a_strided_input_block():
    model = small_bcnn18(stem_strides=2, stem_kernel_size=3)
    stem = model.get_layer("stem_conv")
    assert stem.kernel_size == (3, 3) and stem.strides == (2, 2) and stem.output.shape[1:3] == (14, 14)


ABLATIONS = {
    "input_layer": (dict(input_layer="float"), {"stem_conv"}, "CONV_2D"),
    "classifier": (dict(classifier="float"), {"classifier_dense"}, "FULLY_CONNECTED"),
    "shortcut": (
        dict(shortcut="float_conv"),
        {"block5_shortcut_conv", "block9_shortcut_conv", "block13_shortcut_conv"},
        "CONV_2D",
    ),
}


@pytest.mark.parametrize("switch", sorted(ABLATIONS))
def test_each_ablation_switch_makes_exactly_its_layers_float(switch, tmp_path):
    kwargs, float_layers, float_op = ABLATIONS[switch]
    model = randomize_statistics(small_bcnn18(**kwargs))
    assert {finding.layer for finding in export.lint(model)} == float_layers
    with pytest.raises(export.ExportError, match="allow-float"):
        export.export(model, tmp_path / "refused.tflite", latency_runs=0)
    assert not (tmp_path / "refused.tflite").exists()
    report = export.export(model, tmp_path / "allowed.tflite", allow_float=True, latency_runs=0)
    assert {entry["layer"] for entry in report.float_layers} == float_layers
    assert report.ops[float_op] == len(float_layers)
    assert 0.9 < report.binary_mac_fraction < 1.0
    assert report.ops["LceBconv2d"] == 18 - (switch != "shortcut")


def test_larq_zoo_layout_initializes_from_its_float_twin():
    options = dict(input_layer="float", shortcut="float_conv", classifier="float")
    twin = randomize_statistics(small_bcnn18(binary=False, **options))
    model = small_bcnn18(**options)
    models.initialize_from_float_twin(model, twin)
    np.testing.assert_array_equal(model.get_layer("stem_conv").kernel, twin.get_layer("stem_conv").kernel)
    np.testing.assert_array_equal(model.get_layer("classifier_dense").kernel, twin.get_layer("classifier_dense").kernel)
    assert bcnn_keras.get_phase(model) == 2


@pytest.mark.parametrize("name", sorted(architecture.PRESETS))
def test_each_preset_is_a_function_whose_signature_shows_its_declared_defaults(name):
    import inspect

    preset = models.MODELS[name]
    parameters = inspect.signature(preset).parameters
    defaults = architecture.PRESETS[name].defaults
    assert {knob: parameters[knob].default for knob in architecture.KNOBS} == defaults.to_dict()
    assert "width_multiplier:" in preset.__doc__ and list(parameters)[-1] == "name"
    with pytest.raises(TypeError, match=f"^{name}\\(\\) got an unexpected keyword argument 'width'$"):
        preset(width=0.5)


def test_stem_defaults_follow_the_image_size():
    bcnn18, bcnn8 = architecture.PRESETS["BCNN18"], architecture.PRESETS["BCNN8"]
    default = architecture.Architecture()
    assert architecture.resolve_stem(default, bcnn18, (28, 28, 1)).strides == 1
    assert architecture.resolve_stem(default, bcnn18, (96, 96, 3)) == (4, 2, 2, 2)
    assert architecture.resolve_stem(default.replace(stem_kernel_size=4), bcnn18, (96, 96, 3)) == (4, 1, 4, 4)
    assert architecture.resolve_stem(bcnn8.defaults, bcnn8, (28, 28, 1)) == (2, 1, 2, 3)
    with pytest.raises(ValueError, match="must divide the stem stride 1"):
        architecture.resolve_stem(default.replace(stem_pool_size=2), bcnn18, (28, 28, 1))
