"""From a trained Keras model to a bit-packed Larq Compute Engine flatbuffer.

`export()` is the pipeline behind `export/to_tflite.py`; every step is also public:

    load_model -> prepare (phase 2, float32) -> check_model -> lint -> rewrite -> convert
    -> census -> parity -> latency_x86 -> report

LCE's converter fails silently in several ways (a `QuantDense` stays float32, a grouped binary
conv with the wrong channel count falls back to float, `ste_tern` inputs miscompile, a failed
SavedModel conversion falls back to another path with only a warning). Each step here turns one
of those into a clear `ExportError` or an exact rewrite, and the census and parity check prove
what the written file computes.
"""

import collections
import contextlib
import json
import os
import platform
import re
import sys
import tempfile
import time
import types
import warnings
from typing import NamedTuple

import larq as lq
import larq_compute_engine as lce
import numpy as np
import tensorflow as tf
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema

import bcnn_keras
from bcnn_keras import loading
from bcnn_keras.data import DatasetNotFoundError, load_fashion_mnist_arrays
from bcnn_keras.layers import PhasedSign, get_phase, set_phase

_BUILTIN_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

TARGETS = ("arm", "xcore")
BINARY_CONV_OP = "LceBconv2d"
FLOAT_MATRIX_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")


class ExportError(Exception):
    """A bad input or a failed check, as one line (the CLI prints it and exits with 2).

    `report` holds the report so far when the failure came after conversion (e.g. parity).

    Example:
        >>> str(ExportError("model.keras: no such file"))
        'model.keras: no such file'
    """

    def __init__(self, message, report=None):
        super().__init__(" ".join(str(message).split()))
        self.report = report


class Finding(NamedTuple):
    """A layer that LCE would not run as a plain binary op, and why.

    `kind` says what the exporter does about it:
    `"refused"` (never exported: it would miscompile), `"float"` (stays float; needs
    `allow_float`), `"rewrite"` (rewritten exactly into a binary form), `"slow"` (binary, but a
    slower form) or `"unverified"` (custom quantizer; binary only if LCE recognises it).

    Example:
        >>> Finding("head", "plain Keras Dense: float32 weights and activations", "float").kind
        'float'
    """

    layer: str
    reason: str
    kind: str


# ---------------------------------------------------------------------------------------------
# Loading and preparation


def load_model(path, *, safe_mode=True, custom_objects=None):
    """`loading.load_model` with its errors as `ExportError`: a `.keras` file, an `.h5` file or a
    SavedModel directory; a model that stores Python code (a `Lambda`) is refused unless
    `safe_mode=False`.

    Example:
        >>> model = load_model("runs/fashion_mnist/model.keras")
    """
    try:
        return loading.load_model(path, safe_mode=safe_mode, custom_objects=custom_objects)
    except loading.ModelFileError as error:
        raise ExportError(error) from error


def prepare(model):
    """Returns `(model, warnings)`: `model` rebuilt as float32 if needed, in training phase 2.

    A bcnn_keras model in phase 1 (or with mixed phases) is switched to phase 2 in place, with a
    warning: phase 2 is what LCE stores as bits. Plain larq models have no phase. A
    mixed-precision model is rebuilt from its config under a float32 policy with the same
    weights, because LCE only converts float32 graphs.

    Example:
        >>> model, notes = prepare(bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10))
        >>> notes
        []
    """
    notes = []
    if _needs_float32(model):
        model = _float32_clone(model)
        notes.append("model used a mixed-precision dtype policy: rebuilt as float32 with the same weights")
    if _is_phased(model):
        try:
            phase = get_phase(model)
        except ValueError:  # mixed phases
            phase = None
        if phase != 2:
            state = "in training phase 1 (real-valued weights)" if phase == 1 else "in mixed phases"
            notes.append(f"model was {state}: exported in phase 2, with the signs of its weights")
            set_phase(model, 2)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return model, notes


def _is_phased(model):
    """Whether `model` has bcnn_keras' two-phase kernels (plain larq models have none)."""
    return any(isinstance(module, PhasedSign) for module in model.submodules)


def _needs_float32(model):
    return any(layer.dtype_policy.name != "float32" for layer in [model, *_leaf_layers(model)])


def _float32_clone(model):
    try:
        config = _float32_config(model.get_config())
    except NotImplementedError as error:
        raise ExportError(
            f"model {model.name!r} uses mixed precision and is subclassed, so it cannot be rebuilt "
            "as float32 automatically: build it under a float32 dtype policy and load its weights"
        ) from error
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("float32")
    try:
        clone = type(model).from_config(config)
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    clone.set_weights(model.get_weights())
    return clone


def _float32_config(config):
    """`config` with every non-float32 dtype policy (string or serialized Policy) set to float32."""
    if isinstance(config, dict):
        return {
            key: "float32" if key == "dtype" and _is_policy(value) else _float32_config(value)
            for key, value in config.items()
        }
    if isinstance(config, list):
        return [_float32_config(item) for item in config]
    return config


def _is_policy(value):
    if isinstance(value, dict):
        return value.get("class_name") in ("Policy", "DTypePolicy")
    return isinstance(value, str) and value.startswith("mixed_")


