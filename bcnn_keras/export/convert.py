"""Conversion with LCE's SavedModel converter, with its errors and diagnostics caught."""

import contextlib
import logging
import os
import re
import sys
import tempfile
import types

import larq_compute_engine as lce
import tensorflow as tf

from bcnn_keras import console
from bcnn_keras.export.defaults import INPUT_TYPE, INPUT_TYPES, TARGET
from bcnn_keras.export.errors import ExportError
from bcnn_keras.export.prepare import in_phase_2


def convert(model, target=TARGET, input_type=INPUT_TYPE):
    """Converts `model` with LCE (in training phase 2 for bcnn_keras models) to flatbuffer bytes.

    A bcnn_keras model in phase 1 is converted from a copy in phase 2: `model` keeps its phase.
    `input_type="uint8"` makes a file that takes raw uint8 pixels (see `convert_with_diagnostics`).

    Example:
        >>> from bcnn_keras.export import op_counts
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> bcnn_keras.set_phase(model, 1)
        >>> flatbuffer = convert(model)
        >>> op_counts(flatbuffer)["LceBconv2d"], bcnn_keras.get_phase(model)
        (1, 1)
    """
    return convert_with_diagnostics(in_phase_2(model), target, input_type)[0]


def convert_with_diagnostics(model, target, input_type=INPUT_TYPE):
    """`(flatbuffer, converter diagnostics)` of `model` as it is.

    `input_type="uint8"` gives the file a uint8 input (raw camera bytes), cast to float32 in
    front of the model: LCE's converter refuses integer input for a graph that is not integer
    quantized, so the cast is part of the converted graph (one `CAST` op).

    Saves a SavedModel of the inference function and calls LCE's SavedModel converter directly:
    `lce.convert_keras_model` would catch its errors and retry another way with only a warning.
    Saving the traced function instead of the Keras model also skips Keras' per-layer traces
    (4x faster).
    """
    if input_type not in INPUT_TYPES:
        raise ExportError(f"input type must be one of {', '.join(INPUT_TYPES)}, got {input_type!r}")
    function = _serving_function(model, input_type)
    with tempfile.TemporaryDirectory() as saved_model_dir, captured_stderr() as log, _without_info_logs():
        module = tf.Module()
        module.model_variables = list(model.variables)  # the SavedModel must track what the function captures
        tf.saved_model.save(module, saved_model_dir, signatures=function)
        try:
            flatbuffer = lce.convert_saved_model(saved_model_dir, target=target)
        except Exception as error:
            failure = error
        else:
            failure = None
    diagnostics = _diagnostics(log.text)
    if failure is not None:
        detail = diagnostics[0] if diagnostics else console.first_line(failure)
        raise ExportError(f"LCE could not convert the model: {detail}") from failure
    return flatbuffer, diagnostics


@contextlib.contextmanager
def captured_stderr():
    """Redirects file descriptor 2 (C++ logs and MLIR diagnostics included) for the block.

    The captured text is in `.text` after the block.

    Example:
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> with captured_stderr() as log:
        ...     flatbuffer = convert(model)
        >>> "error:" in log.text
        False
    """
    sys.stderr.flush()
    saved = os.dup(2)
    capture = types.SimpleNamespace(text="")
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield capture
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            capture.text = sink.read().decode(errors="replace")


@contextlib.contextmanager
def _without_info_logs():
    """Holds back TensorFlow's Python INFO lines (such as "Assets written to" a temporary
    SavedModel): they go to `sys.stderr`, which a notebook does not route through fd 2."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _serving_function(model, input_type=INPUT_TYPE):
    specs = [
        tf.TensorSpec((1, *tensor.shape[1:]), input_type if input_type != INPUT_TYPE else tensor.dtype, name=name)
        for tensor, name in zip(model.inputs, model.input_names)
    ]
    output_names = model.output_names or [f"output_{i}" for i in range(len(model.outputs))]

    def serve(*inputs):
        inputs = [tf.cast(x, tensor.dtype) if x.dtype != tensor.dtype else x for x, tensor in zip(inputs, model.inputs)]
        outputs = model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)
        return dict(zip(output_names, tf.nest.flatten(outputs)))

    # Autograph adds nothing for Keras layers and made tracing a small BCNN 10x slower.
    return tf.function(serve, autograph=False).get_concrete_function(*specs)


def _diagnostics(text):
    """The distinct MLIR errors and warnings in the converter's output, without locations."""
    messages = []
    for line in text.splitlines():
        match = re.search(r"(?:^|\): )(error|warning): (.+)$", line.strip())
        message = match and f"LCE {match.group(1)}: {match.group(2).strip()}"
        if message and message not in messages:
            messages.append(message)
    return messages
