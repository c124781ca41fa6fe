"""Tests of the exporter (`bcnn_keras.export` and `export/to_tflite.py`), with real conversions.

The CLI runs as a subprocess. Its runs are started together in one module fixture, two at a
time, because each one imports TensorFlow (about 5 s) before doing anything.
"""

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import larq as lq
import numpy as np
import pytest
import tensorflow as tf
from helpers import FLOAT_MATRIX_OPS, random_images, randomize_statistics, small_bcnn18, write_image_folder
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bcnn_keras
from bcnn_keras import export
from bcnn_keras.export.metadata import class_names_in

CLI = Path(__file__).resolve().parents[1] / "export" / "to_tflite.py"
CLASSES = 10


def run_cli(*args):
    return subprocess.run(
        [sys.executable, str(CLI), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def binary_conv(filters, kernel_size=3, **kwargs):
    """A plain larq binary conv as LCE wants it: sign x sign, +1 padding."""
    options = dict(
        padding="same",
        pad_values=1.0,
        input_quantizer="ste_sign",
        kernel_quantizer="ste_sign",
        kernel_constraint="weight_clip",
        use_bias=False,
    )
    return lq.layers.QuantConv2D(filters, kernel_size, **{**options, **kwargs})


def larq_model(stem="float", head="dense", input_shape=(28, 28, 1), input_quantizer="ste_sign"):
    """A plain larq model (no bcnn_keras layers): stem conv, binary body, head."""
    image = tf.keras.Input(input_shape, name="image")
    if stem == "float":
        x = tf.keras.layers.Conv2D(32, 3, padding="same", name="float_stem")(image)
    else:
        x = binary_conv(32, name="binary_stem")(image)
    x = tf.keras.layers.BatchNormalization()(x)
    x = binary_conv(64, input_quantizer=input_quantizer, name="body_conv")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.MaxPool2D(2)(x)
    x = binary_conv(64, name="body_conv2")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    if head == "dense":
        x = tf.keras.layers.Dense(CLASSES, name="float_head")(x)
    else:
        x = lq.layers.QuantDense(
            CLASSES,
            input_quantizer="ste_sign",
            kernel_quantizer="ste_sign",
            kernel_constraint="weight_clip",
            name="head",
        )(x)
        x = tf.keras.layers.BatchNormalization()(x)
    return tf.keras.Model(image, x, name=f"larq_{stem}_{head}")


def feature_inputs(count, shape, seed=0):
    """Real-valued activations for models that start on features rather than pixels."""
    return np.random.default_rng(seed).normal(0, 2, (count, *shape)).astype("float32")


def files_in(directory):
    return sorted(path.name for path in Path(directory).iterdir())


# ---------------------------------------------------------------------------------------------
# CLI runs, started together


def writable(directory):
    try:
        handle, path = tempfile.mkstemp(dir=directory)
    except OSError:
        return False
    os.close(handle)
    os.remove(path)
    return True


def unwritable_directory(tmp_path):
    directory = tmp_path / "read_only"
    directory.mkdir()
    directory.chmod(0o555)
    # root ignores permissions, but sysfs refuses new files even to root
    return next((d for d in (directory, Path("/sys")) if d.is_dir() and not writable(d)), None)


def saved(model, path):
    model.save(str(path))
    return path


# An earlier export's file (what matters is TFLite's identifier at byte 4) and a user's image.
EARLIER_EXPORT = b"\x1c\x00\x00\x00TFL3 an earlier export"
PNG_BYTES = b"\x89PNG\r\n\x1a\n a user's image"


def cli_cases(tmp):
    """name -> (model path, output path, extra arguments, expected stderr fragment or None for success)."""
    tf.keras.utils.set_random_seed(1)
    good = saved(randomize_statistics(small_bcnn18(classifier_activation=None)), tmp / "small_bcnn.keras")
    float_model = saved(larq_model(stem="float", head="dense"), tmp / "float_stem_head.h5")
    corrupt = tmp / "corrupt.keras"
    corrupt.write_bytes(good.read_bytes()[:20_000])
    corrupt_h5 = tmp / "corrupt.h5"
    corrupt_h5.write_bytes(float_model.read_bytes()[:5_000])
    notes = tmp / "notes.txt"
    notes.write_text("not a model\n")
    ternary = saved(larq_model(stem="binary", head="quant_dense", input_quantizer="ste_tern"), tmp / "ternary.keras")
    nan_model = small_bcnn18()
    kernel = nan_model.get_layer("block3_conv").kernel
    kernel.assign(tf.fill(kernel.shape, float("nan")))
    nan_path = saved(nan_model, tmp / "nan.keras")
    dynamic_input = tf.keras.Input((None, None, 32))
    dynamic = tf.keras.Model(dynamic_input, binary_conv(32)(dynamic_input))
    dynamic_path = saved(dynamic, tmp / "dynamic_savedmodel")
    nan_npz = tmp / "nan.npz"
    np.savez(nan_npz, x=np.full((4, 28, 28, 1), np.nan, "float32"))
    out = tmp / "out"
    out.mkdir()
    unwritable = unwritable_directory(tmp)
    (out / "float.tflite").write_bytes(EARLIER_EXPORT)
    (out / "shirt.png").write_bytes(PNG_BYTES)
    report = ["--report", out / "report.json"]
    cases = {
        # An untrained network may flip a near-threshold sign or two (see the README), so 98 %.
        "good": (
            good,
            out / "good.tflite",
            ["--verify", "fashion_mnist", "--samples", 300, "--parity-threshold", 0.98, *report],
            None,
        ),
        "allow_float": (float_model, out / "allowed.tflite", ["--allow-float", "--report", out / "allowed.json"], None),
        "missing file": (tmp / "nope.keras", out / "missing.tflite", [], "no such file"),
        "non-model file": (notes, out / "notes.tflite", [], "not a model file"),
        "corrupt file": (corrupt, out / "corrupt.tflite", [], "not a valid .keras file"),
        "corrupt h5 file": (corrupt_h5, out / "corrupt_h5.tflite", [], "cannot read the model's configuration"),
        "float conv": (float_model, out / "float.tflite", [], "would run in float"),
        "output is the model": (good, good, [], "is the model being exported: choose another output path"),
        "output is an image": (
            good,
            out / "shirt.png",
            [],
            "exists and is not a TFLite flatbuffer: refused, to keep it",
        ),
        "ternary input": (ternary, out / "ternary.tflite", ["--allow-float"], "ternary input quantizer"),
        "NaN weights": (nan_path, out / "nan.tflite", [], "layer 'block3_conv': weight kernel:0 holds NaN"),
        "missing output directory": (good, tmp / "no_dir" / "model.tflite", [], "does not exist"),
        "dynamic spatial size": (dynamic_path, out / "dynamic.tflite", [], "fixed height, width"),
        "bad option": (good, out / "option.tflite", ["--target", "gpu"], "invalid choice"),
        "NaN verification data": (good, out / "nan_data.tflite", ["--verify", nan_npz], "hold NaN or infinite"),
        "unknown custom objects module": (
            good,
            out / "custom.tflite",
            ["--custom-objects", "no_such_module_here"],
            "cannot import custom objects",
        ),
    }
    if unwritable:
        cases["unwritable output directory"] = (good, unwritable / "model.tflite", [], "cannot write")
    return cases


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory):
    cases = cli_cases(tmp_path_factory.mktemp("cli"))

    def run(case):
        model, output, extra, _ = case
        return run_cli(model, "-o", output, *extra)

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        processes = dict(zip(cases, pool.map(run, cases.values())))
    return {name: (processes[name], *cases[name][1:]) for name in cases}


def test_cli_help():
    process = run_cli("--help")
    assert process.returncode == 0
    assert "usage: to_tflite.py" in process.stdout
    assert "--allow-float" in process.stdout and "--verify" in process.stdout


def test_cli_defaults_are_the_library_defaults():
    import inspect

    from bcnn_keras.export import cli

    args = cli.parse_args(["model.keras", "-o", "model.tflite"])
    parameters = inspect.signature(export.export).parameters
    for name in ("target", "parity_threshold", "samples", "latency_runs"):
        assert getattr(args, name) == parameters[name].default, name


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "non-model file",
        "corrupt file",
        "corrupt h5 file",
        "float conv",
        "output is the model",
        "output is an image",
        "ternary input",
        "NaN weights",
        "missing output directory",
        "unwritable output directory",
        "dynamic spatial size",
        "bad option",
        "NaN verification data",
        "unknown custom objects module",
    ],
)
def test_cli_bad_input_gives_one_line_and_no_output_file(cli_runs, case):
    if case not in cli_runs:
        pytest.skip("no unwritable directory on this system")
    process, output, _, expected = cli_runs[case]
    assert process.returncode == 2, process.stderr
    lines = process.stderr.splitlines()
    assert len(lines) == 1, process.stderr
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    kept = {"float conv": EARLIER_EXPORT, "output is an image": PNG_BYTES}
    if case in kept:  # a file that was there stays as it was
        assert output.read_bytes() == kept[case]
    elif case == "output is the model":
        assert bcnn_keras.loading.load_model(output).count_params() > 0
    else:
        assert not output.exists()
    if output.parent.is_dir() and os.access(output.parent, os.W_OK):
        assert not [name for name in files_in(output.parent) if name.endswith(".partial")]


