"""A BCNN's architecture, declared once: its knobs (`Architecture`), the presets' layouts and
defaults (`PRESETS`) and how the input block's defaults resolve (`resolve_stem`).

The preset functions of `bcnn_keras.models` take these knobs as keywords with their preset's
defaults, `TrainConfig` has one flag per knob, and a run's `config.json` records the resolved
`Architecture`. No TensorFlow here: the training CLI reads its flags from this module.

Example:
    >>> PRESETS["BCNN8"].defaults.stem_strides, PRESETS["BCNN18Small"].defaults.width_multiplier
    (2, 0.5)
    >>> resolve_stem(Architecture(), PRESETS["BCNN18"], input_shape=(224, 224, 3))
    Stem(strides=4, pool_size=2, conv_strides=2, kernel_size=2)
"""

import dataclasses
import typing

# Widths round to a multiple of 8, or of 32: one word of LCE's bit-packing.
CHANNEL_MULTIPLES = (8, 32)
LAYER_KINDS = ("binary", "float")
STEM_STRIDES = (1, 2, 4)
STEM_POOL_SIZES = (1, 2)
SHORTCUTS = ("pool", "float_conv")
INPUT_ENCODINGS = ("thermometer", "learned")
NONLINEARITIES = ("rprelu", None)
# Thermometer planes of the default encoding: one 32-bit word of LCE's bit-packing per pixel.
ENCODING_PLANES = 32
# Inputs up to this size (both sides) get a stride-1 stem instead of the early downsampling.
SMALL_IMAGE_MAX_SIDE = 64


def _knob(default, *, help, choices=None, flag=True):
    """An `Architecture` field: its default (BCNN18's), its help and its allowed values; `flag`
    says whether the training CLI has a flag for it."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "flag": flag})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Architecture:
    """The knobs of a BCNN, each a keyword of every preset function (`BCNN18(width_multiplier=0.25)`).

    The defaults here are `BCNN18`'s; each preset of `PRESETS` has its own. `None` in a stem
    knob lets `resolve_stem` choose from the image size. Bad values raise a one-line `ValueError`.

    Example:
        >>> Architecture(width_multiplier=0.25).replace(stem_strides=1).stem_strides
        1
        >>> Architecture(shortcut="conv")
        Traceback (most recent call last):
        ValueError: shortcut must be one of 'pool', 'float_conv', got 'conv'
    """

    width_multiplier: float = _knob(1.0, help="scales every width, rounded to a multiple of --channel-multiple")
    channel_multiple: int = _knob(
        8, choices=CHANNEL_MULTIPLES, help="widths round to a multiple of this (32: one word of LCE's bit-packing)"
    )
    stem_strides: int | None = _knob(
        None, choices=STEM_STRIDES, help="stride of the input block; unset: 1 for images up to 64 px, else the model's"
    )
    stem_kernel_size: int | None = _knob(
        None, help="kernel size of the input block's conv; unset: 3 at stride 1, else its stride"
    )
    stem_pool_size: int | None = _knob(
        None,
        choices=STEM_POOL_SIZES,
        help="2: average 2x2 pixels before the encoding; unset: 2 for a stride-4 input block on images over "
        "64 px (runs made before this option at those sizes need 1)",
    )
    input_encoding: str = _knob("thermometer", choices=INPUT_ENCODINGS, help="how pixels become +-1 planes")
    encoding_levels: int | None = _knob(None, help="thermometer levels per image channel; unset: 32 // channels")
    nonlinearity: str | None = _knob(
        "rprelu", choices=NONLINEARITIES, help="after each residual add: 'rprelu' or None", flag=False
    )
    input_layer: str = _knob("binary", choices=LAYER_KINDS, help="'float': a real conv on the image (ablation)")
    shortcut: str = _knob(
        "pool", choices=SHORTCUTS, help="'float_conv': real 1x1 convs in downsampling shortcuts (ablation)"
    )
    classifier: str = _knob("binary", choices=LAYER_KINDS, help="'float': a real dense classifier (ablation)")
    binary: bool = _knob(True, help="False: the float twin (real weights, hard-tanh for sign)", flag=False)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value, choices = getattr(self, field.name), field.metadata["choices"]
            if choices is not None and not (value is None and field.default is None) and value not in choices:
                raise ValueError(f"{field.name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
        for name in ("width_multiplier", "stem_kernel_size", "encoding_levels"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if self.stem_pool_size not in (None, 1) and self.input_layer == "float":
            raise ValueError("stem_pool_size applies to the binary input block, not to input_layer='float'")

    def replace(self, **changes):
        """A copy with `changes`."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        return dataclasses.asdict(self)