def check_model(model):
    """Raises `ExportError` unless every input has a fixed size and every weight is finite.

    Example:
        >>> check_model(bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10))
    """
    if not model.inputs:
        raise ExportError(f"model {model.name!r} has no known inputs: build or call it once before exporting")
    for tensor in model.inputs:
        if None in tensor.shape[1:]:
            raise ExportError(
                f"input {tensor.name!r} has shape {tuple(tensor.shape)}: LCE needs a fixed height, "
                "width and channel count (only the batch size may be unknown); rebuild the model "
                "with a fixed input_shape"
            )
    for layer in _leaf_layers(model):
        for variable in layer.weights:
            if variable.dtype.is_floating and not np.all(np.isfinite(variable.numpy())):
                raise ExportError(
                    f"layer {layer.name!r}: weight {variable.name} holds NaN or infinite values "
                    "(the model diverged during training, or the file is damaged)"
                )


# ---------------------------------------------------------------------------------------------
# Lint: which layers LCE keeps in float, and why

_LARQ_MATRIX_LAYERS = (
    lq.layers.QuantizerBase,
    lq.layers.QuantizerDepthwiseBase,
    lq.layers.QuantizerSeparableBase,
)
_KERAS_MATRIX_LAYERS = tuple(
    getattr(tf.keras.layers, name)
    for name in (
        "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
        "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
        "Dense", "EinsumDense", "LocallyConnected1D", "LocallyConnected2D",
    )
    if hasattr(tf.keras.layers, name)
)
# The signs LCE recognises (checked by conversion): on inputs and on kernels.
_SIGN_QUANTIZERS = (lq.quantizers.SteSign, lq.quantizers.ApproxSign, lq.quantizers.SwishSign)
_SIGN_FUNCTIONS = ("ste_sign", "approx_sign", "swish_sign")
_KERNEL_ONLY_SIGNS = ("MagnitudeAwareSign", "magnitude_aware_sign")
_BINARY_STATUSES = ("binary", "slow", "rewrite")


def _quantizer_name(quantizer):
    return getattr(quantizer, "__name__", type(quantizer).__name__)


def _quantizer_kind(quantizer, kernel=False):
    """"none", "ternary", "sign", "other" (known not to be a sign) or "custom" (unknown 1-bit)."""
    if quantizer is None:
        return "none"
    name = _quantizer_name(quantizer)
    if re.search(r"Tern|(^|_)tern", name):  # SteTern, ste_tern, MyTernary; not "PatternSign"
        return "ternary"
    if type(quantizer) in _SIGN_QUANTIZERS or name in _SIGN_FUNCTIONS:
        return "sign"
    if kernel and name in _KERNEL_ONLY_SIGNS:
        return "sign"
    if isinstance(quantizer, PhasedSign):
        return "sign" if kernel and quantizer.phase == 2 else "other"
    if isinstance(quantizer, lq.quantizers.NoOp) and quantizer.precision == 1:
        return "custom"  # declares its input already binary: LCE decides from the graph
    from_larq = getattr(quantizer, "__module__", type(quantizer).__module__).startswith("larq.")
    if from_larq or getattr(quantizer, "precision", 1) != 1:
        return "other"
    return "custom"


def _classify(layer, target):
    """`(status, reason)`: status is None for layers without a matrix multiply, "binary", or a
    `Finding` kind."""
    if isinstance(layer, _LARQ_MATRIX_LAYERS):
        input_kind = _quantizer_kind(layer.input_quantizer)
        if input_kind == "ternary":
            return "refused", (
                f"ternary input quantizer {_quantizer_name(layer.input_quantizer)}: LCE lowers it to a "
                "binary conv that drops the zero level, which gives silently wrong outputs"
            )
        if isinstance(layer, lq.layers.QuantConv2D):
            return _classify_conv(layer, input_kind, target)
        if isinstance(layer, lq.layers.QuantDense):
            return _classify_dense(layer, input_kind)
        return "float", f"{type(layer).__name__}: LCE has no binary kernel for it and runs it in float"
    if isinstance(layer, _KERAS_MATRIX_LAYERS):
        return "float", f"plain Keras {type(layer).__name__}: float32 weights and activations"
    return None, None


def _not_binary_reason(layer, input_kind, op):
    """Why a larq conv or dense layer is not 1-bit x 1-bit, or None if it is (or may be)."""
    kernel_kind = _quantizer_kind(layer.kernel_quantizer, kernel=True)
    if input_kind == "none":
        return f"kernel-only quantized (no input quantizer): {op} with float32 weights"
    if input_kind == "other":
        return f"input quantizer {_quantizer_name(layer.input_quantizer)} is not a sign: {op} in float"
    if kernel_kind == "none":
        return f"no kernel quantizer: real-valued weights, {op} in float"
    if kernel_kind in ("other", "ternary"):
        return f"kernel quantizer {_quantizer_name(layer.kernel_quantizer)} is not binary: {op} in float"
    return None