def test_cli_exports_a_bcnn_model_fully_binary_with_parity_and_report(cli_runs):
    process, output, extra, _ = cli_runs["good"]
    assert process.returncode == 0, process.stderr
    assert process.stderr == ""
    assert output.stat().st_size > 0
    report = json.loads(Path(extra[-1]).read_text())
    assert report["parity"]["threshold"] == 0.98
    for key in ("size_bytes", "ops", "binary_mac_fraction", "float_layers", "parity", "latency_ms_x86"):
        assert key in report, key
    assert report["size_bytes"] == output.stat().st_size
    assert report["binary_mac_fraction"] == 1.0
    assert report["float_layers"] == [] and not FLOAT_MATRIX_OPS & set(report["ops"])
    assert report["parity"]["samples"] == 300 and report["parity"]["passed"]
    assert {"keras_accuracy", "tflite_accuracy", "max_abs_diff", "mean_abs_diff"} <= set(report["parity"])
    assert report["latency_ms_x86"] > 0 and report["latency_x86"]["threads"] == 1
    assert "binary MAC share  100.00%" in process.stdout


def test_cli_plain_larq_model_with_float_stem_and_head_names_them_under_allow_float(cli_runs):
    process, output, extra, _ = cli_runs["allow_float"]
    assert process.returncode == 0, process.stderr
    report = json.loads(Path(extra[-1]).read_text())
    assert 0 < report["binary_mac_fraction"] < 1
    assert [layer["layer"] for layer in report["float_layers"]] == ["float_stem", "float_head"]
    assert {"CONV_2D", "FULLY_CONNECTED"} <= set(report["ops"])
    assert "float_stem (plain Keras Conv2D" in process.stdout
    assert output.exists()


