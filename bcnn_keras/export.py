"""From a trained Keras model to a bit-packed Larq Compute Engine flatbuffer."""

import collections

import larq_compute_engine as lce
from tensorflow.lite.python import schema_py_generated as schema

from bcnn_keras.layers import set_phase

_BUILTIN_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def read_flatbuffer(flatbuffer):
    """Parses a `.tflite` flatbuffer (bytes) into TFLite's object API (`schema.ModelT`)."""
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))


def op_name(model_t, operator):
    """The op type of `operator`: the custom code for LCE ops, else the builtin name."""
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


def convert(model, target="arm"):
    """Converts `model` in phase 2 (binary weights) with LCE and returns the flatbuffer bytes."""
    set_phase(model, 2)
    return lce.convert_keras_model(model, target=target)
