"""Exact rewrites of layers that LCE would otherwise run slower or in float (lint kind "rewrite")."""

import larq as lq
import tensorflow as tf

from bcnn_keras.export.errors import ExportError
from bcnn_keras.export.lint import classify_layers
from bcnn_keras.export.prepare import leaf_layers


def rewrite(model, classification=None):
    """Returns `model` with every exactly rewritable layer rewritten (see `lint`, kind "rewrite").

    A binary `QuantDense` becomes `Reshape((1, 1, C))` -> 1x1 binary `QuantConv2D` -> `Reshape`
    (a nested `Sequential` with the dense layer's name and weights), which LCE lowers to
    `LceBconv2d`; a zero-padded 1x1 binary conv gets `padding="valid"`. The outputs are
    unchanged. Other layers are shared with `model`; `model` itself is not modified.
    `classification` is `classify_layers(model)`, if it was already made.

    Example:
        >>> x = tf.keras.Input((64,))
        >>> y = lq.layers.QuantDense(10, input_quantizer="ste_sign", kernel_quantizer="ste_sign")(x)
        >>> [type(layer).__name__ for layer in rewrite(tf.keras.Model(x, y)).layers]
        ['InputLayer', 'Sequential']
    """
    if classification is None:
        classification = classify_layers(model)
    return _rewrite(model, {id(layer) for layer in classification.rewritable_layers})


def _rewrite(model, rewritable):
    names = [layer.name for layer in leaf_layers(model) if id(layer) in rewritable]
    if not names:
        return model
    if not (isinstance(model, tf.keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise ExportError(
            f"model {model.name!r} is subclassed, so layer {names[0]!r} cannot be rewritten into "
            "its binary form: build the model with the functional API"
        )
    return tf.keras.models.clone_model(model, clone_function=lambda layer: _rewrite_layer(layer, rewritable))


def _rewrite_layer(layer, rewritable):
    if isinstance(layer, tf.keras.Model):
        return _rewrite(layer, rewritable)
    if id(layer) not in rewritable:
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