def _classify_conv(layer, input_kind, target):
    reason = _not_binary_reason(layer, input_kind, "CONV_2D")
    if reason:
        return "float", reason
    channels_per_group = int(layer.kernel.shape[-2])
    if layer.groups > 1 and channels_per_group % 32:
        return "float", (
            f"grouped binary conv with {channels_per_group} input channels per group: LCE needs a "
            "multiple of 32 and falls back to float CONV_2D"
        )
    if "custom" in (input_kind, _quantizer_kind(layer.kernel_quantizer, kernel=True)):
        return "unverified", (
            "custom quantizer: LCE makes this conv binary only if the forward pass is "
            "larq.math.sign; check parity"
        )
    if layer.padding == "same" and layer.pad_values == 0:
        if tuple(layer.kernel_size) == (1, 1):
            return "rewrite", "zero-padded 1x1 binary conv: rewritten with padding='valid' (no padding happens)"
        if target == "xcore":
            return "float", (
                "zero-padded binary conv: on target xcore LCE falls back to float CONV_2D; use pad_values=1.0"
            )
        return "slow", (
            "zero-padded binary conv: LceBconv2d plus an edge correction and no fused output; "
            "pad_values=1.0 is faster"
        )
    return "binary", None


def _classify_dense(layer, input_kind):
    reason = _not_binary_reason(layer, input_kind, "FULLY_CONNECTED")
    if reason:
        return "float", reason
    if "custom" in (input_kind, _quantizer_kind(layer.kernel_quantizer, kernel=True)):
        return "float", "QuantDense with a custom quantizer: LCE keeps FULLY_CONNECTED with float32 weights"
    if _input_rank(layer) != 2:
        return "float", "QuantDense on a feature map: LCE keeps FULLY_CONNECTED with float32 weights"
    return "rewrite", (
        "binary QuantDense: LCE would keep FULLY_CONNECTED with float32 weights; rewritten as "
        "Reshape -> 1x1 binary QuantConv2D -> Reshape"
    )


def _input_rank(layer):
    try:
        return len(layer.input_shape)
    except (AttributeError, RuntimeError):  # never called, or shared with several shapes
        return None


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def lint(model, target="arm"):
    """Lists every layer LCE would not lower to a plain binary op (`Finding`s), with the reason.

    Example:
        >>> lint(bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10))
        []
    """
    findings = []
    for layer in _leaf_layers(model):
        status, reason = _classify(layer, target)
        if status not in (None, "binary"):
            findings.append(Finding(layer.name, reason, status))
    return findings


def binary_layers(model, target="arm"):
    """The layers of `model` that LCE lowers to `LceBconv2d` (directly or after a rewrite).

    Example:
        >>> len(binary_layers(bcnn_keras.BCNN18()))
        18
    """
    return [layer for layer in _leaf_layers(model) if _classify(layer, target)[0] in _BINARY_STATUSES]


def _expected_binary_convs(model, target):
    """How many `LceBconv2d` ops LCE must produce for `model` (each rewrite gives one)."""
    return len(binary_layers(model, target))


def _enforce(findings, allow_float):
    refused = [f for f in findings if f.kind == "refused"]
    if refused:
        raise ExportError(f"layer {refused[0].layer!r}: {refused[0].reason}")
    floats = [f for f in findings if f.kind == "float"]
    if floats and not allow_float:
        listed = "; ".join(f"{f.layer!r} ({f.reason})" for f in floats[:3])
        more = f" and {len(floats) - 3} more" if len(floats) > 3 else ""
        raise ExportError(
            f"{len(floats)} layer(s) would run in float: {listed}{more}. Pass --allow-float "
            "(allow_float=True) to export them anyway"
        )


# ---------------------------------------------------------------------------------------------
# Exact rewrites