KNOBS = tuple(field.name for field in dataclasses.fields(Architecture))


def _resnet_blocks(widths, convs_per_stage):
    """(filters, kernel_size, strides) of each BCNN block of a ResNet layout, at width multiplier
    1: the first conv of every stage after the first halves the map."""
    return tuple(
        (filters, 3, 2 if stage > 0 and conv == 0 else 1)
        for stage, (filters, convs) in enumerate(zip(widths, convs_per_stage))
        for conv in range(convs)
    )


# ReActNet-A: (input width, output width, stride) of each MobileNet-V1 depthwise-separable pair,
# each turned into a binary 3x3 block and a binary 1x1 block.
_MOBILENET_V1_PAIRS = (
    (32, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 512, 2),
    *[(512, 512, 1)] * 5,
    (512, 1024, 2),
    (1024, 1024, 1),
)


class Preset(typing.NamedTuple):
    """A model family: its BCNN blocks (filters, kernel size, stride at width 1), its input
    block's width and its stride on images over 64 px, and its knobs' defaults."""

    blocks: tuple
    stem_filters: int
    large_image_stem_strides: int
    defaults: Architecture


_RESNET18_BLOCKS = _resnet_blocks((64, 128, 256, 512), (4, 4, 4, 4))
# Small-image layouts (28-96 px): a 3x3 stride-2 input block of 32 channels, then few blocks.
_SMALL_IMAGE_DEFAULTS = Architecture(stem_strides=2, stem_kernel_size=3)

PRESETS = {
    "BCNN18": Preset(_RESNET18_BLOCKS, 64, 4, Architecture()),
    "BCNN18Small": Preset(_RESNET18_BLOCKS, 64, 4, Architecture(width_multiplier=0.5)),
    "BCNNA": Preset(
        tuple(block for w_in, w_out, stride in _MOBILENET_V1_PAIRS for block in ((w_in, 3, stride), (w_out, 1, 1))),
        32,
        2,
        Architecture(),
    ),
    "BCNN8": Preset(_resnet_blocks((32, 64, 128), (2, 2, 2)), 32, 2, _SMALL_IMAGE_DEFAULTS),
    "BCNN9": Preset(_resnet_blocks((32, 64, 128, 256), (2, 2, 2, 1)), 32, 2, _SMALL_IMAGE_DEFAULTS),
    "BCNN10": Preset(_resnet_blocks((32, 64, 128, 256), (2, 2, 3, 1)), 32, 2, _SMALL_IMAGE_DEFAULTS),
    "BCNN6": Preset(_resnet_blocks((32, 64, 128, 256), (1, 1, 1, 1)), 32, 2, _SMALL_IMAGE_DEFAULTS),
}


class Stem(typing.NamedTuple):
    """The input block, resolved: its total stride, the pixel pooling before the encoding, and
    its conv's stride and kernel size."""

    strides: int
    pool_size: int
    conv_strides: int
    kernel_size: int


def resolve_stem(architecture, preset, input_shape):
    """The input block of `architecture` in `preset` on images of `input_shape`: the stem knobs
    left at `None` are chosen from the image size.

    Example:
        >>> resolve_stem(Architecture(), PRESETS["BCNN18"], input_shape=(28, 28, 1))
        Stem(strides=1, pool_size=1, conv_strides=1, kernel_size=3)
    """
    large = max(input_shape[:2]) > SMALL_IMAGE_MAX_SIDE
    strides = architecture.stem_strides or (preset.large_image_stem_strides if large else 1)
    pool_size = architecture.stem_pool_size
    if pool_size is None:
        # At ImageNet sizes encoding every pixel into 30 planes cost more than the rest of the
        # input block; averaging 2x2 pixels first quarters it (benchmarks/README.md, inference).
        # An explicit kernel size keeps the block as it was asked for.
        automatic = large and strides == 4 and architecture.input_layer == "binary"
        pool_size = 2 if automatic and architecture.stem_kernel_size is None else 1
    if strides % pool_size:
        raise ValueError(f"stem_pool_size {pool_size} must divide the stem stride {strides}")
    conv_strides = strides // pool_size
    # A patchify stem (kernel = stride) replaces the float stem's early downsampling.
    kernel_size = architecture.stem_kernel_size or (3 if conv_strides == 1 else conv_strides)
    if kernel_size < conv_strides:
        raise ValueError(f"stem_kernel_size must be >= the stem conv's stride {conv_strides}, got {kernel_size!r}")
    return Stem(strides, pool_size, conv_strides, kernel_size)


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
