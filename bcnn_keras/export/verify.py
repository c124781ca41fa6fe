"""Parity: the data to verify on, and how closely Keras and the LCE interpreter agree on it."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from bcnn_keras import console, data
from bcnn_keras.data import DatasetNotFoundError, load_fashion_mnist_arrays
from bcnn_keras.export.defaults import SAMPLES
from bcnn_keras.export.errors import ExportError
from bcnn_keras.export.latency import lce_interpreter
from bcnn_keras.export.report import Parity


def verification_data(source, input_shape, samples=SAMPLES, seed=0):
    """`(x, y or None, description)`: at most `samples` inputs to compare Keras and LCE on.

    `source` is `"random"` (raw pixels 0..255), `"fashion_mnist"` (the test split),
    `"folder:PATH"` (the test split of an image folder, as the training CLI makes it by default,
    resized to the model's input), the path of a `.npz` file with arrays `x` and optionally `y`
    (labels or one-hot), or an `(x, y)` tuple.

    Example:
        >>> x, y, about = verification_data("random", (28, 28, 1), samples=10)
        >>> x.shape, y
        ((10, 28, 28, 1), None)
    """
    input_shape = tuple(input_shape)
    if isinstance(source, tuple):
        (x, y), about = source, "given arrays"
    elif source == "random":
        rng = np.random.default_rng(seed)
        x, y, about = rng.uniform(0, 255, (samples, *input_shape)).astype("float32"), None, "random pixels 0..255"
    elif source == "fashion_mnist":
        (x, y), about = _fashion_mnist_test(), "fashion_mnist test split"
    elif data.is_folder(source):
        (x, y), about = _folder_test(source, input_shape, samples), f"{source} test split"
    elif str(source).endswith(".npz"):
        (x, y), about = _load_npz(source), os.path.basename(str(source))
    else:
        raise ExportError(
            f"verification data must be fashion_mnist, folder:PATH, random or a .npz path, got {source!r}"
        )
    x = np.asarray(x)
    if x.ndim == 0:
        raise ExportError(f"verification inputs ({about}) must be an array of inputs, got a scalar")
    x = x[:samples]
    if x.shape[1:] != input_shape:
        raise ExportError(f"verification inputs ({about}) have shape {x.shape[1:]} but the model takes {input_shape}")
    if len(x) == 0 or x.dtype.kind not in "uif":
        raise ExportError(
            f"verification inputs ({about}) must be a non-empty array of numbers, got {len(x)} of {x.dtype}"
        )
    if not np.all(np.isfinite(x)):
        raise ExportError(f"verification inputs ({about}) hold NaN or infinite values")
    if y is not None:
        y = np.asarray(y)
        if y.ndim not in (1, 2) or y.shape[-1] == 0 or y.dtype.kind not in "uif" or not np.all(np.isfinite(y)):
            raise ExportError(
                f"verification labels ({about}) must be class indices or one-hot rows, got {y.dtype} of shape {y.shape}"
            )
        y = (y.argmax(-1) if y.ndim == 2 else y)[:samples]
        if len(y) != len(x):
            raise ExportError(f"verification data ({about}) has {len(x)} inputs but {len(y)} labels")
    return x, y, about


def parity(model, flatbuffer, x, y=None, progress=None):
    """Runs Keras and the LCE interpreter (indirect BGEMM) on `x` and compares the outputs.

    Returns top-1 agreement, max and mean absolute output difference and, with labels `y`,
    both accuracies. Outputs are flattened per sample, so top-1 is over all output values. A
    file with a uint8 input gets `x` rounded to whole pixel values 0..255, and so does Keras.
    `progress(done, total)` is called as the interpreter works through `x`.

    Example:
        >>> from bcnn_keras.export import convert
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> x, _, _ = verification_data("random", (8, 8, 32), samples=10)
        >>> parity(model, convert(model), x).top1_agreement
        1.0
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExportError("parity needs a model with one input and one output")
    interpreter = lce_interpreter(flatbuffer, threads=os.cpu_count() or 1)
    file_input = np.dtype(interpreter.input_types[0])
    x = np.asarray(x)
    if file_input == np.uint8:
        x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    expected = _keras_outputs(model, x.astype(model.inputs[0].dtype.as_numpy_dtype)).reshape(len(x), -1)
    actual = np.concatenate(
        [
            np.asarray(interpreter.predict(chunk)).reshape(len(chunk), -1)
            for chunk in _chunks(x.astype(file_input), progress)
        ]
    )
    difference = np.abs(expected.astype("float64") - actual)
    return Parity(
        samples=len(x),
        top1_agreement=float(np.mean(expected.argmax(1) == actual.argmax(1))),
        max_abs_diff=float(difference.max()),
        mean_abs_diff=float(difference.mean()),
        keras_accuracy=None if y is None else float(np.mean(expected.argmax(1) == y)),
        tflite_accuracy=None if y is None else float(np.mean(actual.argmax(1) == y)),
    )


def _chunks(x, progress, size=250):
    """`x` in chunks, reporting `progress(done, total)` after each."""
    for start in range(0, len(x), size):
        yield x[start : start + size]
        if progress is not None:
            progress(min(start + size, len(x)), len(x))


def checked_parity(model, flatbuffer, data, threshold, progress=None):
    """The report's `parity` entry: `parity` on `data` (from `verification_data`), with the
    threshold and whether the agreement reached it."""
    x, y, about = data
    result = parity(model, flatbuffer, x, y, progress)
    return dataclasses.replace(result, data=about, threshold=threshold, passed=result.top1_agreement >= threshold)


def parity_failure(result):
    """The error message for a `checked_parity` result that did not pass."""
    return (
        f"parity failed: Keras and LCE agree on top-1 for {result.top1_agreement:.2%} of {result.samples} "
        f"samples ({result.data}), below the threshold {result.threshold:.2%} (an untrained binary "
        "network flips signs under float rounding: verify a trained model)"
    )


def _fashion_mnist_test():
    try:
        return load_fashion_mnist_arrays("test")
    except DatasetNotFoundError as error:
        raise ExportError(error) from error


def _folder_test(source, input_shape, samples):
    """The test split of an image folder (the training CLI's default split), resized to the
    model's input: `(x, y)`; a folder of another channel count fails the caller's shape check."""
    try:
        dataset = data.make_dataset(source, "test", samples, image_size=input_shape[:2], limit=samples)
        return next(iter(dataset.as_numpy_iterator()))
    except (DatasetNotFoundError, ValueError) as error:
        raise ExportError(error) from error


def _load_npz(path):
    try:
        arrays = np.load(path, allow_pickle=False)
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise ExportError(f"{path}: a single array, not an .npz archive with arrays x (and y)")
        with arrays:
            if "x" not in arrays:
                raise ExportError(f"{path}: no array named 'x' (found {sorted(arrays.files)})")
            return arrays["x"], arrays["y"] if "y" in arrays else None
    except ExportError:
        raise
    except Exception as error:  # a corrupt file raises anything from EOFError to BadZipFile
        raise ExportError(f"{path}: cannot read verification data ({console.first_line(error)})") from error


def _keras_outputs(model, x, batch_size=32):
    # A graph without autograph: `model.predict` spent 30 s on autograph for a small BCNN, and
    # eager calls took 0.2 s per 224x224 image.
    spec = tf.TensorSpec((None, *x.shape[1:]), model.inputs[0].dtype)
    infer = tf.function(lambda batch: model(batch, training=False), autograph=False, input_signature=[spec])
    return np.concatenate([infer(x[i : i + batch_size]).numpy() for i in range(0, len(x), batch_size)])
