"""Lint: which layers LCE would keep in float, or miscompile, and why.

Each layer is classified once (`classify_layers`); the pipeline hands that classification on to
the rewrite and to the cross-check of the converted file.
"""

import re
from typing import NamedTuple

import larq as lq
import tensorflow as tf

from bcnn_keras.export.defaults import TARGET
from bcnn_keras.export.errors import ExportError
from bcnn_keras.export.prepare import leaf_layers
from bcnn_keras.layers import PhasedSign


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


class Classification(NamedTuple):
    """What lint found in one pass over the layers of a model.

    `findings` are what `lint` returns; `binary_layers` are the layers LCE lowers to
    `LceBconv2d` (directly or after a rewrite), and `rewritable_layers` those `rewrite` changes.
    """

    findings: list
    binary_layers: list
    rewritable_layers: list


_LARQ_MATRIX_LAYERS = (
    lq.layers.QuantizerBase,
    lq.layers.QuantizerDepthwiseBase,
    lq.layers.QuantizerSeparableBase,
)
_KERAS_MATRIX_LAYERS = tuple(
    getattr(tf.keras.layers, name)
    for name in (
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "Conv1DTranspose",
        "Conv2DTranspose",
        "Conv3DTranspose",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "SeparableConv1D",
        "SeparableConv2D",
        "Dense",
        "EinsumDense",
        "LocallyConnected1D",
        "LocallyConnected2D",
    )
    if hasattr(tf.keras.layers, name)
)
# The signs LCE recognises (checked by conversion): on inputs and on kernels.
_SIGN_QUANTIZERS = (lq.quantizers.SteSign, lq.quantizers.ApproxSign, lq.quantizers.SwishSign)
_SIGN_FUNCTIONS = ("ste_sign", "approx_sign", "swish_sign")
_KERNEL_ONLY_SIGNS = ("MagnitudeAwareSign", "magnitude_aware_sign")
_BINARY_STATUSES = ("binary", "slow", "rewrite")


def classify_layers(model, target=TARGET):
    """Classifies every layer of `model` once, for `lint`, `rewrite` and the cross-check.

    Example:
        >>> model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
        >>> classification = classify_layers(model)
        >>> classification.findings, len(classification.binary_layers)
        ([], 18)
    """
    findings, binary, rewritable = [], [], []
    for layer in leaf_layers(model):
        status, reason = _classify(layer, target)
        if status in _BINARY_STATUSES:
            binary.append(layer)
        if status == "rewrite":
            rewritable.append(layer)
        if status not in (None, "binary"):
            findings.append(Finding(layer.name, reason, status))
    return Classification(findings, binary, rewritable)


def lint(model, target=TARGET):
    """Lists every layer LCE would not lower to a plain binary op (`Finding`s), with the reason.

    Example:
        >>> lint(bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25))
        []
    """
    return classify_layers(model, target).findings


def binary_layers(model, target=TARGET):
    """The layers of `model` that LCE lowers to `LceBconv2d` (directly or after a rewrite).

    Example:
        >>> len(binary_layers(bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)))
        18
    """
    return classify_layers(model, target).binary_layers


def check_findings(findings, allow_float):
    """Raises `ExportError` on a refused layer, or on a float layer unless `allow_float`."""
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


def _quantizer_name(quantizer):
    return getattr(quantizer, "__name__", type(quantizer).__name__)


def _quantizer_kind(quantizer, kernel=False):
    """ "none", "ternary", "sign", "other" (known not to be a sign) or "custom" (unknown 1-bit)."""
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
            "custom quantizer: LCE makes this conv binary only if the forward pass is larq.math.sign; check parity"
        )
    if layer.padding == "same" and layer.pad_values == 0:
        # Before the target check: a rewrite does not depend on the target.
        if tuple(layer.kernel_size) == (1, 1):
            return "rewrite", "zero-padded 1x1 binary conv: rewritten with padding='valid' (no padding happens)"
        if target == "xcore":
            return "float", (
                "zero-padded binary conv: on target xcore LCE falls back to float CONV_2D; use pad_values=1.0"
            )
        return "slow", (
            "zero-padded binary conv: LceBconv2d plus an edge correction and no fused output; pad_values=1.0 is faster"
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
