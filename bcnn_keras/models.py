"""BCNN model family, in the style of `keras.applications`.

`BCNN18` follows ResNet-18 (4 stages of 2 basic blocks, widths 64/128/256/512), with every 3x3
conv in its own BCNN block. `BCNNA` follows ReActNet-A (the MobileNet-V1 layout with each
depthwise/pointwise pair turned into a binary 3x3 block and a binary 1x1 block). Both share one
builder: binary input block -> BCNN blocks -> pooling -> binary classifier.
"""

import os

import tensorflow as tf

from bcnn_keras import layers, pretrained

DEFAULT_INPUT_SHAPE = (224, 224, 3)
# Thermometer planes of the default encoding: one 32-bit word of LCE's bit-packing per pixel.
ENCODING_PLANES = 32
# Inputs up to this size (both sides) get a stride-1 stem instead of the early downsampling.
SMALL_IMAGE_MAX_SIDE = 64
MIN_IMAGE_SIDE = 16
# Widths round to a multiple of 8, or of 32: one word of LCE's bit-packing.
CHANNEL_MULTIPLES = (8, 32)
LAYER_KINDS = ("binary", "float")
STEM_STRIDES = (1, 2, 4)


def _resnet_blocks(widths, convs_per_stage):
    """(filters, kernel_size, strides) of each BCNN block of a ResNet layout, at width multiplier
    1: the first conv of every stage after the first halves the map."""
    return [
        (filters, 3, 2 if stage > 0 and conv == 0 else 1)
        for stage, (filters, convs) in enumerate(zip(widths, convs_per_stage))
        for conv in range(convs)
    ]


_RESNET18_BLOCKS = _resnet_blocks((64, 128, 256, 512), (4, 4, 4, 4))
# Small-image layouts (28-96 px): a stride-2 input block, then few blocks (see BCNN8, BCNN6).
_BCNN8_BLOCKS = _resnet_blocks((32, 64, 128), (2, 2, 2))
_BCNN6_BLOCKS = _resnet_blocks((32, 64, 128, 256), (1, 1, 1, 1))
# ReActNet-A: (input width, output width, stride) of each MobileNet-V1 depthwise-separable pair.
_MOBILENET_V1_PAIRS = [
    (32, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 512, 2),
    *[(512, 512, 1)] * 5,
    (512, 1024, 2),
    (1024, 1024, 1),
]
_REACTNET_A_BLOCKS = [
    block for width_in, width_out, stride in _MOBILENET_V1_PAIRS for block in ((width_in, 3, stride), (width_out, 1, 1))
]


