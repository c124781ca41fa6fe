"""Classify images with a bit-packed `.tflite` file on LCE's interpreter (`bcnn-predict`).

    bcnn-predict MODEL.tflite IMAGE_OR_FOLDER... [--top-k 3] [--classes FILE] [--format table|json|csv]

For each PNG or JPEG image (folders are searched recursively for them) it prints the top-k
classes with their scores (the model's softmax outputs) and the time of the interpreter's run in
ms (LCE's interpreter, 1 thread, indirect BGEMM, after one warm-up run). The file must hold LCE's
bit-packed ops (`LceBconv2d` or `LceQuantize`), as `bcnn-export` writes them; its input may be
float32 or uint8 (`bcnn-export --input-type uint8`).

Images are resized (bilinear) to the model's input size and given as raw pixels 0..255, as in
training on a folder (`bcnn_keras.data.read_image` reads both). Alpha is dropped. An RGB image
for a grey model is converted to grey (PIL's `convert("L")`), and a grey image for an RGB model
is repeated into three channels; one line on stderr says how many were converted.

Class names come from `--classes FILE` (a JSON list of strings, or an export report with
`class_names`), else from the file itself (the exporter writes them into its metadata), else
from `classes.json` next to MODEL; without names the classes are numbered.

A bad image (missing, unreadable, corrupt) is reported on stderr as one "error: ..." line and
skipped; the others are classified, and the exit status is then 2. A bad model or class-name file
prints one "error: ..." line, nothing on stdout, and exits with 2 (1 for an unexpected error;
`--verbose` then shows the traceback). Nothing in the files is executed: a flatbuffer is data
that LCE's kernels run.

The module loads TensorFlow only when a function needs it, so `bcnn-predict --help` is quick.
"""

import contextlib
import csv
import io
import json
import os
import sys
import time

import numpy as np

from bcnn_keras import export
from bcnn_keras.console import EXIT_BAD_INPUT, EXIT_UNEXPECTED, OneLineParser, Progress, fail, quiet_libraries

LCE_OPS = ("LceBconv2d", "LceQuantize")
INPUT_TYPES = (np.float32, np.uint8)
FORMATS = ("table", "json", "csv")
_CHANNEL_NAMES = {1: "grey", 3: "RGB"}


class PredictError(ValueError):
    """A bad model file, image or class-name file, as one line."""


def read_bitpacked_model(path):
    """The bytes of a `.tflite` file, checked: a readable TFLite flatbuffer with LCE ops.

    Example:
        >>> shipped = bcnn_keras.pretrained.SHIPPED[("BCNN18", "fashion_mnist")]
        >>> read_bitpacked_model(shipped.tflite_path)[4:8]
        b'TFL3'
    """
    from bcnn_keras.export.outputs import TFLITE_IDENTIFIER
    from bcnn_keras.console import first_line

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
        ops = export.op_counts(flatbuffer)
    except Exception as error:  # flatbuffers raises struct errors, IndexError... on bad offsets
        raise PredictError(f"{path}: a corrupt or truncated TFLite flatbuffer ({first_line(error)})") from error
    if not any(ops.get(op) for op in LCE_OPS):
        raise PredictError(
            f"{path}: holds no LCE ops ({' or '.join(LCE_OPS)}): this tool runs bit-packed files from bcnn-export"
        )
    return flatbuffer


