"""Layers and block helpers of a fully binary CNN.

The BCNN block is `y = x + BN(binary_conv(sign(x + b)))`, optionally followed by RPReLU. Every
matrix multiply is a `BinaryConv2D`: a larq `QuantConv2D` with a sign input quantizer, a
`PhasedSign` kernel quantizer and +1 padding, which is exactly what Larq Compute Engine lowers
to `LceBconv2d` with the following BatchNormalization fused into it.

Two-step training lives in `PhasedSign`: phase 1 uses the latent real-valued kernel as it is,
phase 2 uses its sign. The phase is a non-trainable variable, so checkpoints, `.keras` and
`.h5` files carry it.
"""

import larq as lq
import numpy as np
import tensorflow as tf

from bcnn_keras.architecture import INPUT_ENCODINGS, SHORTCUTS

PHASES = (1, 2)


def _run_larq_variable_wrapping_as_plain_python():
    """AutoGraph cannot parse larq's `QuantizedVariable.from_variable` (called by every assign
    inside a traced training step) and warns, asking for a bug report; the function has no
    control flow to convert, so it is marked to run as it is."""
    from larq.quantized_variable import QuantizedVariable

    wrap = QuantizedVariable.from_variable.__func__
    QuantizedVariable.from_variable = classmethod(tf.autograph.experimental.do_not_convert(wrap))


_run_larq_variable_wrapping_as_plain_python()


def _register(cls):
    """Registers `cls` for `.keras` files ("bcnn_keras>Name") and, under its bare name, for the
    legacy `.h5` path, where larq looks quantizers up by class name only."""
    tf.keras.utils.get_custom_objects()[cls.__name__] = cls
    return tf.keras.utils.register_keras_serializable(package="bcnn_keras")(cls)


