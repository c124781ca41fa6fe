"""Classify images with a bit-packed `.tflite` file on LCE's interpreter (`bcnn-predict`).

    python -m bcnn_keras.predict MODEL.tflite IMAGE... [--top-k 3] [--classes FILE] [--json]

For each PNG or JPEG image it prints the top-k classes with their scores (the model's softmax
outputs) and the time of the interpreter's run in ms (LCE's interpreter, 1 thread, indirect
BGEMM, after one warm-up run). The file must hold LCE's bit-packed ops (`LceBconv2d` or
`LceQuantize`), as `bcnn-export` writes them.

Images are resized (bilinear) to the model's input size and given as raw pixels 0..255, as in
training on a folder (`bcnn_keras.data.read_image` reads both). Alpha is dropped, but grey and
RGB are never converted into each other: the model learnt one of them, and RGB to grey has no
single right formula. A wrong channel count is refused with one line.

Class names come from `--classes FILE` (a JSON list of strings, or an export report with
`class_names`), else from `classes.json` next to MODEL (the training CLI writes it next to
`model.keras`); without names the classes are numbered.

Every error (a missing, unreadable or corrupt file, a wrong channel count, a file that is not
a bit-packed flatbuffer) prints one "error: ..." line on stderr and nothing on stdout, and
exits with 2 (1 for an unexpected error; `--verbose` then shows the traceback). Nothing in the files is executed: a flatbuffer is data that LCE's kernels run.
"""

import contextlib
import json
import os
import sys
import time

import numpy as np

from bcnn_keras import data
from bcnn_keras.export.census import BINARY_CONV_OP, op_counts
from bcnn_keras.cli import EXIT_BAD_INPUT, EXIT_UNEXPECTED, OneLineParser, fail, quiet_libraries
from bcnn_keras.export.convert import captured_stderr
from bcnn_keras.export.latency import lce_interpreter
from bcnn_keras.loading import first_line

LCE_OPS = (BINARY_CONV_OP, "LceQuantize")
TFLITE_IDENTIFIER = b"TFL3"  # bytes 4..8 of every TFLite flatbuffer


class PredictError(ValueError):
    """A bad model file, image or class-name file, as one line."""


def read_bitpacked_model(path):
    """The bytes of a `.tflite` file, checked: a readable TFLite flatbuffer with LCE ops.

    Example:
        >>> shipped = bcnn_keras.pretrained.SHIPPED[("BCNN18", "fashion_mnist")]
        >>> len(read_bitpacked_model(shipped.tflite_path))
        147116
    """
    if not os.path.isfile(path):
        raise PredictError(f"{path}: no such file")
    try:
        with open(path, "rb") as stream:
            # The identifier first: a wrong file of any size is refused without reading it all.
            header = stream.read(8)
            if header[4:8] != TFLITE_IDENTIFIER:
                raise PredictError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier)")
            flatbuffer = header + stream.read()
    except OSError as error:
        raise PredictError(f"{path}: {error.strerror or error}") from error
    try:  # parses every table in Python first: a truncated file must not reach the C++ runtime
        ops = op_counts(flatbuffer)
    except Exception as error:  # flatbuffers raises struct errors, IndexError... on bad offsets
        raise PredictError(f"{path}: a corrupt or truncated TFLite flatbuffer ({first_line(error)})") from error
    if not any(ops.get(op) for op in LCE_OPS):
        raise PredictError(
            f"{path}: holds no LCE ops ({' or '.join(LCE_OPS)}): this tool runs bit-packed files from bcnn-export"
        )
    return flatbuffer


def model_input_shape(interpreter, path):
    """`(height, width, channels)` of the interpreter's one float32 image input."""
    shapes, types = interpreter.input_shapes, interpreter.input_types
    if len(shapes) != 1 or len(shapes[0]) != 4 or np.dtype(types[0]) != np.float32:
        raise PredictError(f"{path}: expected one float32 image input [1, height, width, channels], got {shapes}")
    height, width, channels = shapes[0][1:]
    if channels not in (1, 3):
        raise PredictError(f"{path}: the model takes {channels}-channel images; this tool reads grey or RGB images")
    return height, width, channels


def class_names_for(model_path, classes_path, classes):
    """The class names: from `classes_path`, else `classes.json` next to the model, else None.

    Example:
        >>> shipped = bcnn_keras.pretrained.SHIPPED[("BCNN18", "fashion_mnist")]
        >>> class_names_for(shipped.tflite_path, None, 10)[:2]
        ['T-shirt/top', 'Trouser']
    """
    try:
        if classes_path is None:
            return data.class_names_next_to(model_path, classes)
        return data.read_class_names(classes_path, classes)
    except ValueError as error:
        raise PredictError(error) from error


def read_images(paths, input_shape):
    """Every image as float32 raw pixels `[n, height, width, channels]`, resized to the model's
    input; all are read before any runs, so that a bad one leaves no partial output."""
    images = []
    for path in paths:
        if not os.path.isfile(path):
            raise PredictError(f"{path}: no such file")
        try:
            images.append(data.read_image(path, input_shape[:2], input_shape[2]))
        except data.ImageFolderError as error:
            raise PredictError(error) from error
    return np.stack(images).astype(np.float32)


