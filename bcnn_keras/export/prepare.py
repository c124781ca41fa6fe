"""Getting a model ready for LCE: load it, then make it phase 2 and float32 and check its inputs.

Reading model files, and refusing those that store Python code, is `bcnn_keras.loading`'s job;
this module turns its errors into `ExportError`s.
"""

import warnings

import numpy as np
import tensorflow as tf

from bcnn_keras import loading
from bcnn_keras.export.errors import ExportError
from bcnn_keras.layers import get_phase, phased_quantizers, set_phase

# Reachable as `export.loading.*`, as they were when the exporter was a single module.
from bcnn_keras.loading import ModelFileError, import_custom_objects, stored_code_layers  # noqa: F401


def load_model(path, *, safe_mode=True, custom_objects=None):
    """`loading.load_model` with its errors as `ExportError`: a `.keras` file, an `.h5` file or a
    SavedModel directory; a model that stores Python code (a `Lambda`) is refused unless
    `safe_mode=False`.

    Example:
        >>> tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)]).save("model.keras")
        >>> model = load_model("model.keras")
    """
    try:
        return loading.load_model(path, safe_mode=safe_mode, custom_objects=custom_objects)
    except loading.ModelFileError as error:
        raise ExportError(error) from error


def leaf_layers(model):
    """The layers of `model`, with nested models replaced by their own layers."""
    for layer in model.layers:
        if isinstance(layer, tf.keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def is_phased(model):
    """Whether `model` has bcnn_keras' two-phase kernels (plain larq models have none)."""
    return bool(phased_quantizers(model))


def _phase(model):
    """1, 2, or None when the kernels mix phases."""
    try:
        return get_phase(model)
    except ValueError:
        return None


def prepare_in_place(model):
    """Returns `(model, warnings)`: `model` rebuilt as float32 if needed, in training phase 2.

    Changes the model it is given: a bcnn_keras model in phase 1 (or with mixed phases) is
    switched to phase 2 in place, with a warning, because phase 2 is what LCE stores as bits.
    Plain larq models have no phase. A mixed-precision model is first rebuilt from its config
    under a float32 policy with the same weights, because LCE only converts float32 graphs; then
    the rebuilt model is the one switched, and the given one keeps its phase.

    Example:
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> model, notes = prepare_in_place(model)
        >>> notes
        []
    """
    notes = []
    if _needs_float32(model):
        model = _float32_clone(model)
        notes.append("model used a mixed-precision dtype policy: rebuilt as float32 with the same weights")
    if is_phased(model):
        phase = _phase(model)
        if phase != 2:
            state = "in training phase 1 (real-valued weights)" if phase == 1 else "in mixed phases"
            notes.append(f"model was {state}: exported in phase 2, with the signs of its weights")
            set_phase(model, 2)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    return model, notes


def in_phase_2(model):
    """`model` itself if it has no phases or is in phase 2; else a copy in phase 2.

    The copy is built from the model's config with the same weights, so the given model keeps
    its phase.

    Example:
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> bcnn_keras.set_phase(model, 1)
        >>> bcnn_keras.get_phase(in_phase_2(model)), bcnn_keras.get_phase(model)
        (2, 1)
    """
    if not is_phased(model) or _phase(model) == 2:
        return model
    try:
        config = model.get_config()
    except NotImplementedError as error:
        raise ExportError(
            f"model {model.name!r} is subclassed and not in phase 2, so it cannot be copied into phase 2: "
            "call bcnn_keras.set_phase(model, 2) first"
        ) from error
    copy = _rebuilt(model, config)
    set_phase(copy, 2)
    return copy


def _rebuilt(model, config):
    """A new model of `model`'s class built from `config`, with `model`'s weights."""
    clone = type(model).from_config(config)
    clone.set_weights(model.get_weights())
    return clone


def _needs_float32(model):
    return any(layer.dtype_policy.name != "float32" for layer in [model, *leaf_layers(model)])


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
        return _rebuilt(model, config)
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)


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
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> check_model(model)
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
    for layer in leaf_layers(model):
        for variable in layer.weights:
            if variable.dtype.is_floating and not np.all(np.isfinite(variable.numpy())):
                raise ExportError(
                    f"layer {layer.name!r}: weight {variable.name} holds NaN or infinite values "
                    "(the model diverged during training, or the file is damaged)"
                )
