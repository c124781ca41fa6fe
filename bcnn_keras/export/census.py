"""Reading the flatbuffer back: ops, binary vs float MACs and bytes, checked against the lint."""

import collections

import larq as lq
import numpy as np
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema

from bcnn_keras.export.errors import ExportError
from bcnn_keras.export.report import Census

BINARY_CONV_OP = "LceBconv2d"
FLOAT_MATRIX_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
_BUILTIN_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def read_flatbuffer(flatbuffer):
    """Parses a `.tflite` flatbuffer (bytes) into TFLite's object API (`schema.ModelT`).

    Example:
        >>> from bcnn_keras.export import convert
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> flatbuffer = convert(model)
        >>> len(read_flatbuffer(flatbuffer).subgraphs)
        1
    """
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))


def op_name(model_t, operator):
    """The op type of `operator`: the custom code for LCE ops, else the builtin name.

    Example:
        >>> from bcnn_keras.export import convert
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> model_t = read_flatbuffer(convert(model))
        >>> op_name(model_t, model_t.subgraphs[0].operators[0])
        'LceQuantize'
    """
    code = model_t.operatorCodes[operator.opcodeIndex]
    if code.customCode:
        return code.customCode.decode()
    return _BUILTIN_OP_NAMES[max(code.builtinCode, code.deprecatedBuiltinCode)]


def op_counts(flatbuffer):
    """How many ops of each type the flatbuffer's main graph holds.

    Example:
        >>> from bcnn_keras.export import convert
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> op_counts(convert(model))
        Counter({'LceQuantize': 1, 'LceBconv2d': 1})
    """
    model_t = read_flatbuffer(flatbuffer)
    return collections.Counter(op_name(model_t, op) for op in model_t.subgraphs[0].operators)


def predicted_size_bytes(model):
    """The model size `lq.models.summary` predicts (its "Model size"), in bytes; None if larq
    cannot profile the model.

    Example:
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> predicted_size_bytes(model)  # 3 x 3 x 32 x 8 one-bit weights
        288
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
        >>> from bcnn_keras.export import convert
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> census(convert(model)).binary_mac_fraction
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
    return Census(
        size_bytes=len(flatbuffer),
        ops=dict(ops.most_common()),
        macs=macs,
        binary_mac_fraction=macs["binary"] / total if total else None,
        bytes=_bytes_by_kind(model_t, graph, len(flatbuffer)),
        float_ops=float_ops,
        predicted_size_bytes=predicted_size_bytes(model) if model is not None else None,
    )


def cross_check(result, classification, allow_float, diagnostics):
    """Catches LCE's silent fallbacks: compares the census `result` with the lint's
    `classification`; returns notes for the report, or raises `ExportError`."""
    expected = len(classification.binary_layers)
    made = result.ops.get(BINARY_CONV_OP, 0)
    detail = f" ({diagnostics[0]})" if diagnostics else ""
    if made < expected:
        raise ExportError(
            f"LCE made {made} binary convolutions where {expected} were expected: it silently kept "
            f"{expected - made} in float{detail}"
        )
    findings = classification.findings
    unverified = sum(f.kind == "unverified" for f in findings)
    notes = []
    if made > expected + unverified:
        notes.append(f"LCE made {made - expected} more binary convolutions than lint predicted; check parity")
    predicted_float = any(f.kind == "float" for f in findings)
    if result.float_ops and not predicted_float:
        outputs = ", ".join(op["output"] for op in result.float_ops[:3])
        count = len(result.float_ops)
        message = f"LCE kept {count} matrix op(s) in float that lint did not predict: {outputs}{detail}"
        if not allow_float:
            raise ExportError(message + ". Pass --allow-float (allow_float=True) to export anyway")
        notes.append(message)
    return notes


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