class BitpackedModel:
    """A bit-packed `.tflite` file on LCE's interpreter: its input, its class names, and `scores`.

    Example:
        >>> shipped = bcnn_keras.pretrained.SHIPPED[("BCNN18", "fashion_mnist")]
        >>> model = BitpackedModel(shipped.tflite_path)
        >>> model.input_shape, model.input_dtype, model.class_names[9]
        ((28, 28, 1), dtype('float32'), 'Ankle boot')
    """

    def __init__(self, path, classes_path=None, threads=1):
        from bcnn_keras.export.latency import lce_interpreter
        from bcnn_keras.console import first_line

        self.path = os.fspath(path)
        flatbuffer = read_bitpacked_model(self.path)
        try:
            self.interpreter = lce_interpreter(flatbuffer, threads=threads)
        except Exception as error:  # the runtime refuses what it cannot allocate or prepare
            raise PredictError(f"{path}: LCE's interpreter cannot load it ({first_line(error)})") from error
        shapes, types = self.interpreter.input_shapes, self.interpreter.input_types
        if len(shapes) != 1 or len(shapes[0]) != 4 or np.dtype(types[0]) not in INPUT_TYPES:
            raise PredictError(
                f"{path}: expected one float32 or uint8 image input [1, height, width, channels], got {shapes}"
            )
        self.input_shape = tuple(int(d) for d in shapes[0][1:])
        self.input_dtype = np.dtype(types[0])
        if self.input_shape[2] not in _CHANNEL_NAMES:
            raise PredictError(
                f"{path}: the model takes {self.input_shape[2]}-channel images; this tool reads grey or RGB images"
            )
        self.classes = int(np.prod(self.interpreter.output_shapes[0][1:]))
        self.class_names = self._class_names(flatbuffer, classes_path)
        self.interpreter.predict(np.zeros((1, *self.input_shape), self.input_dtype))  # the first run allocates

    def _class_names(self, flatbuffer, classes_path):
        """`--classes FILE`, else the names in the file's metadata, else `classes.json` beside it."""
        from bcnn_keras import data
        from bcnn_keras.export.metadata import class_names_in

        try:
            if classes_path is not None:
                return data.read_class_names(classes_path, self.classes)
            try:
                inside = class_names_in(flatbuffer, self.classes)
            except ValueError as error:
                raise ValueError(f"{self.path}: {error}") from error
            return inside if inside is not None else data.class_names_next_to(self.path, self.classes)
        except ValueError as error:
            raise PredictError(error) from error

    def scores(self, pixels):
        """`(scores, milliseconds)` of one image, `[height, width, channels]` raw pixels."""
        if self.input_dtype == np.uint8:  # whole pixel values, as a camera gives them
            pixels = np.clip(np.rint(pixels), 0, 255)
        start = time.perf_counter()
        scores = np.asarray(self.interpreter.predict(pixels[None].astype(self.input_dtype))).reshape(-1)
        return scores, (time.perf_counter() - start) * 1000

    def name(self, index):
        return self.class_names[index] if self.class_names else None


def image_files(paths):
    """The images to classify: each path as given, each folder's PNG and JPEG files (searched
    recursively, sorted, hidden entries skipped) in its place.

    Example:
        >>> from PIL import Image
        >>> os.makedirs("shots/day")
        >>> for name in ("shots/day/b.png", "shots/a.jpg"):
        ...     Image.new("L", (4, 4)).save(name)
        >>> image_files(["shots", "c.png"])
        ['shots/a.jpg', 'shots/day/b.png', 'c.png']
    """
    from bcnn_keras.data import images_under

    return [
        found for path in map(os.fspath, paths) for found in (images_under(path) if os.path.isdir(path) else [path])
    ]


def _read_file(path, input_shape):
    """`(pixels, converted channels or None)` of an image file, resized to the model's input."""
    from bcnn_keras import data

    if not os.path.isfile(path):
        raise PredictError(f"{path}: no such file")
    try:
        found = data.image_header(path)[1]
        return data.read_image(path, input_shape[:2], input_shape[2], convert=True), _conversion(found, input_shape[2])
    except data.ImageFolderError as error:
        raise PredictError(error) from error


