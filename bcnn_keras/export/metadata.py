"""What a `.tflite` file says about itself: class names and input, in the flatbuffer's `metadata`.

A TFLite flatbuffer has a list of named metadata buffers. The exporter adds one named
`METADATA_NAME` holding UTF-8 JSON, for example:

    {"class_names": ["T-shirt/top", ...], "input": {"dtype": "uint8", "shape": [1, 28, 28, 1],
     "pixels": "raw 0..255"}, "bcnn_keras_version": "0.1.0"}

so that a file copied alone to a device still names its classes. `bcnn-predict` reads it first.

Example:
    >>> from bcnn_keras.export import convert
    >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
    >>> flatbuffer = with_metadata(convert(model), {"class_names": ["a", "b"]})
    >>> read_metadata(flatbuffer)["class_names"]
    ['a', 'b']
"""

import json

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

METADATA_NAME = "bcnn_keras"
# A metadata buffer larger than this is not ours: it is not read.
_MAX_BYTES = 16 << 20


def with_metadata(flatbuffer, info):
    """The flatbuffer with `info` (JSON data) as its `METADATA_NAME` entry, replacing an older one."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    model.metadata = [entry for entry in model.metadata or [] if entry.name != METADATA_NAME.encode()]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(info).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def read_metadata(flatbuffer):
    """The `METADATA_NAME` entry of a flatbuffer as JSON data, or None when it has none.

    Raises `ValueError` (one line) when the entry is not a JSON object.
    """
    model = schema.Model.GetRootAs(flatbuffer, 0)
    for index in range(model.MetadataLength()):
        entry = model.Metadata(index)
        if entry.Name() != METADATA_NAME.encode():
            continue
        buffer = model.Buffers(entry.Buffer())
        raw = buffer.DataAsNumpy() if buffer.DataLength() <= _MAX_BYTES else None
        try:
            info = json.loads(bytes(raw).decode()) if raw is not None and not isinstance(raw, int) else None
        except (UnicodeDecodeError, ValueError) as error:
            raise ValueError(f"its {METADATA_NAME!r} metadata is not JSON ({error})") from error
        if not isinstance(info, dict):
            raise ValueError(f"its {METADATA_NAME!r} metadata is not a JSON object")
        return info
    return None


def class_names_in(flatbuffer, classes=None):
    """The class names the flatbuffer carries (a list of `classes` strings if given), or None.

    Example:
        >>> shipped = bcnn_keras.pretrained.SHIPPED[("BCNN18", "fashion_mnist")]
        >>> class_names_in(shipped.tflite_path.read_bytes())[:2]
        ['T-shirt/top', 'Trouser']
    """
    names = (read_metadata(flatbuffer) or {}).get("class_names")
    if names is None:
        return None
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError("its class names are not a list of strings")
    if classes is not None and len(names) != classes:
        raise ValueError(f"it names {len(names)} classes, but its model has {classes} outputs")
    return names