def test_failed_export_keeps_an_earlier_output_and_says_so(cli_runs):
    process, output, _, _ = cli_runs["float conv"]
    assert output.read_bytes() == EARLIER_EXPORT
    assert process.stderr.strip().endswith(f"the existing {output} was kept as it was")


def test_overwrite_replaces_what_the_check_protects(tmp_path):
    model = saved(randomize_statistics(small_bcnn18()), tmp_path / "model.keras")
    image = tmp_path / "shirt.png"
    image.write_bytes(PNG_BYTES)
    assert run_cli(model, "-o", image).returncode == 2 and image.read_bytes() == PNG_BYTES
    process = run_cli(model, "-o", image, "--overwrite", "--latency-runs", "0")
    assert process.returncode == 0, process.stderr
    assert image.read_bytes()[4:8] == b"TFL3"


# ---------------------------------------------------------------------------------------------
# Library


@pytest.fixture(scope="module")
def default_bcnn18_report(tmp_path_factory):
    output = tmp_path_factory.mktemp("bcnn18") / "bcnn18.tflite"
    return export.export(bcnn_keras.BCNN18(), output, latency_runs=10)


def test_default_bcnn18_is_100_percent_binary_within_1_6_mb(default_bcnn18_report):
    report = default_bcnn18_report
    assert report.binary_mac_fraction == 1.0
    assert report.size_bytes <= 1_600_000
    assert report.ops["LceBconv2d"] == 18
    assert report.bytes["bitpacked_weights"] > 0.9 * report.size_bytes
    # lq.models.summary's prediction is close for a fully binary model (unlike with QuantDense).
    assert 0.9 < report.size_bytes / report.predicted_size_bytes < 1.2
    assert report.latency_ms_x86 > 0 and report.latency_x86.runs == 10
    assert report.latency_x86.timings_ms is None  # a report keeps the summary only


