"""BCNN model family, in the style of `keras.applications`.

`BCNN18` follows ResNet-18 (4 stages of 2 basic blocks, widths 64/128/256/512), with every 3x3
conv in its own BCNN block. `BCNNA` follows ReActNet-A (the MobileNet-V1 layout with each
depthwise/pointwise pair turned into a binary 3x3 block and a binary 1x1 block). `BCNN8`,
`BCNN9`, `BCNN10` and `BCNN6` are for small images. All share one builder: binary input block -> BCNN
blocks -> pooling -> binary classifier. Their layouts and the defaults of their architecture
knobs are declared once, in `bcnn_keras.architecture`.
"""

import inspect
import os

import tensorflow as tf

from bcnn_keras import layers, pretrained
from bcnn_keras.architecture import KNOBS, PRESETS, Architecture, default_encoding_levels, resolve_stem, scaled_width

DEFAULT_INPUT_SHAPE = (224, 224, 3)
MIN_IMAGE_SIDE = 16


def _input_image(input_shape, input_tensor):
    if input_tensor is not None and input_shape is None:
        input_shape = tuple(input_tensor.shape[1:])
    input_shape = DEFAULT_INPUT_SHAPE if input_shape is None else tuple(input_shape)
    if len(input_shape) != 3 or any(d is None for d in input_shape):
        raise ValueError(f"input_shape must be a fully defined (height, width, channels), got {input_shape}")
    height, width, channels = input_shape
    if min(height, width) < MIN_IMAGE_SIDE or channels < 1:
        raise ValueError(
            f"input_shape {input_shape} is too small: height and width must be >= {MIN_IMAGE_SIDE} and channels >= 1"
        )
    if input_tensor is None:
        return tf.keras.Input(input_shape, name="image"), input_shape
    if not tf.keras.backend.is_keras_tensor(input_tensor):
        return tf.keras.Input(tensor=input_tensor, shape=input_shape, name="image"), input_shape
    return input_tensor, input_shape


def _check_arguments(weights, classes, include_top, pooling):
    if weights == "imagenet":
        raise ValueError(
            "no ImageNet weights exist for bcnn_keras models: use weights=None and train, "
            "or pass the path of a weights file"
        )
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if isinstance(weights, pretrained.PretrainedWeights):
        return
    if weights is not None and not (isinstance(weights, (str, os.PathLike)) and os.path.exists(weights)):
        names = sorted(pretrained.SHIPPED_DATASETS)
        raise ValueError(
            f"weights must be None, the name of shipped weights ({', '.join(map(repr, names))}) "
            f"or the path of an existing weights file, got {weights!r}"
        )
    if include_top and (not isinstance(classes, int) or classes < 1):
        raise ValueError(f"classes must be an integer >= 1, got {classes!r}")


def _bcnn(
    preset_name,
    architecture,
    *,
    include_top,
    weights,
    input_tensor,
    input_shape,
    pooling,
    classes,
    classifier_activation,
    name,
):
    """Builds the preset `preset_name` with `architecture` (an `Architecture`): input block,
    BCNN blocks, classifier."""
    _check_arguments(weights, classes, include_top, pooling)
    preset = PRESETS[preset_name]
    width = lambda filters: scaled_width(filters, architecture.width_multiplier, architecture.channel_multiple)  # noqa: E731
    image, input_shape = _input_image(input_shape, input_tensor)
    stem = resolve_stem(architecture, preset, input_shape)
    if architecture.input_layer == "float":
        x = layers.float_input_block(
            image, width(preset.stem_filters), kernel_size=stem.kernel_size, strides=stem.strides, name="stem"
        )
    else:
        levels = architecture.encoding_levels or default_encoding_levels(input_shape[-1])
        x = layers.binary_input_block(
            image,
            width(preset.stem_filters),
            levels=levels,
            encoding=architecture.input_encoding,
            kernel_size=stem.kernel_size,
            strides=stem.conv_strides,
            pool_size=stem.pool_size,
            binary=architecture.binary,
            name="stem",
        )
    for index, (filters, kernel_size, strides) in enumerate(preset.blocks):
        x = layers.bcnn_block(
            x,
            width(filters),
            kernel_size,
            strides,
            nonlinearity=architecture.nonlinearity,
            shortcut=architecture.shortcut,
            binary=architecture.binary,
            name=f"block{index + 1}",
        )

    if include_top:
        x = tf.keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if architecture.classifier == "float":
            x = layers.float_classifier(x, classes, activation=classifier_activation)
        else:
            x = layers.binary_classifier(x, classes, activation=classifier_activation, binary=architecture.binary)
    elif pooling == "avg":
        x = tf.keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = tf.keras.layers.GlobalMaxPooling2D(name="max_pool")(x)

    inputs = tf.keras.utils.get_source_inputs(image) if input_tensor is not None else image
    model = tf.keras.Model(inputs, x, name=name if architecture.binary else f"{name}_float")
    if isinstance(weights, pretrained.PretrainedWeights):
        weights.load_into(model, include_top)
        if include_top:
            model.class_names = weights.class_names  # the exporter writes them into the .tflite
    elif weights is not None:
        model.load_weights(weights)
    return model