def _read_array(array, input_shape, label):
    """`(pixels, converted channels or None)` of an array: `[height, width]` or `[height, width,
    channels]`, raw pixels 0..255. One of the model's shape is used as it is; any other is
    converted (channels) and resized as an image file would be."""
    from PIL import Image

    from bcnn_keras import data

    pixels = np.asarray(array)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if (
        pixels.ndim != 3
        or pixels.shape[2] not in (1, 3, 4)
        or pixels.dtype.kind not in "uif"
        or not np.all(np.isfinite(pixels))
    ):
        raise PredictError(f"{label}: expected an image array [height, width] or [height, width, 1|3|4] of numbers")
    if pixels.shape == tuple(input_shape):
        return pixels, None
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    whole = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    image = Image.fromarray(whole.squeeze(-1) if mode == "L" else whole, mode)
    found = data.image_channels(image)
    return data.image_pixels(image, input_shape[:2], input_shape[2], convert=True), _conversion(found, input_shape[2])


def _conversion(found, wanted):
    return f"{_CHANNEL_NAMES[found]} to {_CHANNEL_NAMES[wanted]}" if found != wanted else None


def classify(model_path, inputs, *, top_k=3, classes_path=None, progress=None):
    """Runs the bit-packed model on each input; returns one dict per input, in order.

    `inputs` are image paths, folders (their PNG and JPEG files, recursively), image arrays
    (`[height, width(, channels)]`, raw pixels 0..255) or one batch array `[n, height, width,
    channels]`. Each result has `image` (the path, or `array[i]`) and either `time_ms`, `top`
    (the `top_k` best classes as `class`, `name` (None without names) and `score`, best first)
    and `converted` (e.g. "RGB to grey", or None), or `error` (one line) for an input that could
    not be read: bad inputs are skipped, not fatal. A bad model or class-name file raises
    `PredictError`. `progress(done, total)` is called after each input.

    Example:
        >>> from PIL import Image
        >>> images, labels = bcnn_keras.data.load_fashion_mnist_arrays("test")
        >>> Image.fromarray(images[0, ..., 0]).convert("RGB").save("boot.png")  # test image 0, an ankle boot
        >>> shipped = bcnn_keras.pretrained.SHIPPED[("BCNN18", "fashion_mnist")]
        >>> boot, trouser = classify(shipped.tflite_path, ["boot.png", images[2]], top_k=1)
        >>> boot["top"][0]["name"], boot["converted"], trouser["image"], trouser["top"][0]["name"]
        ('Ankle boot', 'RGB to grey', 'array[1]', 'Trouser')
    """
    if top_k < 1:
        raise PredictError(f"--top-k must be >= 1, got {top_k}")
    model = BitpackedModel(model_path, classes_path)
    items = _inputs(inputs)
    results = []
    for done, (label, source) in enumerate(items, 1):
        try:
            if isinstance(source, str):
                pixels, converted = _read_file(source, model.input_shape)
            else:
                pixels, converted = _read_array(source, model.input_shape, label)
        except PredictError as error:
            results.append({"image": label, "error": str(error)})
        else:
            scores, elapsed_ms = model.scores(pixels)
            best = np.argsort(-scores, kind="stable")[:top_k]
            top = [{"class": int(i), "name": model.name(i), "score": float(scores[i])} for i in best]
            results.append({"image": label, "time_ms": elapsed_ms, "top": top, "converted": converted})
        if progress is not None:
            progress(done, len(items))
    return results


def _inputs(inputs):
    """`[(label, path or array)]` of `classify`'s inputs."""
    if isinstance(inputs, np.ndarray):
        inputs = list(inputs) if inputs.ndim == 4 else [inputs]
    elif isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    items = []
    for index, item in enumerate(inputs):
        if isinstance(item, (str, os.PathLike)):
            items += [(path, path) for path in image_files([item])]
        else:
            items.append((f"array[{index}]", item))
    return items