def test_rewrite_turns_binary_quantdense_into_an_identical_1x1_binary_conv():
    model = randomize_statistics(larq_model(stem="binary", head="quant_dense", input_shape=(8, 8, 32)))
    rewritten = export.rewrite(model)
    assert isinstance(model.get_layer("head"), lq.layers.QuantDense)  # the original is untouched
    block = rewritten.get_layer("head")
    assert [type(layer).__name__ for layer in block.layers] == ["Reshape", "QuantConv2D", "Reshape"]
    assert block.layers[1].kernel.shape == (1, 1, 64, CLASSES)
    x = feature_inputs(16, (8, 8, 32))
    np.testing.assert_array_equal(rewritten(x, training=False), model(x, training=False))
    assert export.rewrite(small_bcnn18()).layers[-1].name == "predictions"  # nothing to rewrite


def test_model_with_binary_quantdense_exports_100_percent_binary(tmp_path):
    model = randomize_statistics(larq_model(stem="binary", head="quant_dense", input_shape=(8, 8, 32)))
    x = feature_inputs(200, (8, 8, 32))
    report = export.export(model, tmp_path / "m.tflite", verify=(x, None), latency_runs=0)
    assert report.rewritten_layers[0]["layer"] == "head"
    assert report.binary_mac_fraction == 1.0
    assert "FULLY_CONNECTED" not in report.ops and report.ops["LceBconv2d"] == 4
    assert report.parity.top1_agreement >= 0.995
    # A float32 FULLY_CONNECTED would have made the file larger than larq's 1-bit prediction.
    assert report.size_bytes < 1.5 * report.predicted_size_bytes