def _preset(function):
    """Declares the preset of `function`'s name: its signature (and `help()`) lists every knob
    of `Architecture` with the preset's default from `PRESETS`, and its docs end with the
    arguments all presets share."""
    defaults = PRESETS[function.__name__].defaults
    *own, name, _ = inspect.signature(function).parameters.values()  # ..., name, **architecture
    knobs = [inspect.Parameter(knob, inspect.Parameter.KEYWORD_ONLY, default=getattr(defaults, knob)) for knob in KNOBS]
    function.__signature__ = inspect.Signature([*own, *knobs, name])
    function.__doc__ += _COMMON_ARGUMENTS_DOC
    return function


def _build(preset, arguments):
    """The model of `preset` from its `arguments` (its `locals()`: its keywords and the knobs
    given in `architecture`); named weights fix the knobs they were trained with."""
    given = {**arguments.pop("architecture"), **arguments}
    try:
        bound = preset.__signature__.bind(**given)
    except TypeError as error:
        raise TypeError(f"{preset.__name__}() {error}") from None
    bound.apply_defaults()
    resolved = pretrained.resolve(preset, dict(bound.arguments))
    architecture = Architecture(**{knob: resolved.pop(knob) for knob in KNOBS})
    return _bcnn(preset.__name__, architecture, **resolved)


_COMMON_ARGUMENTS_DOC = """
    Args:
        include_top: whether to end with the binary classifier.
        weights: `None` (random initialisation), the name of shipped trained weights
            (`"fashion_mnist"`, for `BCNN18`: it sets the architecture arguments it was trained
            with, see `bcnn_keras.pretrained`) or the path of a weights file. No ImageNet
            weights exist, so `"imagenet"` raises `ValueError`.
        input_tensor: optional Keras tensor to use as the image input.
        input_shape: `(height, width, channels)` of raw pixels in 0..255, default
            `(224, 224, 3)`. Images of at most 64 px a side get a stride-1 stem.
        pooling: with `include_top=False`, `None` (4D features), `"avg"` or `"max"`.
        classes: number of classes of the classifier.
        classifier_activation: activation of the output, `"softmax"` or `None` for logits.
        width_multiplier: scales every width, rounded to the nearest multiple of
            `channel_multiple`.
        channel_multiple: 8, or 32 (one word of LCE's bit-packing: no packed bit is wasted on
            the input side of the next binary conv).
        stem_strides: stride of the input block: 1, 2 or 4.
            `None` picks 1 for images of at most 64 px a side and the family default otherwise.
        stem_kernel_size: kernel size of the input block's conv; `None` gives 3 at stride 1
            and the stride otherwise (a patchify stem). 3 at stride 2 makes the windows overlap.
        stem_pool_size: 1, or 2 to average 2x2 pixels before the thermometer encoding (the
            conv then takes the rest of the stride). `None` picks 2 for a binary input block of
            stride 4 with the default kernel on images larger than 64 px (the encoding at full
            resolution was the largest cost of BCNN18 at 224x224) and 1 otherwise. Models and
            weights files made at those sizes before this option existed need 1.
        input_encoding: `"thermometer"` (fixed, evenly spaced thresholds) or `"learned"`
            (thermometer-initialised, trainable thresholds).
        encoding_levels: thermometer levels per image channel; `None` picks
            `default_encoding_levels(channels)` (32 for grey, 10 for RGB). `channels * levels` at most 32
            fits one word of LCE's bit-packing; beyond that, a multiple of 32 wastes no bits.
        nonlinearity: `"rprelu"` after each residual add, or `None`.
        input_layer: `"binary"` (thermometer planes and a binary conv) or `"float"` (a real
            conv on the rescaled image, as larq-zoo does; it ignores the encoding arguments).
        shortcut: `"pool"` (average pooling and channel duplication, no matrix op) or
            `"float_conv"` (average pooling and, where the width changes, a real 1x1 conv).
        classifier: `"binary"` (a 1x1 binary conv) or `"float"` (a real dense layer).
            The float options are for ablations and for users who trade full binarization
            for accuracy; the exporter reports them as float layers (`--allow-float`).
        binary: `False` builds the float twin (real weights, hard-tanh in place of sign), the
            baseline and distillation teacher.
        name: the model's name.

    Returns:
        A `tf.keras.Model`, in training phase 2 (binary weights) when `binary=True`.
"""