def classify(model_path, image_paths, *, top_k=3, classes_path=None):
    """Runs the bit-packed model on each image; returns one dict per image: `image`,
    `time_ms` and `top` (the `top_k` best classes as `class`, `name` (None without names) and
    `score`, best first). Raises `PredictError` with one line.

    Example:
        >>> from PIL import Image
        >>> images, labels = bcnn_keras.data.load_fashion_mnist_arrays("test")
        >>> Image.fromarray(images[0, ..., 0]).save("boot.png")  # test image 0, an ankle boot
        >>> shipped = bcnn_keras.pretrained.SHIPPED[("BCNN18", "fashion_mnist")]
        >>> result = classify(shipped.tflite_path, ["boot.png"], top_k=1)[0]
        >>> result["top"][0]["name"], result["time_ms"] > 0
        ('Ankle boot', True)
    """
    if top_k < 1:
        raise PredictError(f"--top-k must be >= 1, got {top_k}")
    flatbuffer = read_bitpacked_model(model_path)
    try:
        interpreter = lce_interpreter(flatbuffer, threads=1)
    except Exception as error:  # the runtime refuses what it cannot allocate or prepare
        raise PredictError(f"{model_path}: LCE's interpreter cannot load it ({first_line(error)})") from error
    input_shape = model_input_shape(interpreter, model_path)
    classes = int(np.prod(interpreter.output_shapes[0][1:]))
    names = class_names_for(model_path, classes_path, classes)
    images = read_images(image_paths, input_shape)
    interpreter.predict(np.zeros_like(images[:1]))  # the first run allocates: keep it out of the times
    results = []
    for path, image in zip(image_paths, images):
        start = time.perf_counter()
        scores = np.asarray(interpreter.predict(image[None])).reshape(-1)
        elapsed_ms = (time.perf_counter() - start) * 1000
        best = np.argsort(-scores, kind="stable")[:top_k]
        top = [{"class": int(i), "name": names[i] if names else None, "score": float(scores[i])} for i in best]
        results.append({"image": path, "time_ms": elapsed_ms, "top": top})
    return results


def format_predictions(results):
    """The results of `classify` as text: per image a line with its time, then its top classes.

    Example:
        >>> print(format_predictions([{"image": "a.png", "time_ms": 1.5,
        ...     "top": [{"class": 2, "name": "cat", "score": 0.9}]}]))
        a.png  1.50 ms
          1. cat  0.9000
    """
    lines = []
    for result in results:
        lines.append(f"{result['image']}  {result['time_ms']:.2f} ms")
        labels = [entry["name"] if entry["name"] is not None else f"class {entry['class']}" for entry in result["top"]]
        width = max(len(label) for label in labels)
        for rank, (label, entry) in enumerate(zip(labels, result["top"]), 1):
            lines.append(f"  {rank}. {label.ljust(width)}  {entry['score']:.4f}")
    return "\n".join(lines)


def build_parser():
    parser = OneLineParser(
        prog="bcnn-predict",
        description="Classify PNG/JPEG images with a bit-packed LCE .tflite file (from bcnn-export).",
        epilog="Class names: --classes FILE, else classes.json next to MODEL, else class numbers. "
        "Exit status 2 with one 'error:' line on a bad input.",
    )
    parser.add_argument("model", metavar="MODEL.tflite", help="a bit-packed .tflite file")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="PNG or JPEG images")
    parser.add_argument("--top-k", type=int, default=3, help="classes shown per image (default: 3)")
    parser.add_argument(
        "--classes", metavar="FILE", help="class names: a JSON list of strings, or an export report (--report)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of text")
    parser.add_argument("--verbose", action="store_true", help="show library logs and tracebacks")
    return parser


def main(argv=None):
    """The CLI entry point; returns the exit status.

    Example:
        >>> from PIL import Image
        >>> images, labels = bcnn_keras.data.load_fashion_mnist_arrays("test")
        >>> Image.fromarray(images[0, ..., 0]).save("boot.png")
        >>> shipped = bcnn_keras.pretrained.SHIPPED[("BCNN18", "fashion_mnist")]
        >>> main([str(shipped.tflite_path), "boot.png", "--top-k", "1"])
        boot.png ... ms
          1. Ankle boot ...
        0
    """
    args = build_parser().parse_args(argv)
    if not args.verbose:
        quiet_libraries()
    try:
        with contextlib.nullcontext() if args.verbose else captured_stderr():
            results = classify(args.model, args.images, top_k=args.top_k, classes_path=args.classes)
    except PredictError as error:
        return fail(error, EXIT_BAD_INPUT)
    except Exception as error:
        if args.verbose:
            raise
        return fail(f"unexpected {type(error).__name__}: {error} (rerun with --verbose)", EXIT_UNEXPECTED)
    print(json.dumps(results, indent=1) if args.json else format_predictions(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