def test_census_counts_binary_and_float_macs_and_bytes_from_the_flatbuffer():
    model = larq_model(stem="float", head="dense")
    result = export.census(export.convert(model), model)
    profile = lq.models.ModelProfile(model)  # exact for plain larq layers
    assert result.macs["binary"] == profile.op_count("mac", 1) == 28 * 28 * 32 * 9 * 64 + 14 * 14 * 64 * 9 * 64
    assert result.macs["float"] == profile.op_count("mac", 32) == 28 * 28 * 9 * 32 + 64 * CLASSES
    assert result.binary_mac_fraction == pytest.approx(
        result.macs["binary"] / (result.macs["binary"] + result.macs["float"])
    )
    packed = 64 * 9 * (32 // 32) * 4 + 64 * 9 * (64 // 32) * 4  # int32 words of 32 channels
    assert result.bytes["bitpacked_weights"] == packed
    assert result.bytes["float_parameters"] >= 4 * (32 * 9 + 64 * CLASSES)
    assert sum(result.bytes.values()) == result.size_bytes
    assert [op["op"] for op in result.float_ops] == ["CONV_2D", "FULLY_CONNECTED"]


def single_layer_model(layer, channels=64):
    x = tf.keras.Input((8, 8, channels))
    y = tf.keras.layers.BatchNormalization()(x)
    y = layer(y)
    return tf.keras.Model(x, tf.keras.layers.BatchNormalization()(y))


@pytest.mark.parametrize(
    "target, layer, kind",
    [
        ("arm", lambda: binary_conv(64, pad_values=0.0), "slow"),
        ("xcore", lambda: binary_conv(64, pad_values=0.0), "float"),
        ("arm", lambda: binary_conv(64, groups=4), "float"),  # 16 channels per group
        ("arm", lambda: binary_conv(64, input_quantizer=None), "float"),
        ("arm", lambda: binary_conv(64, input_quantizer=lq.quantizers.DoReFa(k_bit=2)), "float"),
        (
            "arm",
            lambda: lq.layers.QuantDepthwiseConv2D(3, input_quantizer="ste_sign", depthwise_quantizer="ste_sign"),
            "float",
        ),
        ("xcore", lambda: binary_conv(64, kernel_size=1, pad_values=0.0), "rewrite"),
    ],
)
def test_lint_predicts_what_lce_does(tmp_path, target, layer, kind):
    model = randomize_statistics(single_layer_model(layer()))
    findings = export.lint(model, target)
    assert [finding.kind for finding in findings] == [kind]
    report = export.export(
        model,
        tmp_path / "m.tflite",
        target=target,
        allow_float=True,
        verify=(feature_inputs(50, (8, 8, 64)), None),
        parity_threshold=0.9,
        latency_runs=0,
    )
    float_ops = [op for op in report.ops if op in FLOAT_MATRIX_OPS]
    assert bool(float_ops) == (kind == "float"), report.ops
    assert [f["layer"] for f in report.float_layers] == ([findings[0].layer] if kind == "float" else [])


def test_lce_diagnostics_reach_the_report(tmp_path):
    model = single_layer_model(binary_conv(64, groups=4))
    report = export.export(model, tmp_path / "m.tflite", allow_float=True, latency_runs=0)
    assert any("Invalid binary grouped convolution" in warning for warning in report.warnings)


class TfSign(lq.quantizers.Quantizer):
    """A custom sign LCE does not recognise (it matches `larq.math.sign`, not `tf.sign`)."""

    precision = 1

    def call(self, inputs):
        return tf.sign(inputs)


def test_silent_float_fallback_of_an_unknown_quantizer_is_caught(tmp_path):
    model = single_layer_model(binary_conv(64, input_quantizer=TfSign(), kernel_quantizer=TfSign()))
    assert [finding.kind for finding in export.lint(model)] == ["unverified"]
    with pytest.raises(export.ExportError, match="LCE kept 1 matrix op.s. in float that lint did not predict"):
        export.export(model, tmp_path / "m.tflite", latency_runs=0)
    assert files_in(tmp_path) == []
    report = export.export(model, tmp_path / "m.tflite", allow_float=True, latency_runs=0)
    assert report.ops["CONV_2D"] == 1 and report.binary_mac_fraction == 0
    assert any("did not predict" in warning for warning in report.warnings)


def test_ternary_input_is_refused_even_with_allow_float(tmp_path):
    model = single_layer_model(binary_conv(64, input_quantizer="ste_tern"))
    with pytest.raises(export.ExportError, match="ternary input quantizer SteTern"):
        export.export(model, tmp_path / "m.tflite", allow_float=True)
    assert files_in(tmp_path) == []


def test_phase_1_model_is_exported_in_phase_2_with_a_warning(tmp_path):
    model = small_bcnn18()
    bcnn_keras.set_phase(model, 1)
    with pytest.warns(UserWarning, match="training phase 1"):
        report = export.export(model, tmp_path / "m.tflite", latency_runs=0)
    assert bcnn_keras.get_phase(model) == 1  # the caller's model is left as it was
    assert "training phase 1" in report.warnings[0]
    assert report.binary_mac_fraction == 1.0


def test_mixed_precision_model_is_rebuilt_as_float32(tmp_path):
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = randomize_statistics(small_bcnn18(classifier_activation=None))
    finally:
        tf.keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("block1_conv").compute_dtype == "float16"
    with pytest.warns(UserWarning, match="mixed-precision"):
        report = export.export(
            model, tmp_path / "m.tflite", verify="random", samples=50, parity_threshold=0.9, latency_runs=0
        )
    assert report.binary_mac_fraction == 1.0
    assert report.parity.top1_agreement >= 0.9  # float16 Keras vs float32 LCE


def test_parity_below_threshold_fails_without_output_but_with_report(tmp_path):
    tf.keras.utils.set_random_seed(0)
    model = small_bcnn18(classifier_activation=None)  # fresh statistics: sign ties, some flips
    output, report_path = tmp_path / "m.tflite", tmp_path / "report.json"
    with pytest.raises(export.ExportError, match="parity failed") as error:
        export.export(model, output, verify="random", samples=100, parity_threshold=1.0, report_path=report_path)
    assert "\n" not in str(error.value)
    assert not output.exists()
    assert json.loads(report_path.read_text())["parity"]["passed"] is False


def test_verification_data_sources(tmp_path):
    x, y, about = export.verification_data("fashion_mnist", (28, 28, 1), samples=500)
    assert x.shape == (500, 28, 28, 1) and x.dtype == np.uint8 and set(np.unique(y)) <= set(range(10))
    assert about == "fashion_mnist test split"
    path = tmp_path / "data.npz"
    np.savez(path, x=random_images(7), y=np.eye(10)[np.arange(7)])
    x, y, _ = export.verification_data(str(path), (28, 28, 1))
    assert x.shape == (7, 28, 28, 1) and y.tolist() == list(range(7))
    with pytest.raises(export.ExportError, match=r"have shape \(28, 28, 1\) but the model takes \(32, 32, 3\)"):
        export.verification_data("fashion_mnist", (32, 32, 3))
    with pytest.raises(export.ExportError, match="must be fashion_mnist, folder:PATH, random or a .npz path"):
        export.verification_data("imagenet", (28, 28, 1))
    folder = write_image_folder(str(tmp_path / "photos"), mode="L")
    x, y, about = export.verification_data(f"folder:{folder}", (28, 28, 1))
    assert x.shape == (6, 28, 28, 1) and sorted(y) == [0, 0, 1, 1, 2, 2] and about == f"folder:{folder} test split"
    with pytest.raises(export.ExportError, match=r"have shape \(28, 28, 1\) but the model takes \(28, 28, 3\)"):
        export.verification_data(f"folder:{folder}", (28, 28, 3))
    with pytest.raises(export.ExportError, match="image folder .*/none does not exist"):
        export.verification_data(f"folder:{tmp_path}/none", (28, 28, 1))


def test_class_names_next_to_the_model_reach_the_report(tmp_path):
    model_path = tmp_path / "model.keras"
    small_bcnn18(classes=3).save(model_path)
    (tmp_path / "classes.json").write_text('["cat", "dog", "fish"]')
    report = export.export(str(model_path), str(tmp_path / "model.tflite"), latency_runs=0)
    assert report.class_names == ["cat", "dog", "fish"]
    assert export.Report.from_json(report.to_json()).class_names == ["cat", "dog", "fish"]
    assert re.search(r"\nclasses +3: cat, dog, fish\n", export.format_report(report))
    first = (tmp_path / "model.tflite").read_bytes()
    assert class_names_in(first) == ["cat", "dog", "fish"]  # the file names its classes itself
    (tmp_path / "classes.json").write_text('["cat", "dog"]')
    with pytest.raises(export.ExportError, match="classes.json: 2 class names, but the model has 3 outputs.*was kept"):
        export.export(str(model_path), str(tmp_path / "model.tflite"), latency_runs=0)
    assert (tmp_path / "model.tflite").read_bytes() == first  # the earlier file is left as it was


# ---------------------------------------------------------------------------------------------
# Generated architectures from the supported layer set

LAYER_KINDS = ("bcnn_block", "binary_conv", "larq_conv", "max_pool")


@st.composite
def architectures(draw):
    layers = draw(
        st.lists(
            st.tuples(
                st.sampled_from(LAYER_KINDS),
                st.sampled_from([32, 64]),  # filters
                st.sampled_from([1, 3]),  # kernel size
                st.sampled_from([1, 2]),  # strides
            ),
            min_size=1,
            max_size=3,
        )
    )
    return {
        "side": draw(st.sampled_from([12, 16])),
        "channels": draw(st.sampled_from([1, 3])),
        "stem_filters": draw(st.sampled_from([32, 64])),
        "layers": layers,
        "head": draw(st.sampled_from(["binary_classifier", "quant_dense"])),
    }


def build(architecture):
    side, channels = architecture["side"], architecture["channels"]
    image = tf.keras.Input((side, side, channels))
    x = bcnn_keras.binary_input_block(image, architecture["stem_filters"], name="stem")
    for index, (kind, filters, kernel_size, strides) in enumerate(architecture["layers"]):
        strides = strides if x.shape[1] >= 4 else 1
        if kind == "bcnn_block":
            x = bcnn_keras.bcnn_block(x, filters, kernel_size, strides, name=f"block{index}")
        elif kind == "max_pool":
            x = tf.keras.layers.MaxPool2D(2)(x) if x.shape[1] >= 4 else x
        else:
            conv = bcnn_keras.BinaryConv2D if kind == "binary_conv" else binary_conv
            x = conv(filters, kernel_size, strides=strides)(x)
            x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    if architecture["head"] == "binary_classifier":
        x = bcnn_keras.binary_classifier(x, CLASSES, activation=None)
    else:
        x = lq.layers.QuantDense(CLASSES, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
        x = tf.keras.layers.BatchNormalization()(x)
    return tf.keras.Model(image, x)


@pytest.mark.slow  # eight conversions: `make test-slow`, in CI
@settings(max_examples=8, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(architecture=architectures(), seed=st.integers(0, 1000))
def test_generated_architectures_export_fully_binary_and_pass_parity(tmp_path_factory, architecture, seed):
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(seed)
    model = randomize_statistics(build(architecture), seed=seed)
    output = tmp_path_factory.mktemp("generated") / "m.tflite"
    report = export.export(model, output, verify="random", samples=100, latency_runs=0)
    assert report.binary_mac_fraction == 1.0
    assert report.float_layers == [] and not FLOAT_MATRIX_OPS & set(report.ops)
    assert report.parity.passed
