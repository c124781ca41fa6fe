"""Loading model files that may come from anywhere: no Python code stored in them runs unless asked.

A Keras model file can carry Python code: a `Lambda` layer stores its function as bytecode, and
rebuilding the model runs it. Keras' own safe mode guards `.keras` files only; `.h5` files and
SavedModel directories load such code without a question. `load_model` reads the model's
configuration as plain data first, in every format, and refuses a model that holds code unless
the caller passes `safe_mode=False` (the CLIs' `--unsafe-load`). What this does not cover: a
SavedModel's graph may hold any TensorFlow op, file I/O included, which runs when the model runs.

Example:
    >>> tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)]).save("model.keras")
    >>> model = load_model("model.keras")
"""

import importlib
import importlib.util
import json
import os
import sys
import zipfile

import tensorflow as tf

from bcnn_keras import models
from bcnn_keras.console import first_line

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
# Layer classes whose configuration is deserialized into Python functions.
CODE_LAYERS = ("Lambda",)


class ModelFileError(ValueError):
    """A model file that cannot or may not be loaded, as one line."""


def _check_path(path):
    if not os.path.exists(path):
        raise ModelFileError(f"{path}: no such file or directory")
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ModelFileError(f"{path}: a directory, but not a SavedModel (no saved_model.pb)")
    if os.path.isfile(path) and not path.lower().endswith(MODEL_SUFFIXES):
        raise ModelFileError(f"{path}: not a model file (expected .keras, .h5 or a SavedModel directory)")


def _keras_archive_config(path):
    if not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a valid .keras file (not a zip archive: truncated or corrupt?)")
    with zipfile.ZipFile(path) as archive:
        if "config.json" not in archive.namelist():
            raise ModelFileError(f"{path}: not a Keras model archive (no config.json in the zip)")
        return [json.loads(archive.read("config.json"))]


def _h5_config(path):
    import h5py

    with h5py.File(path, "r") as stream:
        config = stream.attrs.get("model_config")
    if config is None:
        raise ModelFileError(f"{path}: holds no model configuration (a weights-only file?)")
    return [json.loads(config)]


def _saved_model_configs(path):
    """Keras revives layers from `keras_metadata.pb` or, without it, from the metadata that older
    SavedModels keep in `saved_model.pb`: both are read."""
    from tensorflow.core.protobuf import saved_model_pb2
    from tf_keras.protobuf import saved_metadata_pb2

    texts = []
    metadata_path = os.path.join(path, "keras_metadata.pb")
    if os.path.isfile(metadata_path):
        metadata = saved_metadata_pb2.SavedMetadata()
        with open(metadata_path, "rb") as stream:
            metadata.ParseFromString(stream.read())
        texts += [node.metadata for node in metadata.nodes]
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as stream:
        saved_model.ParseFromString(stream.read())
    for graph in saved_model.meta_graphs:
        texts += [node.user_object.metadata for node in graph.object_graph_def.nodes]
    return [json.loads(text) for text in texts if text]


def stored_configs(path):
    """The Keras configurations stored in a model file, read as JSON (nothing is deserialized).

    One dict for `.keras` and `.h5` files; one per saved layer for a SavedModel directory.
    """
    path = os.fspath(path)
    _check_path(path)
    try:
        if os.path.isdir(path):
            return _saved_model_configs(path)
        if path.lower().endswith(".keras"):
            return _keras_archive_config(path)
        return _h5_config(path)
    except ModelFileError:
        raise
    except Exception as error:  # corrupt zips, HDF5 files and protobufs raise many types
        raise ModelFileError(f"{path}: cannot read the model's configuration ({first_line(error)})") from error


def code_layers(config):
    """Names of the layers in a (nested) Keras configuration that would deserialize Python code.

    Example:
        >>> code_layers({"class_name": "Lambda", "config": {"name": "scale", "function": "..."}})
        ['scale (Lambda)']
    """
    found = {}  # layer name -> what stores the code; the outermost (the layer's class) wins

    def visit(node, layer_name):
        if isinstance(node, dict):
            inner = node.get("config")
            if isinstance(inner, dict) and isinstance(inner.get("name"), str):
                layer_name = inner["name"]
            class_name = node.get("class_name")
            if class_name in CODE_LAYERS:
                found.setdefault(layer_name, class_name)
            # Functions stored as bytecode: "__lambda__" objects, and `*_type: "lambda"` fields
            # (Lambda's function, output shape and mask; the RNN cell wrappers' functions).
            elif class_name == "__lambda__" or any(
                key.endswith("_type") and value == "lambda" for key, value in node.items()
            ):
                found.setdefault(layer_name, "Python function")
            for value in node.values():
                visit(value, layer_name)
        elif isinstance(node, list):
            for value in node:
                visit(value, layer_name)

    visit(config, "model")
    return [f"{name} ({kind})" for name, kind in sorted(found.items())]


def stored_code_layers(path):
    """The layers of a model file that store Python code, found without deserializing anything."""
    return sorted({name for config in stored_configs(path) for name in code_layers(config)})


def import_custom_objects(module):
    """Imports `module` (a dotted name or a `.py` path) so that the classes it registers load.

    Returns its `custom_objects` dict, if it defines one, for names that are not registered.
    Importing runs the module's code: it is the caller's own code, named on purpose.

    Example:
        >>> import_custom_objects("larq_zoo")  # registers larq-zoo's layers and quantizers
        {}
    """
    try:
        if module.endswith(".py"):
            if not os.path.isfile(module):
                raise ModelFileError(f"custom objects module {module}: no such file")
            # A private name, so that a file called keras.py cannot shadow the real package.
            name = "bcnn_keras_custom_objects_" + os.path.splitext(os.path.basename(module))[0]
            spec = importlib.util.spec_from_file_location(name, module)
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[name] = loaded
            try:
                spec.loader.exec_module(loaded)
            except BaseException:
                del sys.modules[name]
                raise
        else:
            loaded = importlib.import_module(module)
    except ModelFileError:
        raise
    except Exception as error:
        raise ModelFileError(
            f"cannot import custom objects module {module} ({type(error).__name__}: {first_line(error)})"
        ) from error
    objects = getattr(loaded, "custom_objects", {})
    if not isinstance(objects, dict):
        raise ModelFileError(f"custom objects module {module}: custom_objects must be a dict of name -> object")
    return objects


def load_model(path, *, safe_mode=True, custom_objects=None):
    """Loads a `.keras` file, an `.h5` file or a SavedModel directory, uncompiled.

    bcnn_keras' classes are registered on import, so its models load without `custom_objects`.
    With `safe_mode=True` (the default) a model whose configuration holds Python code (a
    `Lambda` layer) is refused before any of it is deserialized; `safe_mode=False` loads it and
    runs that code. Anything that is not a loadable Keras model raises `ModelFileError` with one
    line.

    Example:
        >>> tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)]).save("model.keras")
        >>> model = load_model("model.keras")
    """
    path = os.fspath(path)
    layers_with_code = stored_code_layers(path)
    if layers_with_code and safe_mode:
        raise ModelFileError(
            f"{path}: refused, {', '.join(layers_with_code)} stores Python code that would run while "
            "loading; load it only if you trust the file (--unsafe-load, or safe_mode=False)"
        )
    try:
        with tf.keras.utils.custom_object_scope({**models.custom_objects(), **(custom_objects or {})}):
            model = tf.keras.models.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as error:
        raise ModelFileError(f"{path}: cannot load a Keras model ({first_line(error)})") from error
    if not isinstance(model, tf.keras.Model):
        raise ModelFileError(f"{path}: holds a {type(model).__name__}, not a Keras model")
    return model