def rewrite(model):
    """Returns `model` with every exactly rewritable layer rewritten (see `lint`, kind "rewrite").

    A binary `QuantDense` becomes `Reshape((1, 1, C))` -> 1x1 binary `QuantConv2D` -> `Reshape`
    (a nested `Sequential` with the dense layer's name and weights), which LCE lowers to
    `LceBconv2d`; a zero-padded 1x1 binary conv gets `padding="valid"`. The outputs are
    unchanged. Other layers are shared with `model`; `model` itself is not modified.

    Example:
        >>> x = tf.keras.Input((64,))
        >>> y = lq.layers.QuantDense(10, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
        >>> [type(layer).__name__ for layer in rewrite(tf.keras.Model(x, y)).layers]
        ['InputLayer', 'Sequential']
    """
    rewritable = [layer.name for layer in _leaf_layers(model) if _classify(layer, "arm")[0] == "rewrite"]
    if not rewritable:
        return model
    if not (isinstance(model, tf.keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise ExportError(
            f"model {model.name!r} is subclassed, so layer {rewritable[0]!r} cannot be rewritten into "
            "its binary form: build the model with the functional API"
        )
    return tf.keras.models.clone_model(model, clone_function=_rewrite_layer)


def _rewrite_layer(layer):
    if isinstance(layer, tf.keras.Model):
        return rewrite(layer)
    if _classify(layer, "arm")[0] != "rewrite":
        return layer
    if isinstance(layer, lq.layers.QuantDense):
        return _dense_as_conv(layer)
    return _with_valid_padding(layer)


def _dense_as_conv(dense):
    channels, units = (int(d) for d in dense.kernel.shape)
    config = dense.get_config()
    name = config.pop("name")
    del config["units"]
    conv = lq.layers.QuantConv2D.from_config(
        {**config, "filters": units, "kernel_size": 1, "padding": "valid", "name": f"{name}_conv"}
    )
    conv.build(tf.TensorShape([None, 1, 1, channels]))
    _copy_weights(dense, conv)
    # No Input layer: clone_model miscounts the nodes of a layer that brings its own.
    return tf.keras.Sequential(
        [
            tf.keras.layers.Reshape((1, 1, channels), name=f"{name}_to_map"),
            conv,
            tf.keras.layers.Reshape((units,), name=f"{name}_to_vector"),
        ],
        name=name,
    )


def _with_valid_padding(conv):
    copy = type(conv).from_config({**conv.get_config(), "padding": "valid"})
    copy.build(tf.TensorShape([None, None, None, int(conv.kernel.shape[-2]) * conv.groups]))
    _copy_weights(conv, copy)
    return copy


def _copy_weights(source, target):
    """Copies weights in order; the kernel is reshaped (a dense kernel is a 1x1 conv kernel)."""
    for source_weight, target_weight in zip(source.weights, target.weights, strict=True):
        target_weight.assign(tf.reshape(source_weight, target_weight.shape))


# ---------------------------------------------------------------------------------------------
# Conversion


@contextlib.contextmanager
def captured_stderr():
    """Redirects file descriptor 2 (C++ logs and MLIR diagnostics included) for the block.

    The captured text is in `.text` after the block.

    Example:
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


def _serving_function(model):
    specs = [
        tf.TensorSpec((1, *tensor.shape[1:]), tensor.dtype, name=name)
        for tensor, name in zip(model.inputs, model.input_names)
    ]
    output_names = model.output_names or [f"output_{i}" for i in range(len(model.outputs))]

    def serve(*inputs):
        outputs = model(inputs[0] if len(inputs) == 1 else list(inputs), training=False)
        return dict(zip(output_names, tf.nest.flatten(outputs)))

    # Autograph adds nothing for Keras layers and made tracing a small BCNN 10x slower.
    return tf.function(serve, autograph=False).get_concrete_function(*specs)


def _convert(model, target):
    """`(flatbuffer, converter diagnostics)`.

    Saves a SavedModel of the inference function and calls LCE's SavedModel converter directly:
    `lce.convert_keras_model` would catch its errors and retry another way with only a warning.
    Saving the traced function instead of the Keras model also skips Keras' per-layer traces
    (4x faster).
    """
    function = _serving_function(model)
    with tempfile.TemporaryDirectory() as saved_model_dir, captured_stderr() as log:
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
        detail = diagnostics[0] if diagnostics else loading.first_line(failure)
        raise ExportError(f"LCE could not convert the model: {detail}") from failure
    return flatbuffer, diagnostics


def _diagnostics(text):
    """The distinct MLIR errors and warnings in the converter's output, without locations."""
    messages = []
    for line in text.splitlines():
        match = re.search(r"(?:^|\): )(error|warning): (.+)$", line.strip())
        message = match and f"LCE {match.group(1)}: {match.group(2).strip()}"
        if message and message not in messages:
            messages.append(message)
    return messages


def convert(model, target="arm"):
    """Converts `model` with LCE (in training phase 2 for bcnn_keras models) to flatbuffer bytes.

    Example:
        >>> flatbuffer = convert(bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10))
        >>> op_counts(flatbuffer)["LceBconv2d"]
        18
    """
    if _is_phased(model):
        set_phase(model, 2)
    return _convert(model, target)[0]


# ---------------------------------------------------------------------------------------------
# Reading the flatbuffer back


def read_flatbuffer(flatbuffer):
    """Parses a `.tflite` flatbuffer (bytes) into TFLite's object API (`schema.ModelT`).

    Example:
        >>> len(read_flatbuffer(flatbuffer).subgraphs)
        1
    """
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))


def op_name(model_t, operator):
    """The op type of `operator`: the custom code for LCE ops, else the builtin name.

    Example:
        >>> model_t = read_flatbuffer(flatbuffer)
        >>> op_name(model_t, model_t.subgraphs[0].operators[0])
        'SUB'
    """
    code = model_t.operatorCodes[operator.opcodeIndex]
    if code.customCode:
        return code.customCode.decode()
    return _BUILTIN_OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)]


def op_counts(flatbuffer):
    """How many ops of each type the flatbuffer's main graph holds.

    Example:
        >>> op_counts(convert(bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10)))["LceBconv2d"]
        18
    """
    model_t = read_flatbuffer(flatbuffer)
    return collections.Counter(op_name(model_t, op) for op in model_t.subgraphs[0].operators)


