"""`bcnn_keras.predict` (`bcnn-predict`): real LCE flatbuffers, real PNG and JPEG files."""

import csv
import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from helpers import CLASS_PATTERNS, pattern_image, randomize_statistics, small_bcnn18

from bcnn_keras import data, predict
from bcnn_keras.export import convert
from bcnn_keras.export.latency import lce_interpreter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _save(path, pixels, mode="RGB"):
    from PIL import Image

    Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels, mode).save(path)
    return str(path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A bit-packed 20x20 RGB, 3-class BCNN18 with `classes.json` beside it, and test images."""
    directory = tmp_path_factory.mktemp("predict")
    model = randomize_statistics(small_bcnn18(input_shape=(20, 20, 3), classes=3, width_multiplier=0.125))
    (directory / "model.tflite").write_bytes(convert(model))
    data.write_class_names(str(directory / "classes.json"), CLASS_PATTERNS)
    _save(directory / "stripes.png", pattern_image("horizontal", size=32))  # resized to 20x20
    _save(directory / "checkers.jpg", pattern_image("checkers"))
    _save(directory / "grey.png", pattern_image("vertical", channels=1), mode="L")
    return directory


def _main(capsys, *argv):
    """Runs the CLI in this process: `(status, stdout, stderr)`."""
    status = predict.main([*map(str, argv), "--verbose"])  # --verbose: no process-wide quieting here
    out, err = capsys.readouterr()
    return status, out, err


def test_classify_gives_the_interpreters_top_k_with_names(model_dir):
    images = [str(model_dir / "stripes.png"), str(model_dir / "checkers.jpg")]
    results = predict.classify(str(model_dir / "model.tflite"), images, top_k=2)
    interpreter = lce_interpreter((model_dir / "model.tflite").read_bytes())
    for path, result in zip(images, results):
        pixels = data.read_image(path, (20, 20), 3).astype(np.float32)
        scores = interpreter.predict(pixels[None])[0]
        assert result["image"] == path and result["time_ms"] > 0 and len(result["top"]) == 2
        assert [entry["class"] for entry in result["top"]] == list(np.argsort(-scores)[:2])
        assert [entry["name"] for entry in result["top"]] == [CLASS_PATTERNS[e["class"]] for e in result["top"]]
        assert result["top"][0]["score"] == pytest.approx(scores.max())


def test_text_and_json_output(model_dir, capsys, tmp_path):
    status, out, err = _main(capsys, model_dir / "model.tflite", model_dir / "stripes.png", model_dir / "checkers.jpg")
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 * (1 + 3)  # per image: a line with the time, then the top 3
    assert re.fullmatch(r".*stripes\.png  \d+\.\d\d ms", lines[0])
    names = "|".join(CLASS_PATTERNS)
    assert all(re.fullmatch(rf"  [123]\. ({names}) +[01]\.\d{{4}}", line) for line in lines[1:4]), out
    status, out, _ = _main(capsys, model_dir / "model.tflite", model_dir / "stripes.png", "--json", "--top-k", "1")
    (result,) = json.loads(out)
    assert status == 0 and len(result["top"]) == 1 and result["top"][0]["name"] in CLASS_PATTERNS
    # Elsewhere, without classes.json, classes are numbered; --classes takes a list or an export report.
    alone = tmp_path / "alone.tflite"
    alone.write_bytes((model_dir / "model.tflite").read_bytes())
    status, out, _ = _main(capsys, alone, model_dir / "stripes.png")
    assert status == 0 and re.search(r"  1\. class [012]  ", out)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"class_names": ["a", "b", "c"], "size_bytes": 1}))
    status, out, _ = _main(capsys, alone, model_dir / "stripes.png", "--classes", report)
    assert status == 0 and re.search(r"  1\. [abc]  ", out)


def _plain_tflite():
    model = tf.keras.Sequential([tf.keras.Input((20, 20, 3)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(3)])
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing-model", "{tmp}/none.tflite: no such file"),
        ("not-a-flatbuffer", "{tmp}/random.tflite: not a TFLite flatbuffer"),
        ("truncated-flatbuffer", "{tmp}/truncated.tflite: a corrupt or truncated TFLite flatbuffer"),
        ("no-lce-ops", "{tmp}/plain.tflite: holds no LCE ops (LceBconv2d or LceQuantize)"),
        ("bad-classes", "{tmp}/classes.json: 2 class names, but the model has 3 outputs"),
        ("no-images", "no images found in {tmp}"),
    ],
)
def test_a_bad_model_or_class_file_gives_one_line_and_no_output(model_dir, tmp_path, capsys, case, message):
    model, images, classes = model_dir / "model.tflite", [model_dir / "checkers.jpg"], []
    if case == "missing-model":
        model = tmp_path / "none.tflite"
    elif case == "not-a-flatbuffer":
        model = tmp_path / "random.tflite"
        model.write_bytes(np.random.default_rng(0).bytes(4000))
    elif case == "truncated-flatbuffer":
        model = tmp_path / "truncated.tflite"
        model.write_bytes((model_dir / "model.tflite").read_bytes()[:3000])
    elif case == "no-lce-ops":
        model = tmp_path / "plain.tflite"
        model.write_bytes(_plain_tflite())
    elif case == "bad-classes":
        (tmp_path / "classes.json").write_text('["one", "two"]')
        classes = ["--classes", tmp_path / "classes.json"]
    elif case == "no-images":
        images = [tmp_path]  # a folder without images
    status, out, err = _main(capsys, model, *images, *classes)
    assert status == 2 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("error: ") and message.format(tmp=tmp_path) in err, err


def test_bad_images_are_reported_and_skipped_and_the_rest_classified(model_dir, tmp_path, capsys):
    """100 images in nested folders, one corrupt and one that is no image at all: 98 classified."""
    folder = tmp_path / "shots"
    for index in range(98):
        (folder / f"part{index % 3}").mkdir(parents=True, exist_ok=True)
        _save(folder / f"part{index % 3}" / f"{index:03d}.png", pattern_image(CLASS_PATTERNS[index % 3], seed=index))
    (folder / "part0" / "broken.png").write_bytes((model_dir / "stripes.png").read_bytes()[:80])
    (folder / "part1" / "text.jpg").write_text("not an image")
    (folder / "notes.txt").write_text("not an image suffix: not collected")
    status, out, err = _main(capsys, model_dir / "model.tflite", folder, "--format", "json", "--top-k", "1")
    results = json.loads(out)
    assert status == 2 and len(results) == 98
    assert sorted(r["image"] for r in results) == sorted(str(p) for p in folder.rglob("0*.png"))
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and all(line.endswith("(skipped)") for line in errors), err
    assert any("broken.png: not a readable image" in line for line in errors)
    assert any("text.jpg: not a readable image" in line for line in errors)


def test_channels_are_converted_to_the_models_and_said_so(model_dir, capsys):
    from PIL import Image

    interpreter = lce_interpreter((model_dir / "model.tflite").read_bytes())
    status, out, err = _main(capsys, model_dir / "model.tflite", model_dir / "grey.png", "--json", "--top-k", "3")
    (result,) = json.loads(out)
    assert status == 0 and result["converted"] == "grey to RGB"
    assert "note: converted 1 of 1 images from grey to RGB (the model takes RGB images)" in err
    with Image.open(model_dir / "grey.png") as image:
        pixels = np.asarray(image.convert("RGB").resize((20, 20), Image.Resampling.BILINEAR), np.float32)
    scores = interpreter.predict(pixels[None])[0]
    assert [entry["class"] for entry in result["top"]] == list(np.argsort(-scores))


def test_python_api_takes_arrays_and_paths(model_dir):
    pixels = data.read_image(str(model_dir / "stripes.png"), (20, 20), 3)
    from_path, from_array, from_grey_array = predict.classify(
        model_dir / "model.tflite", [model_dir / "stripes.png", pixels, pixels.mean(-1)], top_k=1
    )
    assert from_array["image"] == "array[1]" and from_array["converted"] is None
    assert from_array["top"] == from_path["top"]
    assert from_grey_array["converted"] == "grey to RGB"
    batch = predict.classify(model_dir / "model.tflite", np.stack([pixels, pixels]), top_k=1)
    assert [r["top"] for r in batch] == [from_path["top"]] * 2
    (bad,) = predict.classify(model_dir / "model.tflite", [np.zeros((4,))])
    assert bad["image"] == "array[0]" and "expected an image array" in bad["error"]


def test_csv_output_has_one_row_per_image_and_rank(model_dir, capsys):
    status, out, _ = _main(
        capsys, model_dir / "model.tflite", model_dir / "stripes.png", "--format", "csv", "--top-k", "2"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert status == 0 and [row["rank"] for row in rows] == ["1", "2"]
    assert all(row["name"] in CLASS_PATTERNS and 0 <= float(row["score"]) <= 1 for row in rows)


def _cli(*argv):
    # TF_CPP_MIN_LOG_LEVEL=3 keeps TensorFlow's import-time C++ lines off stderr.
    return subprocess.run(
        [sys.executable, "-m", "bcnn_keras.predict", *map(str, argv)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def test_cli_errors_are_one_line_on_stderr(model_dir, tmp_path):
    missing = _cli(model_dir / "model.tflite", tmp_path / "none.png")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.splitlines() == [f"error: {tmp_path / 'none.png'}: no such file (skipped)"]
    usage = _cli(model_dir / "model.tflite")
    assert usage.returncode == 2 and len(usage.stderr.splitlines()) == 1 and "IMAGE" in usage.stderr
