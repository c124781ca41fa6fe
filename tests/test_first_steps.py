"""The first steps a Keras user takes outside the README, each taken the way the user takes it:
the installed console scripts, a fresh process, the files a user has."""

import json
import os
import pty
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import write_image_folder

import bcnn_keras

SCRIPTS = os.path.dirname(sys.executable)  # the venv's bin/, where pip put the console scripts
# A user's environment: none of the variables that the tests or `import bcnn_keras` set here.
SET_HERE = ("TF_CPP_MIN_LOG_LEVEL", "TF_USE_LEGACY_KERAS", "TF_ENABLE_ONEDNN_OPTS")
USER_ENV = {key: value for key, value in os.environ.items() if key not in SET_HERE}


def script(name, *args, cwd=None, stderr=subprocess.PIPE):
    return subprocess.run(
        [os.path.join(SCRIPTS, name), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        timeout=900,
        env=USER_ENV,
        cwd=cwd,
    )


def python(code, cwd):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=900, env=USER_ENV, cwd=cwd
    )


@pytest.mark.parametrize("first", ["import tensorflow as tf", "import keras"])
def test_tensorflow_or_keras_imported_first_then_the_whole_path_works(first, tmp_path):
    code = f"""
{first}
import bcnn_keras
import numpy as np
import tensorflow as tf
model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.125)
model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
model.fit(np.zeros((8, 28, 28, 1), "float32"), np.zeros(8), epochs=1, verbose=0)
model.save("model.keras")
report = bcnn_keras.export.export("model.keras", "model.tflite", latency_runs=0)
print("done", type(model).__module__, report.binary_mac_fraction)
"""
    process = python(code, tmp_path)
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stdout.split() == ["done", "tf_keras.src.engine.functional", "1.0"]


def test_keras_3_already_in_use_ends_with_one_line_saying_what_to_do(tmp_path):
    process = python("import tensorflow as tf\ntf.keras.layers.Dense\nimport bcnn_keras", tmp_path)
    assert process.returncode == 1
    assert process.stderr.strip().splitlines()[-1] == "ImportError: " + bcnn_keras._KERAS3_LOADED_MESSAGE


def test_import_loads_no_tensorflow_until_a_name_needs_it(tmp_path):
    process = python(
        "import sys, bcnn_keras\nprint('tensorflow' in sys.modules)\n"
        "bcnn_keras.BCNN18\nprint('tensorflow' in sys.modules)",
        tmp_path,
    )
    assert process.stdout.split() == ["False", "True"], process.stderr[-2000:]


def test_training_flags_are_checked_without_tensorflow(tmp_path):
    process = python(
        "import contextlib, io, sys\nfrom bcnn_keras.training import cli\n"
        "print(cli.main(['--output-dir', 'run', '--model', 'BCNN8', '--batch-size', '0']))\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    cli.main(['--help'])\n"
        "print('tensorflow' in sys.modules)",
        tmp_path,
    )
    assert process.stdout.split() == ["2", "False"], process.stderr[-2000:]
    assert process.stderr.strip() == "error: --batch-size must be > 0"


@pytest.mark.parametrize("name", ["bcnn-export", "bcnn-train", "bcnn-predict"])
def test_console_scripts_help_has_no_library_log_lines(name, tmp_path):
    process = script(name, "--help", cwd=tmp_path)
    assert process.returncode == 0 and process.stdout.startswith("usage: ")
    assert process.stderr == ""


def test_training_help_shows_every_default():
    process = script("bcnn-train", "--help")
    options = re.split(r"\n  (?=-)", process.stdout.split("options:")[1])[1:]
    assert len(options) > 30
    undocumented = [option.split()[0] for option in options if not re.search(r"\((default|required)", option)]
    assert undocumented == ["-h,"], undocumented


def test_exporter_keeps_the_users_files(tmp_path):
    model = tmp_path / "victim.keras"
    bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.125).save(model)
    before = model.read_bytes()
    image = tmp_path / "shirt.png"
    write_image_folder(tmp_path / "folder", per_class=1)
    shutil.copy(next((tmp_path / "folder").rglob("*.png")), image)
    picture = image.read_bytes()
    for output in (model, image):
        process = script("bcnn-export", model, "-o", output)
        assert process.returncode == 2 and len(process.stderr.splitlines()) == 1, process.stderr
    assert model.read_bytes() == before and image.read_bytes() == picture


def test_shipped_model_exported_from_python_carries_its_class_names(tmp_path):
    report = bcnn_keras.export.export(
        bcnn_keras.BCNN18(weights="fashion_mnist"), tmp_path / "model.tflite", latency_runs=0
    )
    assert report.class_names[9] == "Ankle boot"
    from PIL import Image

    images, _ = bcnn_keras.data.load_fashion_mnist_arrays("test")
    Image.fromarray(images[0, ..., 0]).save(tmp_path / "boot.png")
    predicted = script("bcnn-predict", tmp_path / "model.tflite", tmp_path / "boot.png", "--top-k", "1")
    assert predicted.returncode == 0 and re.search(r"1\. Ankle boot  0\.\d{4}", predicted.stdout), predicted.stdout