def scaled_width(filters, width_multiplier, channel_multiple=8):
    """`filters * width_multiplier`, rounded to the nearest multiple of `channel_multiple`
    (at least one multiple).

    Example:
        >>> scaled_width(64, 0.375), scaled_width(64, 0.375, channel_multiple=32)
        (24, 32)
    """
    multiple = int(channel_multiple)
    return max(multiple, int(filters * width_multiplier + multiple / 2) // multiple * multiple)


def default_encoding_levels(channels):
    """Thermometer levels per channel, `32 // channels`: at most 32 planes per pixel, one
    32-bit packed word for images of up to 32 channels.

    The encoding runs at full input resolution, so its cost grows with `channels * levels`;
    one word keeps the input block cheap (32 levels for grey images, 10 for RGB: 30 planes).

    Example:
        >>> default_encoding_levels(3)
        10
    """
    return max(1, ENCODING_PLANES // int(channels))


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
        names = sorted({dataset for _, dataset in pretrained.SHIPPED})
        raise ValueError(
            f"weights must be None, the name of shipped weights ({', '.join(map(repr, names))}) "
            f"or the path of an existing weights file, got {weights!r}"
        )
    if include_top and (not isinstance(classes, int) or classes < 1):
        raise ValueError(f"classes must be an integer >= 1, got {classes!r}")


def _bcnn(
    blocks,
    *,
    stem_filters,
    default_stem_stride,
    stem_strides,
    stem_kernel_size,
    stem_pool_size,
    name,
    include_top,
    weights,
    input_tensor,
    input_shape,
    pooling,
    classes,
    classifier_activation,
    width_multiplier,
    channel_multiple,
    input_encoding,
    encoding_levels,
    nonlinearity,
    input_layer,
    shortcut,
    classifier,
    binary,
):
    """Builds any BCNN: input block, `blocks` of (filters, kernel, stride), classifier."""
    _check_arguments(weights, classes, include_top, pooling)
    if width_multiplier <= 0:
        raise ValueError(f"width_multiplier must be > 0, got {width_multiplier!r}")
    layers.check_choice("channel_multiple", channel_multiple, CHANNEL_MULTIPLES)
    # Checked here, not only in the binary input block: a float input layer ignores it.
    layers.check_choice("input_encoding", input_encoding, layers.INPUT_ENCODINGS)
    layers.check_choice("input_layer", input_layer, LAYER_KINDS)
    layers.check_choice("classifier", classifier, LAYER_KINDS)
    width = lambda filters: scaled_width(filters, width_multiplier, channel_multiple)  # noqa: E731
    image, input_shape = _input_image(input_shape, input_tensor)

    if stem_strides is not None:
        if stem_strides not in STEM_STRIDES:
            raise ValueError(f"stem_strides must be None, 1, 2 or 4, got {stem_strides!r}")
        stem_stride = stem_strides
    elif max(input_shape[:2]) <= SMALL_IMAGE_MAX_SIDE:
        stem_stride = 1
    else:
        stem_stride = default_stem_stride
    if stem_pool_size is None:
        # At ImageNet sizes encoding every pixel into 30 planes cost more than the rest of the
        # input block; averaging 2x2 pixels first quarters it (benchmarks/README.md, inference).
        # An explicit kernel size keeps the block as it was asked for.
        large = max(input_shape[:2]) > SMALL_IMAGE_MAX_SIDE
        automatic = large and stem_stride == 4 and input_layer == "binary" and stem_kernel_size is None
        stem_pool_size = 2 if automatic else 1
    if stem_pool_size not in (1, 2) or stem_stride % stem_pool_size:
        raise ValueError(
            f"stem_pool_size must be None, 1 or 2 and divide the stem stride {stem_stride}, got {stem_pool_size!r}"
        )
    if stem_pool_size > 1 and input_layer == "float":
        raise ValueError("stem_pool_size applies to the binary input block, not to input_layer='float'")
    conv_stride = stem_stride // stem_pool_size
    if stem_kernel_size is None:
        # A patchify stem (kernel = stride) replaces the float stem's early downsampling.
        stem_kernel_size = 3 if conv_stride == 1 else conv_stride
    elif stem_kernel_size < conv_stride:
        raise ValueError(f"stem_kernel_size must be >= the stem conv's stride {conv_stride}, got {stem_kernel_size!r}")
    if input_layer == "float":
        x = layers.float_input_block(
            image, width(stem_filters), kernel_size=stem_kernel_size, strides=stem_stride, name="stem"
        )
    else:
        x = layers.binary_input_block(
            image,
            width(stem_filters),
            levels=default_encoding_levels(input_shape[-1]) if encoding_levels is None else encoding_levels,
            encoding=input_encoding,
            kernel_size=stem_kernel_size,
            strides=conv_stride,
            pool_size=stem_pool_size,
            binary=binary,
            name="stem",
        )
    for index, (filters, kernel_size, strides) in enumerate(blocks):
        x = layers.bcnn_block(
            x,
            width(filters),
            kernel_size,
            strides,
            nonlinearity=nonlinearity,
            shortcut=shortcut,
            binary=binary,
            name=f"block{index + 1}",
        )

    if include_top:
        x = tf.keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if classifier == "float":
            x = layers.float_classifier(x, classes, activation=classifier_activation)
        else:
            x = layers.binary_classifier(x, classes, activation=classifier_activation, binary=binary)
    elif pooling == "avg":
        x = tf.keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = tf.keras.layers.GlobalMaxPooling2D(name="max_pool")(x)

    inputs = tf.keras.utils.get_source_inputs(image) if input_tensor is not None else image
    model = tf.keras.Model(inputs, x, name=name if binary else f"{name}_float")
    if isinstance(weights, pretrained.PretrainedWeights):
        weights.load_into(model, include_top)
        if include_top:
            model.class_names = weights.class_names  # the exporter writes them into the .tflite
    elif weights is not None:
        model.load_weights(weights)
    return model


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


def BCNN18(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    width_multiplier=1.0,
    channel_multiple=8,
    stem_strides=None,
    stem_kernel_size=None,
    stem_pool_size=None,
    input_encoding="thermometer",
    encoding_levels=None,
    nonlinearity="rprelu",
    input_layer="binary",
    shortcut="pool",
    classifier="binary",
    binary=True,
    name="bcnn18",
):
    """A fully binary ResNet-18: every conv and the classifier are 1-bit x 1-bit.

    Example:
        >>> model = bcnn_keras.BCNN18(input_shape=(32, 32, 3), classes=10, width_multiplier=0.25)
        >>> model.output_shape
        (None, 10)
        >>> trained = bcnn_keras.BCNN18(weights="fashion_mnist")  # 28x28x1, 10 classes
    """
    # Every argument above goes to the builder; named weights fix the architecture's.
    return _bcnn(_RESNET18_BLOCKS, stem_filters=64, default_stem_stride=4, **pretrained.resolve(BCNN18, locals()))


def BCNN18Small(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    width_multiplier=0.5,
    channel_multiple=8,
    stem_strides=None,
    stem_kernel_size=None,
    stem_pool_size=None,
    input_encoding="thermometer",
    encoding_levels=None,
    nonlinearity="rprelu",
    input_layer="binary",
    shortcut="pool",
    classifier="binary",
    binary=True,
    name="bcnn18_small",
):
    """BCNN18 at half width (32/64/128/256 channels): the size and latency class of larq-zoo's
    QuickNetSmall, fully binary. About 0.4 MB as a `.tflite` at 224x224 with 1000 classes.

    Example:
        >>> model = bcnn_keras.BCNN18Small(input_shape=(32, 32, 3), classes=10)
        >>> model.get_layer("block1_conv").filters
        32
    """
    # Every argument above goes to the builder; named weights fix the architecture's.
    return _bcnn(_RESNET18_BLOCKS, stem_filters=64, default_stem_stride=4, **pretrained.resolve(BCNN18Small, locals()))


def BCNNA(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    width_multiplier=1.0,
    channel_multiple=8,
    stem_strides=None,
    stem_kernel_size=None,
    stem_pool_size=None,
    input_encoding="thermometer",
    encoding_levels=None,
    nonlinearity="rprelu",
    input_layer="binary",
    shortcut="pool",
    classifier="binary",
    binary=True,
    name="bcnna",
):
    """A fully binary ReActNet-A (MobileNet-V1 layout), binary stem, shortcuts and classifier.

    Example:
        >>> model = bcnn_keras.BCNNA(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
        >>> model.output_shape
        (None, 10)
    """
    # Every argument above goes to the builder; named weights fix the architecture's.
    return _bcnn(_REACTNET_A_BLOCKS, stem_filters=32, default_stem_stride=2, **pretrained.resolve(BCNNA, locals()))


def BCNN8(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    width_multiplier=1.0,
    channel_multiple=8,
    stem_strides=2,
    stem_kernel_size=3,
    stem_pool_size=None,
    input_encoding="thermometer",
    encoding_levels=None,
    nonlinearity="rprelu",
    input_layer="binary",
    shortcut="pool",
    classifier="binary",
    binary=True,
    name="bcnn8",
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
    # Every argument above goes to the builder; named weights fix the architecture's.
    return _bcnn(_BCNN8_BLOCKS, stem_filters=32, default_stem_stride=2, **pretrained.resolve(BCNN8, locals()))


def BCNN6(
    *,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    width_multiplier=1.0,
    channel_multiple=8,
    stem_strides=2,
    stem_kernel_size=3,
    stem_pool_size=None,
    input_encoding="thermometer",
    encoding_levels=None,
    nonlinearity="rprelu",
    input_layer="binary",
    shortcut="pool",
    classifier="binary",
    binary=True,
    name="bcnn6",
):
    """The smallest fully binary network for small images: a 3x3 stride-2 input block of 32
    channels, then one BCNN block per stage (32, 64, 128, 256 channels), 6 binary matrix ops.

    Example:
        >>> model = bcnn_keras.BCNN6(input_shape=(28, 28, 1), classes=10)
        >>> [model.get_layer(f"block{i}_conv").filters for i in range(1, 5)]
        [32, 64, 128, 256]
    """
    # Every argument above goes to the builder; named weights fix the architecture's.
    return _bcnn(_BCNN6_BLOCKS, stem_filters=32, default_stem_stride=2, **pretrained.resolve(BCNN6, locals()))


# The presets share their arguments, documented once (as keras.applications does).
for _preset in (BCNN18, BCNN18Small, BCNNA, BCNN8, BCNN6):
    _preset.__doc__ += _COMMON_ARGUMENTS_DOC


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