def _macs(graph, operator, name):
    """Multiply-accumulates of one conv or fully-connected op, from its tensor shapes."""
    shape = lambda index: [int(d) for d in graph.tensors[index].shape]  # noqa: E731
    output = shape(operator.outputs[0])
    if name == BINARY_CONV_OP:
        filters, height, width, words = shape(operator.inputs[1])
        channels_in = flexbuffers.Loads(bytes(operator.customOptions))["channels_in"]
        # Grouped bconvs pack each group's channels (a multiple of 32) into the filter words.
        per_group = min(channels_in, 32 * words)
        return int(np.prod(output[:-1])) * filters * height * width * per_group
    if name == "CONV_2D":
        filters, height, width, channels = shape(operator.inputs[1])
        return int(np.prod(output[:-1])) * filters * height * width * channels
    if name == "DEPTHWISE_CONV_2D":
        _, height, width, _ = shape(operator.inputs[1])
        return int(np.prod(output)) * height * width
    if name == "FULLY_CONNECTED":
        _, depth = shape(operator.inputs[1])
        return int(np.prod(output)) * depth
    if name == "TRANSPOSE_CONV":
        filters, height, width, channels = shape(operator.inputs[1])
        return int(np.prod(shape(operator.inputs[2])[:-1])) * filters * height * width * channels
    return 0


def _bytes_by_kind(model_t, graph, size):
    packed = {graph.tensors[op.inputs[1]].buffer for op in graph.operators if op_name(model_t, op) == BINARY_CONV_OP}
    kinds = collections.Counter(bitpacked_weights=0, float_parameters=0, other_constants=0)
    counted = set()
    for tensor in graph.tensors:
        data = model_t.buffers[tensor.buffer].data
        if data is None or tensor.buffer in counted:
            continue
        counted.add(tensor.buffer)
        if tensor.buffer in packed:
            kinds["bitpacked_weights"] += len(data)
        elif tensor.type in (schema.TensorType.FLOAT32, schema.TensorType.FLOAT16):
            kinds["float_parameters"] += len(data)
        else:
            kinds["other_constants"] += len(data)
    kinds["graph_and_metadata"] = size - sum(kinds.values())
    return dict(kinds)


def predicted_size_bytes(model):
    """The model size `lq.models.summary` predicts (its "Model size"), in bytes; None if larq
    cannot profile the model.

    Example:
        >>> predicted_size_bytes(bcnn_keras.BCNN18())  # about 1.4 MB
    """
    try:
        return int(round(lq.models.ModelProfile(model).memory / 8))
    except Exception:  # larq's profiler gives up on some layer types; the prediction is optional
        return None


def census(flatbuffer, model=None):
    """What the flatbuffer holds: ops by type, binary vs float MACs, bytes by kind.

    MACs are computed from the tensor shapes of `LceBconv2d` (binary) and `CONV_2D`,
    `DEPTHWISE_CONV_2D`, `FULLY_CONNECTED`, `TRANSPOSE_CONV` (float) ops;
    `binary_mac_fraction` is the share of them run by `LceBconv2d`. With `model`, the result
    also has the size `lq.models.summary` predicts for it.

    Example:
        >>> census(convert(bcnn_keras.BCNN18()))["binary_mac_fraction"]
        1.0
    """
    model_t = read_flatbuffer(flatbuffer)
    graph = model_t.subgraphs[0]
    ops = collections.Counter()
    macs = {"binary": 0, "float": 0}
    float_ops = []
    for operator in graph.operators:
        name = op_name(model_t, operator)
        ops[name] += 1
        count = _macs(graph, operator, name)
        if name == BINARY_CONV_OP:
            macs["binary"] += count
        elif name in FLOAT_MATRIX_OPS:
            macs["float"] += count
            output = graph.tensors[operator.outputs[0]].name.decode(errors="replace")
            float_ops.append({"op": name, "output": output, "macs": count})
    total = sum(macs.values())
    result = {
        "size_bytes": len(flatbuffer),
        "ops": dict(ops.most_common()),
        "macs": macs,
        "binary_mac_fraction": macs["binary"] / total if total else None,
        "bytes": _bytes_by_kind(model_t, graph, len(flatbuffer)),
        "float_ops": float_ops,
    }
    if model is not None:
        result["predicted_size_bytes"] = predicted_size_bytes(model)
    return result


def _cross_check(result, model, findings, target, allow_float, diagnostics):
    """Catches LCE's silent fallbacks: compares the census with what lint predicted."""
    expected = _expected_binary_convs(model, target)
    made = result["ops"].get(BINARY_CONV_OP, 0)
    detail = f" ({diagnostics[0]})" if diagnostics else ""
    if made < expected:
        raise ExportError(
            f"LCE made {made} binary convolutions where {expected} were expected: it silently kept "
            f"{expected - made} in float{detail}"
        )
    unverified = sum(f.kind == "unverified" for f in findings)
    notes = []
    if made > expected + unverified:
        notes.append(f"LCE made {made - expected} more binary convolutions than lint predicted; check parity")
    predicted_float = any(f.kind == "float" for f in findings)
    if result["float_ops"] and not predicted_float:
        outputs = ", ".join(op["output"] for op in result["float_ops"][:3])
        count = len(result["float_ops"])
        message = f"LCE kept {count} matrix op(s) in float that lint did not predict: {outputs}{detail}"
        if not allow_float:
            raise ExportError(message + ". Pass --allow-float (allow_float=True) to export anyway")
        notes.append(message)
    return notes


# ---------------------------------------------------------------------------------------------
# Verification