def test_uint8_input_file_is_predicted_alone_with_its_names_and_agrees_with_keras(tmp_path):
    """A training run's folder (model.keras, classes.json) exported for raw camera bytes; the
    file copied alone into an empty folder still names its classes."""
    bcnn_keras.BCNN18(weights="fashion_mnist").save(tmp_path / "model.keras")
    bcnn_keras.data.write_class_names(tmp_path / "classes.json", bcnn_keras.data.FASHION_MNIST_CLASSES)
    exported = script(
        "bcnn-export",
        tmp_path / "model.keras",
        "-o",
        tmp_path / "camera.tflite",
        "--input-type",
        "uint8",
        "--verify",
        "fashion_mnist",
        "--samples",
        10_000,
        "--parity-threshold",
        0.998,
        "--report",
        tmp_path / "report.json",
    )
    assert exported.returncode == 0, exported.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["input_type"] == "uint8" and report["parity"]["samples"] == 10_000
    assert report["parity"]["top1_agreement"] >= 0.998 and report["binary_mac_fraction"] == 1.0
    assert report["ops"]["CAST"] == 1
    alone = tmp_path / "device"
    alone.mkdir()
    shutil.copy(tmp_path / "camera.tflite", alone / "camera.tflite")
    from PIL import Image

    images, _ = bcnn_keras.data.load_fashion_mnist_arrays("test")
    Image.fromarray(images[0, ..., 0]).convert("RGB").save(tmp_path / "boot.jpg", quality=95)  # a camera's RGB JPEG
    predicted = script("bcnn-predict", alone / "camera.tflite", tmp_path / "boot.jpg", "--top-k", "1")
    assert predicted.returncode == 0, predicted.stderr
    assert re.search(r"1\. Ankle boot  0\.\d{4}", predicted.stdout), predicted.stdout
    assert predicted.stderr.splitlines() == [
        "note: converted 1 of 1 images from RGB to grey (the model takes grey images)"
    ]
    uint8_pixels = bcnn_keras.predict.BitpackedModel(alone / "camera.tflite")
    assert uint8_pixels.input_dtype == np.uint8 and uint8_pixels.class_names[9] == "Ankle boot"


def test_export_shows_progress_on_a_terminal(tmp_path):
    bcnn_keras.BCNN18(weights="fashion_mnist").save(tmp_path / "model.keras")
    terminal, other_end = pty.openpty()
    process = script(
        "bcnn-export",
        tmp_path / "model.keras",
        "-o",
        tmp_path / "model.tflite",
        "--verify",
        "fashion_mnist",
        "--samples",
        600,
        "--latency-runs",
        0,
        stderr=other_end,
    )
    os.close(other_end)
    drawn = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the other end is closed: everything was read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(terminal)
    assert process.returncode == 0
    assert b"verifying [" in drawn and b"600/600" in drawn and b"error" not in drawn


def test_small_folder_trains_every_image_with_any_preset_and_ends_with_the_next_commands(tmp_path):
    """60 images (48 to train) with --batch-size 128, and the BCNN18Small preset."""
    folder = write_image_folder(tmp_path / "photos", per_class=20, size=20, mode="L")
    run = tmp_path / "run"
    process = script(
        "bcnn-train",
        "--dataset",
        f"folder:{folder}",
        "--model",
        "BCNN18Small",
        "--width-multiplier",
        "0.125",
        "--phase1-epochs",
        "1",
        "--phase2-epochs",
        "1",
        "--output-dir",
        run,
        "--verbose",
        "2",
    )
    assert process.returncode == 0, process.stderr[-2000:]
    assert "the training set has 48 images, fewer than --batch-size 128: each step trains on all 48" in process.stdout
    assert re.search(r"^1/1 - ", process.stdout, re.M)  # one step per epoch, of all 48 images
    lines = process.stdout.strip().splitlines()
    assert lines[-2] == f"next: bcnn-export {run}/model.keras -o {run}/model.tflite --verify folder:{folder}"
    assert lines[-1].strip() == f"tensorboard --logdir {run}/logs"
    assert json.loads((run / "config.json").read_text())["model"] == "BCNN18Small"
    assert bcnn_keras.loading.load_model(run / "model.keras").get_layer("block1_conv").filters == 8
    assert process.stderr == ""


def test_a_folder_name_given_as_dataset_gets_a_hint(tmp_path):
    (tmp_path / "photos").mkdir()
    process = script("bcnn-train", "--dataset", "photos", "--output-dir", "run", cwd=tmp_path)
    assert process.returncode == 2
    assert process.stderr.strip().endswith("photos is a folder: use --dataset folder:photos (see --help)"), (
        process.stderr
    )


@pytest.mark.slow
def test_a_run_that_never_finished_an_epoch_blocks_nothing_and_no_image_is_dropped(tmp_path):
    """A run stopped by a diverging loss in its first epoch, re-run with a corrected flag: 240
    images (192 to train) at batch 128 are two steps an epoch, the second of 64 images."""
    folder = write_image_folder(tmp_path / "photos", per_class=80, size=20, mode="L")
    common = [
        "--dataset",
        f"folder:{folder}",
        "--width-multiplier",
        "0.125",
        "--phase1-epochs",
        "1",
        "--phase2-epochs",
        "0",
        "--output-dir",
        tmp_path / "run",
        "--verbose",
        "2",
    ]
    failed = script("bcnn-train", *common, "--learning-rate", "1e30")
    assert failed.returncode == 2 and "the loss became" in failed.stderr
    retried = script("bcnn-train", *common, "--learning-rate", "0.002")
    assert retried.returncode == 0, retried.stderr[-2000:]
    assert "no epoch of the earlier run finished; starting over with these settings" in retried.stdout
    assert re.search(r"^2/2 - ", retried.stdout, re.M)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