@_preset
def BCNN18(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="bcnn18",
    **architecture,
):
    """A fully binary ResNet-18: every conv and the classifier are 1-bit x 1-bit.

    Example:
        >>> model = bcnn_keras.BCNN18(input_shape=(32, 32, 3), classes=10, width_multiplier=0.25)
        >>> model.output_shape
        (None, 10)
        >>> trained = bcnn_keras.BCNN18(weights="fashion_mnist")  # 28x28x1, 10 classes
    """
    return _build(BCNN18, locals())


@_preset
def BCNN18Small(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="bcnn18_small",
    **architecture,
):
    """BCNN18 at half width (32/64/128/256 channels): the size and latency class of larq-zoo's
    QuickNetSmall, fully binary. About 0.4 MB as a `.tflite` at 224x224 with 1000 classes.

    Example:
        >>> model = bcnn_keras.BCNN18Small(input_shape=(32, 32, 3), classes=10)
        >>> model.get_layer("block1_conv").filters
        32
    """
    return _build(BCNN18Small, locals())


@_preset
def BCNNA(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="bcnna",
    **architecture,
):
    """A fully binary ReActNet-A (MobileNet-V1 layout), binary stem, shortcuts and classifier.

    Example:
        >>> model = bcnn_keras.BCNNA(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
        >>> model.output_shape
        (None, 10)
    """
    return _build(BCNNA, locals())


@_preset
def BCNN8(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="bcnn8",
    **architecture,
):
    """A fully binary network for small images (28-96 px): a 3x3 stride-2 input block of 32
    channels, then three stages of two BCNN blocks (32, 64, 128 channels), 8 binary matrix ops
    in all. At 28x28 it does a third of the binary MACs of BCNN18 at width 0.25 with its
    stride-1 input block.

    Example:
        >>> model = bcnn_keras.BCNN8(input_shape=(28, 28, 1), classes=10)
        >>> model.get_layer("stem_conv").strides, model.output_shape
        ((2, 2), (None, 10))
    """
    return _build(BCNN8, locals())


@_preset
def BCNN9(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="bcnn9",
    **architecture,
):
    """`BCNN8` with a fourth stage of one 256-channel block: a 3x3 stride-2 input block of 32
    channels, then 2, 2, 2 and 1 BCNN blocks (32, 64, 128, 256 channels), 9 binary matrix ops.
    The binary classifier sees 256 features instead of 128.

    Example:
        >>> model = bcnn_keras.BCNN9(input_shape=(28, 28, 1), classes=10)
        >>> model.get_layer("block7_conv").filters, model.output_shape
        (256, (None, 10))
    """
    return _build(BCNN9, locals())