def _fashion_mnist_test():
    try:
        return load_fashion_mnist_arrays("test")
    except DatasetNotFoundError as error:
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
        raise ExportError(f"{path}: cannot read verification data ({loading.first_line(error)})") from error


def verification_data(source, input_shape, samples=1000, seed=0):
    """`(x, y or None, description)`: at most `samples` inputs to compare Keras and LCE on.

    `source` is `"random"` (raw pixels 0..255), `"fashion_mnist"` (the test split), the path of
    a `.npz` file with arrays `x` and optionally `y` (labels or one-hot), or an `(x, y)` tuple.

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
    elif str(source).endswith(".npz"):
        (x, y), about = _load_npz(source), os.path.basename(str(source))
    else:
        raise ExportError(f"verification data must be fashion_mnist, random or a .npz path, got {source!r}")
    x = np.asarray(x)
    if x.ndim == 0:
        raise ExportError(f"verification inputs ({about}) must be an array of inputs, got a scalar")
    x = x[:samples]
    if x.shape[1:] != input_shape:
        raise ExportError(f"verification inputs ({about}) have shape {x.shape[1:]} but the model takes {input_shape}")
    if len(x) == 0 or x.dtype.kind not in "uif":
        raise ExportError(f"verification inputs ({about}) must be a non-empty array of numbers, got {len(x)} of {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ExportError(f"verification inputs ({about}) hold NaN or infinite values")
    if y is not None:
        y = np.asarray(y)
        if y.ndim not in (1, 2) or y.shape[-1] == 0 or y.dtype.kind not in "uif" or not np.all(np.isfinite(y)):
            raise ExportError(f"verification labels ({about}) must be class indices or one-hot rows, got {y.dtype} of shape {y.shape}")
        y = (y.argmax(-1) if y.ndim == 2 else y)[:samples]
        if len(y) != len(x):
            raise ExportError(f"verification data ({about}) has {len(x)} inputs but {len(y)} labels")
    return x, y, about


def _keras_outputs(model, x, batch_size=32):
    # A graph without autograph: `model.predict` spent 30 s on autograph for a small BCNN, and
    # eager calls took 0.2 s per 224x224 image.
    spec = tf.TensorSpec((None, *x.shape[1:]), model.inputs[0].dtype)
    infer = tf.function(lambda batch: model(batch, training=False), autograph=False, input_signature=[spec])
    return np.concatenate([infer(x[i : i + batch_size]).numpy() for i in range(0, len(x), batch_size)])


def parity(model, flatbuffer, x, y=None):
    """Runs Keras and the LCE interpreter (indirect BGEMM) on `x` and compares the outputs.

    Returns top-1 agreement, max and mean absolute output difference and, with labels `y`,
    both accuracies. Outputs are flattened per sample, so top-1 is over all output values.

    Example:
        >>> parity(model, convert(model), x)["top1_agreement"]
        1.0
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExportError("parity needs a model with one input and one output")
    x = np.asarray(x).astype(model.inputs[0].dtype.as_numpy_dtype)
    expected = _keras_outputs(model, x).reshape(len(x), -1)
    interpreter = lce.testing.Interpreter(flatbuffer, num_threads=os.cpu_count() or 1, use_indirect_bgemm=True)
    actual = np.asarray(interpreter.predict(x)).reshape(len(x), -1)
    difference = np.abs(expected.astype("float64") - actual)
    result = {
        "samples": len(x),
        "top1_agreement": float(np.mean(expected.argmax(1) == actual.argmax(1))),
        "max_abs_diff": float(difference.max()),
        "mean_abs_diff": float(difference.mean()),
    }
    if y is not None:
        result["keras_accuracy"] = float(np.mean(expected.argmax(1) == y))
        result["tflite_accuracy"] = float(np.mean(actual.argmax(1) == y))
    return result


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def latency_summary(timings_ms):
    """Median, mean, min and p10/p90 of latency timings (ms), as a report's `*_ms` fields.

    Example:
        >>> latency_summary([3.0, 1.0, 2.0])["median_ms"]
        2.0
    """
    return {
        "median_ms": float(np.median(timings_ms)),
        "mean_ms": float(np.mean(timings_ms)),
        "min_ms": float(np.min(timings_ms)),
        "p10_ms": float(np.percentile(timings_ms, 10)),
        "p90_ms": float(np.percentile(timings_ms, 90)),
    }


def latency_x86(
    flatbuffer, runs=20, warmup=3, *, threads=1, indirect_bgemm=True, xnnpack=False, keep_timings=False
):
    """Single-image latency of the flatbuffer on this (x86) host, in milliseconds.

    LCE interpreter, by default 1 thread with the indirect BGEMM kernel (the default x86 kernel
    is a slow reference path); `xnnpack=True` delegates the float ops to XNNPACK. The report
    holds the summary; `keep_timings=True` adds every run's time as `timings_ms`. On-device
    numbers come from `export/benchmark_on_device.py`.

    Example:
        >>> latency_x86(convert(bcnn_keras.BCNN18()))["median_ms"]
    """
    runs = max(10, int(runs))
    interpreter = lce.testing.Interpreter(
        flatbuffer, num_threads=threads, use_indirect_bgemm=indirect_bgemm, use_xnnpack=xnnpack
    )
    inputs = [np.zeros(shape, dtype) for shape, dtype in zip(interpreter.input_shapes, interpreter.input_types)]
    sample = inputs[0] if len(inputs) == 1 else inputs
    for _ in range(warmup):
        interpreter.predict(sample)
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.predict(sample)
        timings.append((time.perf_counter() - start) * 1000)
    kernel = "LCE indirect BGEMM" if indirect_bgemm else "LCE default BGEMM"
    return {
        **latency_summary(timings),
        "runs": runs,
        "warmup_runs": warmup,
        **({"timings_ms": [float(t) for t in timings]} if keep_timings else {}),
        "threads": threads,
        "kernel": kernel + (" + XNNPACK" if xnnpack else ""),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
    }