def format_predictions(results, output_format="table"):
    """The successful results of `classify` as text: a table (per image a line with its time,
    then its top classes), JSON, or CSV (one row per image and rank).

    Example:
        >>> results = [{"image": "a.png", "time_ms": 1.5, "top": [{"class": 2, "name": "cat", "score": 0.9}]}]
        >>> print(format_predictions(results))
        a.png  1.50 ms
          1. cat  0.9000
        >>> print(format_predictions(results, "csv").strip())
        image,rank,class,name,score,time_ms
        a.png,1,2,cat,0.900000,1.500
    """
    good = [result for result in results if "error" not in result]
    if output_format == "json":
        return json.dumps(good, indent=1)
    if output_format == "csv":
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["image", "rank", "class", "name", "score", "time_ms"])
        for result in good:
            for rank, entry in enumerate(result["top"], 1):
                name = entry["name"] if entry["name"] is not None else ""
                writer.writerow(
                    [result["image"], rank, entry["class"], name, f"{entry['score']:.6f}", f"{result['time_ms']:.3f}"]
                )
        return text.getvalue().rstrip("\n")
    lines = []
    for result in good:
        lines.append(f"{result['image']}  {result['time_ms']:.2f} ms")
        labels = [entry["name"] if entry["name"] is not None else f"class {entry['class']}" for entry in result["top"]]
        width = max(len(label) for label in labels)
        for rank, (label, entry) in enumerate(zip(labels, result["top"]), 1):
            lines.append(f"  {rank}. {label.ljust(width)}  {entry['score']:.4f}")
    return "\n".join(lines)


def conversion_note(results):
    """One line saying how many images had their channels converted, or None.

    Example:
        >>> conversion_note([{"converted": "RGB to grey"}, {"converted": None}])
        'note: converted 1 of 2 images from RGB to grey (the model takes grey images)'
    """
    done = [result["converted"] for result in results if result.get("converted")]
    if not done:
        return None
    kinds = sorted(set(done))
    wanted = kinds[0].split(" to ")[1]
    sources = " and ".join(kind.split(" to ")[0] for kind in kinds)
    converted = f"converted {len(done)} of {len(results)} images from {sources} to {wanted}"
    return f"note: {converted} (the model takes {wanted} images)"


def build_parser():
    parser = OneLineParser(
        prog="bcnn-predict",
        description="Classify PNG/JPEG images (files or folders) with a bit-packed LCE .tflite file "
        "(from bcnn-export).",
        epilog="Class names: --classes FILE, else the names inside MODEL, else classes.json next to MODEL, else "
        "class numbers. A bad image is reported on stderr and skipped (exit status 2); a bad model is one "
        "'error:' line and exit status 2.",
    )
    parser.add_argument("model", metavar="MODEL.tflite", help="a bit-packed .tflite file")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="PNG or JPEG images, or folders of them (recursive)")
    parser.add_argument("--top-k", type=int, default=3, help="classes shown per image (default: %(default)s)")
    parser.add_argument(
        "--classes", metavar="FILE", help="class names: a JSON list of strings, or an export report (--report)"
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: %(default)s)")
    parser.add_argument("--json", dest="format", action="store_const", const="json", help="the same as --format json")
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
    progress = Progress("classifying")  # made before the capture: it draws on the terminal
    try:
        with contextlib.nullcontext() if args.verbose else export.captured_stderr():
            results = classify(args.model, args.images, top_k=args.top_k, classes_path=args.classes, progress=progress)
    except PredictError as error:
        return fail(error, EXIT_BAD_INPUT)
    except Exception as error:
        if args.verbose:
            raise
        return fail(f"unexpected {type(error).__name__}: {error} (rerun with --verbose)", EXIT_UNEXPECTED)
    output = format_predictions(results, args.format)
    if output:
        print(output)
    note = conversion_note(results)
    if note:
        print(note, file=sys.stderr)
    bad = [result for result in results if "error" in result]
    for result in bad:
        fail(f"{result['error']} (skipped)", EXIT_BAD_INPUT)
    if not results:
        return fail("no images found in " + ", ".join(args.images), EXIT_BAD_INPUT)
    return EXIT_BAD_INPUT if bad else 0


if __name__ == "__main__":
    sys.exit(main())
