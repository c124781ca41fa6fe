"""bcnn_keras: fully binary convolutional networks (BCNN) for Keras and Larq Compute Engine.

Every convolution and fully-connected matrix multiply, including the layer on the raw image,
the downsampling shortcuts and the classifier, is 1-bit weights x 1-bit activations.

`import bcnn_keras` selects Keras 2 (tf-keras, which larq needs) for `tf.keras`, whether
TensorFlow was imported before or not, and imports nothing else: TensorFlow loads when a name
that needs it is first used, so the command lines can turn its logs down first.

Example:
    >>> import bcnn_keras
    >>> model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
    >>> bcnn_keras.get_phase(model)
    2
"""

import os
import sys

from bcnn_keras.lazy import lazy_package

from bcnn_keras.version import __version__  # noqa: F401  (the public name)

_KERAS3_LOADED_MESSAGE = (
    "bcnn_keras needs Keras 2 (tf-keras), but tf.keras was already used as Keras 3 in this process: "
    "import bcnn_keras before the first use of tf.keras (importing tensorflow or keras first is fine), "
    "or set TF_USE_LEGACY_KERAS=1 in the environment."
)
# The values TensorFlow reads as "yes" in TF_USE_LEGACY_KERAS.
_TRUE_VALUES = ("1", "true", "True")


def _select_keras2():
    # TensorFlow reads the variable on the first use of `tf.keras`, so setting it here works as
    # long as nobody has used tf.keras yet. A value the user set is theirs: never overwritten.
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
    if "tensorflow" in sys.modules:
        _redirect_imported_tensorflow(sys.modules["tensorflow"])


def _redirect_imported_tensorflow(tf):
    """Points an already imported TensorFlow at Keras 2, unless it has used Keras 3 already.

    `import tensorflow` without TF_USE_LEGACY_KERAS puts Keras 3's folders first on
    `tensorflow.__path__`, so `from tensorflow.keras.x import y` (as larq does) would find Keras
    3 even after `tf.keras` itself switched: Keras 2's folder goes first instead.
    """
    keras = tf.__dict__.get("keras")
    state = vars(keras) if keras is not None else {}  # vars(): reading it does not load Keras
    if state.get("_tfll_initialized") and state.get("_tfll_keras_version") == "keras_3":
        raise ImportError(_KERAS3_LOADED_MESSAGE)
    if keras is not None and "_tfll_initialized" not in state and not keras.__name__.startswith("tf_keras"):
        raise ImportError(_KERAS3_LOADED_MESSAGE)  # `import tensorflow.keras` replaced the lazy loader
    from tensorflow.python.tools import module_util

    keras3 = {module_util.get_parent_dir_for_name(name) for name in ("keras.api._v2.keras", "keras._tf_keras.keras")}
    keras2 = module_util.get_parent_dir_for_name("tf_keras.api._v2.keras")
    tf.__path__[:] = [keras2] + [path for path in tf.__path__ if path not in keras3 and path != keras2]


_select_keras2()

# Public names -> the module that defines them, imported on first use.
_EXPORTS = {
    "BCNN18": "models",
    "BCNN18Small": "models",
    "BCNNA": "models",
    "BCNN8": "models",
    "BCNN9": "models",
    "BCNN10": "models",
    "BCNN6": "models",
    "custom_objects": "models",
    **{
        name: "layers"
        for name in (
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
            "downsampling_shortcut",
            "float_classifier",
            "float_input_block",
            "get_phase",
            "phased_quantizers",
            "set_phase",
        )
    },
}
_SUBMODULES = ("architecture", "callbacks", "data", "distillation", "pretrained", "training")

__all__ = sorted([*_EXPORTS, *_SUBMODULES])
lazy_package(__name__, _EXPORTS, _SUBMODULES)