# ---------------------------------------------------------------------------------------------
# The pipeline


def _check_directory(path, what):
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise ExportError(f"{what} {path} is a directory")
    if not os.path.isdir(directory):
        raise ExportError(f"{what} directory {directory} does not exist")
    return directory


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _atomic_output(path, what="output"):
    """Yields a temporary path next to `path`; renames it to `path` if the block succeeds.

    On failure the temporary file is removed, and so is any older file at `path`: a stale model
    must never be mistaken for the result of this run.
    """
    directory = _check_directory(path, what)
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".partial")
    except OSError as error:
        raise ExportError(f"cannot write to {what} directory {directory}: {error.strerror}") from error
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private; the output should not be
        os.replace(temporary, path)
    except BaseException:
        if os.path.isfile(path):
            os.remove(path)
        raise
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_report(report, path):
    """Writes `report` as JSON, atomically.

    Example:
        >>> write_report(export(model, "model.tflite"), "report.json")
    """
    with _atomic_output(path, "report") as temporary:
        with open(temporary, "w") as file:
            json.dump(report, file, indent=2)
            file.write("\n")


def _check_options(options):
    if options.target not in TARGETS:
        raise ExportError(f"target must be one of {TARGETS}, got {options.target!r}")
    if not 0 <= options.parity_threshold <= 1:
        raise ExportError(f"parity threshold must be between 0 and 1, got {options.parity_threshold!r}")
    if options.samples < 1:
        raise ExportError(f"samples must be >= 1, got {options.samples!r}")
    if options.latency_runs and options.latency_runs < 10:
        raise ExportError(f"latency runs must be 0 (skip) or >= 10, got {options.latency_runs!r}")


def _versions():
    return {
        "bcnn_keras": bcnn_keras.__version__,
        "tensorflow": tf.__version__,
        "larq": getattr(lq, "__version__", "unknown"),
        "larq_compute_engine": getattr(lce, "__version__", "unknown"),
    }


def _base_report(source, output_path, target, result, findings, notes):
    return {
        "model": source,
        "output": os.fspath(output_path),
        "target": target,
        "size_bytes": result["size_bytes"],
        "predicted_size_bytes": result.get("predicted_size_bytes"),
        "ops": result["ops"],
        "macs": result["macs"],
        "binary_mac_fraction": result["binary_mac_fraction"],
        "bytes": result["bytes"],
        "float_layers": [{"layer": f.layer, "reason": f.reason} for f in findings if f.kind == "float"],
        "float_ops": result["float_ops"],
        "rewritten_layers": [{"layer": f.layer, "reason": f.reason} for f in findings if f.kind == "rewrite"],
        "warnings": notes + [f"layer {f.layer!r}: {f.reason}" for f in findings if f.kind in ("slow", "unverified")],
        "parity": None,
        "latency_ms_x86": None,
        "latency_x86": None,
        "versions": _versions(),
    }


def _verify(report, model, flatbuffer, data, threshold):
    x, y, about = data
    report["parity"] = {"data": about, **parity(model, flatbuffer, x, y), "threshold": threshold}
    agreement = report["parity"]["top1_agreement"]
    report["parity"]["passed"] = agreement >= threshold
    if agreement < threshold:
        raise ExportError(
            f"parity failed: Keras and LCE agree on top-1 for {agreement:.2%} of {len(x)} samples "
            f"({about}), below the threshold {threshold:.2%} (an untrained binary network flips "
            "signs under float rounding: verify a trained model)",
            report=report,
        )


class _Options(NamedTuple):
    target: str
    verify: object
    allow_float: bool
    parity_threshold: float
    samples: int
    latency_runs: int
    safe_mode: bool
    custom_objects: dict