def check_choice(argument, value, choices):
    """Raises `ValueError` (one line) unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{argument} must be one of {choices}, got {value!r}")


def _check_phase(phase):
    if phase not in PHASES:
        raise ValueError(f"phase must be 1 (real weights) or 2 (binary weights), got {phase!r}")


@_register
class PhasedSign(lq.quantizers.Quantizer):
    """Kernel quantizer for two-step training: identity in phase 1, sign in phase 2.

    In phase 2 the forward pass is `larq.math.sign` with larq's straight-through gradient, and
    no scale: the following BatchNormalization absorbs it, so LCE stores one bit per weight.

    Example:
        >>> conv = lq.layers.QuantConv2D(8, 3, kernel_quantizer=PhasedSign(phase=1))
        >>> conv.kernel_quantizer.phase
        1
    """

    precision = 1

    def __init__(self, phase=2, **kwargs):
        super().__init__(**kwargs)
        _check_phase(phase)
        self.phase_variable = self.add_weight(
            name="phase",
            shape=(),
            dtype=tf.int32,
            initializer=tf.keras.initializers.Constant(phase),
            trainable=False,
        )
        # The phase is a one-bit flag; tagging it lets larq's summary count its conv as all 1-bit.
        self.phase_variable.precision = 1

    @property
    def phase(self):
        return int(tf.keras.backend.get_value(self.phase_variable))

    @phase.setter
    def phase(self, phase):
        _check_phase(phase)
        self.phase_variable.assign(phase)

    def call(self, inputs):
        return tf.where(self.phase_variable >= 2, lq.quantizers.ste_sign(inputs), inputs)

    def get_config(self):
        return {**super().get_config(), "phase": self.phase}


@_register
class HardTanh(lq.quantizers.Quantizer):
    """`clip(x, -1, 1)`: the float twin's stand-in for sign (the function the STE differentiates).

    Example:
        >>> HardTanh()(tf.constant([-3.0, 0.5, 2.0])).numpy().tolist()
        [-1.0, 0.5, 1.0]
    """

    precision = 32

    def call(self, inputs):
        return tf.clip_by_value(inputs, -1.0, 1.0)


@_register
class BinaryConv2D(lq.layers.QuantConv2D):
    """A 1-bit x 1-bit convolution that LCE lowers to `LceBconv2d`.

    Defaults: `ste_sign` input quantizer, `PhasedSign` kernel quantizer with larq's weight
    clip, `padding="same"` with +1 padding (zero is not a binary value), no bias (the following
    BatchNormalization provides it). With `binary=False` it is the float twin: inputs pass
    through `HardTanh` and the kernel is real.

    Example:
        >>> conv = BinaryConv2D(32, 3, strides=2)
        >>> conv(tf.zeros((1, 8, 8, 16))).shape
        TensorShape([1, 4, 4, 32])
    """

    def __init__(
        self,
        filters,
        kernel_size=3,
        strides=1,
        binary=True,
        padding="same",
        pad_values=1.0,
        use_bias=False,
        **kwargs,
    ):
        self.binary = binary
        if binary:
            kwargs.setdefault("input_quantizer", "ste_sign")
            kwargs.setdefault("kernel_quantizer", PhasedSign())
            kwargs.setdefault("kernel_constraint", "weight_clip")
        else:
            kwargs.setdefault("input_quantizer", HardTanh())
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            pad_values=pad_values,
            use_bias=use_bias,
            **kwargs,
        )

    def get_config(self):
        return {**super().get_config(), "binary": self.binary}


class _PerChannelLayer(tf.keras.layers.Layer):
    """Base for layers whose weights are vectors over the last axis."""

    def _channel_weight(self, name, input_shape, initializer):
        return self.add_weight(
            name=name,
            shape=(int(input_shape[-1]),),
            initializer=tf.keras.initializers.Constant(initializer),
            trainable=True,
        )


@_register
class LearnedThreshold(_PerChannelLayer):
    """Adds a learned per-channel bias `b`, so the following sign fires at the threshold `-b`.

    Kept as its own layer (not folded into the quantizer) so that LCE sees a plain `ADD`
    followed by the sign it recognises.

    Example:
        >>> LearnedThreshold()(tf.ones((2, 4, 4, 8))).shape
        TensorShape([2, 4, 4, 8])
    """

    def build(self, input_shape):
        self.bias = self._channel_weight("bias", input_shape, 0.0)
        super().build(input_shape)

    def call(self, inputs):
        return inputs + tf.cast(self.bias, inputs.dtype)


@_register
class RPReLU(_PerChannelLayer):
    """ReActNet's RPReLU: `PReLU(x - gamma) + zeta` with per-channel gamma, slope and zeta.

    Example:
        >>> RPReLU()(tf.constant([[-4.0, 4.0]])).numpy().tolist()
        [[-1.0, 4.0]]
    """

    def __init__(self, slope_initializer=0.25, **kwargs):
        super().__init__(**kwargs)
        self.slope_initializer = slope_initializer

    def build(self, input_shape):
        self.shift_in = self._channel_weight("shift_in", input_shape, 0.0)
        self.slope = self._channel_weight("slope", input_shape, self.slope_initializer)
        self.shift_out = self._channel_weight("shift_out", input_shape, 0.0)
        super().build(input_shape)

    def call(self, inputs):
        shift_in, slope, shift_out = (tf.cast(w, inputs.dtype) for w in (self.shift_in, self.slope, self.shift_out))
        x = inputs - shift_in
        # relu(x) + (-slope) * relu(-x), with the slope shaped like the input's non-batch axes,
        # is the form TFLite fuses into one PRELU op.
        negative_slope = tf.reshape(-slope, [1] * (inputs.shape.rank - 2) + [-1])
        return tf.nn.relu(x) + negative_slope * tf.nn.relu(-x) + shift_out

    def get_config(self):
        return {**super().get_config(), "slope_initializer": self.slope_initializer}


@_register
class ThermometerEncoding(tf.keras.layers.Layer):
    """Turns raw pixels (0..`pixel_max`) into `levels` thermometer planes per channel.

    Output channel `k * C + c` is `(x_c - t_k) / step`, the signed distance of channel `c` to
    threshold `t_k = (k + 0.5) * step`, measured in level widths (`step = pixel_max / levels`).
    The sign of the following `BinaryConv2D` turns it into the +-1 thermometer code; measuring in
    level widths makes its straight-through window one level wide, which is what lets
    `trainable_thresholds=True` (the "learned" encoding) move the thresholds.

    LCE packs channels into 32-bit words: `C * levels` of at most 32 fits one word per pixel, and
    beyond that a multiple of 32 wastes no bits.

    Example:
        >>> planes = tf.sign(ThermometerEncoding(levels=4)(tf.constant([[[[100.0]]]])))
        >>> planes.numpy().ravel().tolist()
        [1.0, 1.0, -1.0, -1.0]
    """

    def __init__(self, levels=32, pixel_max=255.0, trainable_thresholds=False, **kwargs):
        super().__init__(**kwargs)
        if int(levels) < 1:
            raise ValueError(f"levels must be >= 1, got {levels!r}")
        self.levels = int(levels)
        self.pixel_max = float(pixel_max)
        self.trainable_thresholds = bool(trainable_thresholds)

    @property
    def step(self):
        return self.pixel_max / self.levels

    def build(self, input_shape):
        channels = int(input_shape[-1])
        level_thresholds = (np.arange(self.levels) + 0.5) * self.step
        self.thresholds = self.add_weight(
            name="thresholds",
            shape=(self.levels * channels,),
            initializer=tf.keras.initializers.Constant(np.repeat(level_thresholds, channels)),
            trainable=self.trainable_thresholds,
        )
        super().build(input_shape)

    def call(self, inputs):
        # Scaling before tiling multiplies `levels` times fewer values (this op runs on the full
        # input resolution, in float, on the device).
        tiled = tf.tile(inputs * (1.0 / self.step), [1, 1, 1, self.levels])
        return tiled - tf.cast(self.thresholds, inputs.dtype) * (1.0 / self.step)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([input_shape[-1] * self.levels])

    def get_config(self):
        return {
            **super().get_config(),
            "levels": self.levels,
            "pixel_max": self.pixel_max,
            "trainable_thresholds": self.trainable_thresholds,
        }


@_register
class ChannelDuplication(tf.keras.layers.Layer):
    """Repeats the channels until there are `filters` of them: a shortcut with no matrix op.

    Example:
        >>> ChannelDuplication(4)(tf.constant([[[[1.0, 2.0]]]])).numpy().ravel().tolist()
        [1.0, 2.0, 1.0, 2.0]
    """

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)

    def call(self, inputs):
        repeats = -(-self.filters // int(inputs.shape[-1]))
        return tf.tile(inputs, [1, 1, 1, repeats])[..., : self.filters]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.filters])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def _batch_norm(name):
    return tf.keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)


def downsampling_shortcut(x, filters, strides=1, name=None, *, kind="pool"):
    """The residual path of a block that changes resolution or width.

    `kind="pool"` (the BCNN default) has no matrix op: average pooling matches the conv's
    stride and `ChannelDuplication` its width, so the real-valued information of `x` reaches the
    output unquantized (a binary 1x1 conv here would sign it away). `kind="float_conv"` is the
    Bi-Real/larq-zoo shortcut instead: average pooling, then, where the width changes, a
    real-valued 1x1 conv and BatchNormalization (LCE runs it as a float `CONV_2D`).

    Example:
        >>> x = tf.keras.Input((8, 8, 16))
        >>> downsampling_shortcut(x, 32, strides=2).shape
        TensorShape([None, 4, 4, 32])
    """
    check_choice("shortcut kind", kind, SHORTCUTS)
    if strides > 1:
        x = tf.keras.layers.AveragePooling2D(strides, padding="same", name=f"{name}_pool")(x)
    if x.shape[-1] == filters:
        return x
    if kind == "float_conv":
        x = tf.keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_conv")(x)
        return _batch_norm(f"{name}_bn")(x)
    return ChannelDuplication(filters, name=f"{name}_duplicate")(x)


def bcnn_block(x, filters, kernel_size=3, strides=1, *, nonlinearity="rprelu", shortcut="pool", binary=True, name):
    """The BCNN building block: `x + BN(binary_conv(sign(x + b)))`, then optional RPReLU.

    `shortcut` is the `kind` of `downsampling_shortcut` in blocks that change resolution or width.

    Example:
        >>> x = tf.keras.Input((8, 8, 32))
        >>> bcnn_block(x, 64, strides=2, name="demo").shape
        TensorShape([None, 4, 4, 64])
    """
    residual = downsampling_shortcut(x, filters, strides, kind=shortcut, name=f"{name}_shortcut")
    y = LearnedThreshold(name=f"{name}_threshold")(x)
    y = BinaryConv2D(filters, kernel_size, strides, binary=binary, name=f"{name}_conv")(y)
    y = _batch_norm(f"{name}_bn")(y)
    y = tf.keras.layers.Add(name=f"{name}_add")([residual, y])
    if nonlinearity == "rprelu":
        y = RPReLU(name=f"{name}_rprelu")(y)
    elif nonlinearity is not None:
        raise ValueError(f"nonlinearity must be 'rprelu' or None, got {nonlinearity!r}")
    return y


def binary_input_block(
    x, filters, *, levels=32, encoding="thermometer", kernel_size=3, strides=1, pool_size=1, binary=True, name
):
    """Raw pixels -> thermometer planes -> binary conv -> BN. No float matrix op sees the image.

    `encoding="learned"` starts from the thermometer thresholds and trains them. `pool_size` 2
    averages 2x2 pixels first, which quarters the encoding's work on large images.

    Example:
        >>> image = tf.keras.Input((28, 28, 1))
        >>> binary_input_block(image, 32, name="stem").shape
        TensorShape([None, 28, 28, 32])
    """
    check_choice("input_encoding", encoding, INPUT_ENCODINGS)
    if pool_size > 1:
        x = tf.keras.layers.AveragePooling2D(pool_size, name=f"{name}_pool")(x)
    y = ThermometerEncoding(levels, trainable_thresholds=encoding == "learned", name=f"{name}_encoding")(x)
    y = BinaryConv2D(filters, kernel_size, strides, binary=binary, name=f"{name}_conv")(y)
    return _batch_norm(f"{name}_bn")(y)


def float_input_block(x, filters, *, kernel_size=3, strides=1, pixel_max=255.0, name):
    """Raw pixels scaled to [-1, 1] -> real-valued conv -> BN: the larq-zoo style input layer.

    LCE runs it as a float `CONV_2D`; `BCNN18(input_layer="float")` swaps it in for
    `binary_input_block` (for ablations, or where accuracy matters more than full binarization).

    Example:
        >>> image = tf.keras.Input((28, 28, 1))
        >>> float_input_block(image, 32, strides=2, name="stem").shape
        TensorShape([None, 14, 14, 32])
    """
    y = tf.keras.layers.Rescaling(2.0 / pixel_max, offset=-1.0, name=f"{name}_rescale")(x)
    y = tf.keras.layers.Conv2D(filters, kernel_size, strides, padding="same", use_bias=False, name=f"{name}_conv")(y)
    return _batch_norm(f"{name}_bn")(y)


def binary_classifier(x, classes, *, activation="softmax", binary=True, name="classifier"):
    """Pooled features -> threshold and sign -> binary matrix product -> per-class scale and bias.

    The threshold is a BatchNormalization: pooled features are mostly positive, so a plain
    learned bias would start with every sign at +1 (a constant, untrainable classifier), while
    batch statistics centre them from the first step. The product is a 1x1 `BinaryConv2D` on a
    1x1 map, because LCE keeps `QuantDense` in float; the BatchNormalization after it is the
    per-class scale and bias that LCE folds into the bconv.

    Example:
        >>> features = tf.keras.Input((512,))
        >>> binary_classifier(features, 10).shape
        TensorShape([None, 10])
    """
    y = _batch_norm(f"{name}_threshold")(x)
    y = tf.keras.layers.Reshape((1, 1, x.shape[-1]), name=f"{name}_to_map")(y)
    y = BinaryConv2D(classes, 1, binary=binary, name=f"{name}_conv")(y)
    y = _batch_norm(f"{name}_bn")(y)
    y = tf.keras.layers.Flatten(name=f"{name}_logits")(y)
    return _output_activation(y, activation)


def float_classifier(x, classes, *, activation="softmax", name="classifier"):
    """Pooled features -> real-valued dense layer: the classifier of larq-zoo and ResNet.

    LCE runs it as a float `FULLY_CONNECTED`; `BCNN18(classifier="float")` swaps it in for
    `binary_classifier`.

    Example:
        >>> float_classifier(tf.keras.Input((512,)), 10).shape
        TensorShape([None, 10])
    """
    y = tf.keras.layers.Dense(classes, name=f"{name}_dense")(x)
    return _output_activation(y, activation)


def _output_activation(logits, activation):
    if activation is None:
        return logits
    return tf.keras.layers.Activation(activation, dtype="float32", name="predictions")(logits)


def phased_quantizers(model):
    """Every `PhasedSign` kernel quantizer of `model`: what `set_phase` switches, and whose
    `phase_variable`s are training state rather than weights (copies and weight files skip them).

    Example:
        >>> model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
        >>> len(phased_quantizers(model))  # the input block, 16 blocks, the classifier
        18
    """
    return [m for m in model.submodules if isinstance(m, PhasedSign)]


def set_phase(model, phase):
    """Puts every `PhasedSign` kernel quantizer of `model` into `phase` (1 or 2).

    Example:
        >>> model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
        >>> bcnn_keras.set_phase(model, 1); bcnn_keras.get_phase(model)
        1
    """
    _check_phase(phase)
    quantizers = phased_quantizers(model)
    if not quantizers:
        raise ValueError(f"model {model.name!r} has no phased binary kernels (is it a float model?)")
    for quantizer in quantizers:
        quantizer.phase = phase


def get_phase(model):
    """The training phase of `model`: 1 (real weights) or 2 (binary weights).

    Example:
        >>> bcnn_keras.get_phase(bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25))
        2
    """
    quantizers = phased_quantizers(model)
    if not quantizers:
        raise ValueError(f"model {model.name!r} has no phased binary kernels (is it a float model?)")
    phases = {q.phase for q in quantizers}
    if len(phases) > 1:
        raise ValueError(f"model {model.name!r} mixes phases {sorted(phases)}; call set_phase")
    return phases.pop()