@_preset
def BCNN10(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="bcnn10",
    **architecture,
):
    """`BCNN9` with a third 128-channel block, where the map is 4x4 at 28x28 (cheap in time): a
    3x3 stride-2 input block of 32 channels, then 2, 2, 3 and 1 BCNN blocks (32, 64, 128, 256
    channels), 10 binary matrix ops.

    Example:
        >>> model = bcnn_keras.BCNN10(input_shape=(28, 28, 1), classes=10)
        >>> [model.get_layer(f"block{i}_conv").filters for i in (6, 7, 8)]
        [128, 128, 256]
    """
    return _build(BCNN10, locals())


@_preset
def BCNN6(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="bcnn6",
    **architecture,
):
    """The smallest fully binary network for small images: a 3x3 stride-2 input block of 32
    channels, then one BCNN block per stage (32, 64, 128, 256 channels), 6 binary matrix ops.

    Example:
        >>> model = bcnn_keras.BCNN6(input_shape=(28, 28, 1), classes=10)
        >>> [model.get_layer(f"block{i}_conv").filters for i in range(1, 5)]
        [32, 64, 128, 256]
    """
    return _build(BCNN6, locals())


# One registry of every preset function, by name.
MODELS = {name: globals()[name] for name in PRESETS}


def initialize_from_float_twin(model, float_twin, partial=False):
    """Copies every weight of a (trained) float twin into the binary `model` of the same shape.

    The float twin computes hard-tanh where `model` takes the sign, so it is a real-valued
    network with the binary one's layers (Bi-Real Net's clip(-1, 1) pre-training): training it
    first and starting phase 1 from its weights gives the binary model a head start. Only
    the training phase flags are left as they are; kernels are clipped to the model's
    constraint (larq's weight clip).

    With `partial=True`, `model` may differ from the twin in some layers (a float input layer or
    classifier, float shortcuts): only the layers of the same name and weight shapes are copied.
    Returns the names of `model`'s layers that kept their own weights.

    Example:
        >>> twin = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25, binary=False)
        >>> model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
        >>> initialize_from_float_twin(model, twin)
        []
        >>> ablation = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25, classifier="float")
        >>> initialize_from_float_twin(ablation, twin, partial=True)
        ['classifier_dense']
    """

    def mismatch(detail):
        return ValueError(f"{float_twin.name!r} is not the float twin of {model.name!r}: {detail}")

    phase_flags = {id(q.phase_variable) for q in layers.phased_quantizers(model)}
    source_layers = {layer.name: layer for layer in float_twin.layers}
    targets = [layer for layer in model.layers if layer.weights]
    extra = {name for name, layer in source_layers.items() if layer.weights} - {layer.name for layer in targets}
    if extra and not partial:
        raise mismatch(f"it has layers {sorted(extra)}")
    pairs, kept = [], []
    for layer in targets:
        source = source_layers.get(layer.name)
        variables = [w for w in layer.weights if id(w) not in phase_flags]
        shapes = [tuple(v.shape) for v in variables]
        if source is None or shapes != [tuple(w.shape) for w in source.weights]:
            if partial:
                kept.append(layer.name)
                continue
            found = "missing" if source is None else [tuple(w.shape) for w in source.weights]
            raise mismatch(f"layer {layer.name!r} has weights of shapes {shapes}, the twin's: {found}")
        pairs += zip(variables, source.weights)
    for variable, value in pairs:
        variable.assign(value)
    # The twin's kernels are unconstrained; clip them now rather than at the first update.
    for layer in targets:
        if layer.name not in kept and getattr(layer, "kernel_constraint", None) is not None:
            layer.kernel.assign(layer.kernel_constraint(layer.kernel))
    return kept


def custom_objects():
    """The `custom_objects` mapping for loading bcnn_keras models with plain Keras.

    Loading usually works without it (every class is registered on import); pass it where a
    loader insists on an explicit scope.

    Example:
        >>> tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)]).save("model.h5")
        >>> model = tf.keras.models.load_model("model.h5", custom_objects=bcnn_keras.custom_objects())
    """
    return {
        cls.__name__: cls
        for cls in (
            layers.PhasedSign,
            layers.HardTanh,
            layers.BinaryConv2D,
            layers.LearnedThreshold,
            layers.RPReLU,
            layers.ThermometerEncoding,
            layers.ChannelDuplication,
        )
    }