def export(
    model_or_path,
    output_path,
    *,
    target="arm",
    verify=None,
    allow_float=False,
    parity_threshold=0.995,
    samples=1000,
    latency_runs=20,
    report_path=None,
    safe_mode=True,
    custom_objects=None,
):
    """Exports a Keras model (or model file) to a bit-packed LCE flatbuffer; returns the report.

    Steps: load, prepare (phase 2, float32), check shapes and weights, lint (float layers need
    `allow_float`; ternary inputs are refused), rewrite, convert, census, parity on `verify`
    data (see `verification_data`; fails below `parity_threshold`), x86 latency
    (`latency_runs=0` skips it). The flatbuffer is written to a temporary file and renamed to
    `output_path` only when every step passed. Raises `ExportError` (one line) on bad input or a
    failed check; on a parity failure `report_path` still gets the report. A model file that
    stores Python code (a `Lambda`) is refused unless `safe_mode=False`; `custom_objects` maps
    names of unregistered classes and functions in the file to their objects.

    Example:
        >>> report = export("model.keras", "model.tflite", verify="fashion_mnist")
        >>> report["binary_mac_fraction"], report["parity"]["top1_agreement"] >= 0.995
        (1.0, True)
    """
    options = _Options(
        target, verify, allow_float, parity_threshold, samples, latency_runs, safe_mode, custom_objects or {}
    )
    _check_options(options)
    if report_path is not None:
        _check_directory(report_path, "report")
    try:
        report = _export(model_or_path, output_path, options)
    except ExportError as error:
        if report_path is not None and error.report is not None:
            write_report(error.report, report_path)
        raise
    if report_path is not None:
        write_report(report, report_path)
    return report


def _export(model_or_path, output_path, options):
    with _atomic_output(output_path) as temporary:
        notes = []
        if isinstance(model_or_path, (str, os.PathLike)):
            source = os.fspath(model_or_path)
            model = load_model(source, safe_mode=options.safe_mode, custom_objects=options.custom_objects)
            if not options.safe_mode and loading.stored_code_layers(source):
                notes.append(f"unsafe load: ran the Python code of {', '.join(loading.stored_code_layers(source))}")
        else:
            source, model = model_or_path.name, model_or_path
        model, preparation_notes = prepare(model)
        notes += preparation_notes
        check_model(model)
        # Loaded before converting, so that bad verification data fails fast.
        data = None
        if options.verify is not None:
            data = verification_data(options.verify, model.inputs[0].shape[1:], options.samples)
        findings = lint(model, options.target)
        _enforce(findings, options.allow_float)
        flatbuffer, diagnostics = _convert(rewrite(model), options.target)
        result = census(flatbuffer, model)
        notes += _cross_check(result, model, findings, options.target, options.allow_float, diagnostics)
        report = _base_report(source, output_path, options.target, result, findings, notes + diagnostics)
        with open(temporary, "wb") as file:
            file.write(flatbuffer)
        if data is not None:
            _verify(report, model, flatbuffer, data, options.parity_threshold)
        if options.latency_runs:
            report["latency_x86"] = latency_x86(flatbuffer, runs=options.latency_runs)
            report["latency_ms_x86"] = report["latency_x86"]["median_ms"]
    return report


# ---------------------------------------------------------------------------------------------
# Printing


def _count(value):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(value)


def _parity_line(parity_result):
    if not parity_result:
        return "not run (use --verify)"
    line = (
        f"{parity_result['samples']} samples of {parity_result['data']}: top-1 agreement "
        f"{parity_result['top1_agreement']:.2%} (threshold {parity_result['threshold']:.2%}), "
        f"max |diff| {parity_result['max_abs_diff']:.3g}, mean |diff| {parity_result['mean_abs_diff']:.3g}"
    )
    if "keras_accuracy" in parity_result:
        line += f"; accuracy Keras {parity_result['keras_accuracy']:.2%}, LCE {parity_result['tflite_accuracy']:.2%}"
    return line


def _latency_line(latency):
    if not latency:
        return "not measured"
    return (
        f"{latency['median_ms']:.2f} ms median of {latency['runs']} runs ({latency['threads']} thread, "
        f"{latency['kernel']}, {latency['machine']} {latency['cpu']})"
    )


def format_report(report):
    """The report as a two-column text table.

    Example:
        >>> print(format_report(export(model, "model.tflite")))
    """
    fraction = report["binary_mac_fraction"]
    predicted = report["predicted_size_bytes"]
    size = f"{report['size_bytes']:,} bytes"
    if predicted:
        size += f" (lq.models.summary predicts {predicted:,}; file/predicted {report['size_bytes'] / predicted:.2f})"
    rows = [
        ("model", report["model"]),
        ("output", f"{report['output']} (target {report['target']})"),
        ("size", size),
        ("bytes by kind", ", ".join(f"{kind.replace('_', ' ')} {n:,}" for kind, n in report["bytes"].items())),
        (
            "binary MAC share",
            ("n/a (no conv or dense ops)" if fraction is None else f"{fraction:.2%}")
            + f" (binary {_count(report['macs']['binary'])}, float {_count(report['macs']['float'])} MACs)",
        ),
        ("ops", ", ".join(f"{name} {count}" for name, count in report["ops"].items())),
        ("float layers", "; ".join(f"{f['layer']} ({f['reason']})" for f in report["float_layers"]) or "none"),
        ("rewritten layers", ", ".join(f["layer"] for f in report["rewritten_layers"]) or "none"),
        ("parity", _parity_line(report["parity"])),
        ("latency (x86)", _latency_line(report["latency_x86"])),
    ]
    if report.get("latency_arm"):
        device = report["latency_arm"].get("device", "?")
        rows.append(("latency (arm)", f"{report['latency_ms_arm']:.2f} ms ({device})"))
    rows += [("warning", warning) for warning in report["warnings"]]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
