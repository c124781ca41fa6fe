"""bcnn_keras: fully binary convolutional networks (BCNN) for Keras and Larq Compute Engine.

Every convolution and fully-connected matrix multiply, including the layer on the raw image,
the downsampling shortcuts and the classifier, is 1-bit weights x 1-bit activations.

Example:
    >>> import bcnn_keras
    >>> model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
    >>> bcnn_keras.get_phase(model)
    2
"""

__version__ = "0.1.0"

_KERAS3_LOADED_MESSAGE = (
    "bcnn_keras needs Keras 2 (tf-keras) but tf.keras is already Keras 3: "
    "set TF_USE_LEGACY_KERAS=1 in the environment, or import bcnn_keras before touching tf.keras."
)


# The values TensorFlow reads as "yes" in TF_USE_LEGACY_KERAS.
_TRUE_VALUES = ("1", "true", "True")


def _ensure_keras2():
    import os

    # TensorFlow decides which Keras `tf.keras` means on its first attribute access,
    # so the variable still takes effect as long as nobody has touched tf.keras yet. A value
    # the user set is theirs: it is never overwritten.
    chosen = os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if chosen not in _TRUE_VALUES:
        raise ImportError(
            f"bcnn_keras needs Keras 2 (tf-keras), as larq does, but TF_USE_LEGACY_KERAS={chosen} "
            "asks for Keras 3: set it to 1, or unset it."
        )
    # TensorFlow turns oneDNN on by default only on x86 CPUs with AVX512_VNNI, AVX512_BF16 or
    # AMX. Elsewhere its default kernels are much slower at the backward pass of convolutions
    # on small maps, most of a BCNN's training time. The variable is read when TensorFlow is
    # imported, so it only takes effect when bcnn_keras comes first; TF_ENABLE_ONEDNN_OPTS=0
    # opts out.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    import tensorflow as tf

    if not tf.keras.Model.__module__.startswith("tf_keras."):
        raise ImportError(_KERAS3_LOADED_MESSAGE)


_ensure_keras2()

from bcnn_keras import callbacks, data, distillation, pretrained  # noqa: E402
from bcnn_keras.layers import (  # noqa: E402
    BinaryConv2D,
    ChannelDuplication,
    HardTanh,
    LearnedThreshold,
    PhasedSign,
    RPReLU,
    ThermometerEncoding,
    bcnn_block,
    binary_classifier,
    binary_input_block,
    downsampling_shortcut,
    float_classifier,
    float_input_block,
    get_phase,
    phased_quantizers,
    set_phase,
)
from bcnn_keras.models import BCNN18, BCNN18Small, BCNNA, custom_objects  # noqa: E402

__all__ = [
    "BCNN18",
    "BCNN18Small",
    "BCNNA",
    "BinaryConv2D",
    "ChannelDuplication",
    "HardTanh",
    "LearnedThreshold",
    "PhasedSign",
    "RPReLU",
    "ThermometerEncoding",
    "bcnn_block",
    "binary_classifier",
    "binary_input_block",
    "callbacks",
    "custom_objects",
    "data",
    "distillation",
    "downsampling_shortcut",
    "float_classifier",
    "float_input_block",
    "get_phase",
    "phased_quantizers",
    "pretrained",
    "set_phase",
]
