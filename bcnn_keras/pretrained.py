"""Trained weights shipped with the package: `BCNN18(..., weights="fashion_mnist")`.

A model in phase 2 uses only the sign of each binary kernel, so a weights file stores those as
packed bits (1 bit per weight, `np.packbits`) next to the float parameters (batch norm, RPReLU,
thresholds). Loaded, every binary kernel holds -1/+1 latent weights: the same model in phase 2,
bit for bit, at a twentieth of a Keras weights file. Each shipped model has a folder in
`bcnn_keras/pretrained/` (see `PretrainedWeights`).
"""

import dataclasses
import hashlib
import inspect
import json
import pathlib

import numpy as np

PRETRAINED_DIR = pathlib.Path(__file__).parent / "pretrained"
# Marks the packed sign bits of a binary kernel in the weights file.
_SIGN_BITS = "sign_bits:"
# The layer-name prefix of a model's top (`layers.binary_classifier` and `float_classifier`).
CLASSIFIER_PREFIX = "classifier"
_SHAPE = "shape:"


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """One shipped model: what it fits and what it reached, in its folder of `PRETRAINED_DIR`.

    The folder holds `weights.npz` (checked against `sha256` on every load), `record.json`
    (the training command, accuracy and export check), `model.tflite` (its export, ready for
    `bcnn_keras.predict`) and `classes.json` (the class names). `architecture` holds the builder
    arguments the weights were trained with; `top1` is the recorded top-1 on the test split.

    Example:
        >>> shipped = SHIPPED[("BCNN18", "fashion_mnist")]
        >>> shipped.tflite_path.name, round(shipped.top1, 4)
        ('model.tflite', 0.9214)
    """

    preset: str
    dataset: str
    folder: str
    sha256: str
    architecture: dict
    top1: float

    @property
    def path(self):
        return PRETRAINED_DIR / self.folder / "weights.npz"

    @property
    def tflite_path(self):
        return PRETRAINED_DIR / self.folder / "model.tflite"

    @property
    def record(self):
        """The training command, accuracy and export check (`record.json`)."""
        with open(PRETRAINED_DIR / self.folder / "record.json") as stream:
            return json.load(stream)

    @property
    def class_names(self):
        """The names of the classes, as the classifier orders them (`classes.json`)."""
        with open(PRETRAINED_DIR / self.folder / "classes.json") as stream:
            return json.load(stream)

    def load_into(self, model, include_top=True):
        """Loads the weights into `model` after checking their checksum; without the top, the
        classifier's weights are left out."""
        load_binary_weights(model, self.path, sha256=self.sha256, skip=() if include_top else (CLASSIFIER_PREFIX,))


SHIPPED = {
    ("BCNN18", "fashion_mnist"): PretrainedWeights(
        preset="BCNN18",
        dataset="fashion_mnist",
        folder="bcnn18_fashion_mnist",
        sha256="6937e6add0da8b8304b940f55cbce0e6283e28af3e0b74b8a753e7dceaf33d3f",
        architecture=dict(
            input_shape=(28, 28, 1),
            classes=10,
            width_multiplier=0.25,
            channel_multiple=8,
            stem_strides=1,
            stem_kernel_size=3,
        ),
        top1=0.9214,
    ),
}

# The names that `weights=` accepts for shipped weights ("fashion_mnist").
SHIPPED_DATASETS = frozenset(dataset for _, dataset in SHIPPED)


def _named_weights(model):
    """`model`'s weights as {"layer/weight:0": variable}, each marked whether phase 2
    binarizes it, without the phase flags (`set_phase` owns those).

    Names come from the layers: a model loaded from a file may have lost the layer prefix in
    its variables' own names.
    """
    from bcnn_keras import layers  # TensorFlow: not needed to read the table of shipped weights

    phase_flags = {id(q.phase_variable) for q in layers.phased_quantizers(model)}
    weights = {}
    for layer in model.layers:
        binary_kernel = isinstance(getattr(layer, "kernel_quantizer", None), layers.PhasedSign)
        for variable in layer.weights:
            if id(variable) in phase_flags:
                continue
            short_name = variable.name.split("/")[-1]
            weights[f"{layer.name}/{short_name}"] = (variable, binary_kernel and short_name.startswith("kernel"))
    return weights


def save_binary_weights(model, path):
    """Writes `model`'s phase-2 weights to `path` (`.npz`): binary kernels as packed sign bits.

    Example:
        >>> model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
        >>> save_binary_weights(model, "bcnn18.npz")
    """
    arrays = {}
    for name, (variable, binary) in _named_weights(model).items():
        value = np.asarray(variable.numpy())
        if binary:
            # larq's sign maps 0 to +1.
            arrays[_SIGN_BITS + name] = np.packbits(value >= 0)
            arrays[_SHAPE + name] = np.asarray(value.shape, dtype=np.int64)
        else:
            arrays[name] = value
    with open(path, "wb") as stream:
        np.savez_compressed(stream, **arrays)


def file_sha256(path):
    """The SHA-256 of the file at `path` as hex: what `PretrainedWeights.sha256` and a
    `record.json` hold.

    Example:
        >>> _ = pathlib.Path("empty.bin").write_bytes(b"")
        >>> file_sha256("empty.bin")[:16]
        'e3b0c44298fc1c14'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_binary_weights(model, path, sha256=None, skip=()):
    """Loads a file of `save_binary_weights` into `model` and puts it into phase 2.

    `sha256`, when given, must match the file's checksum. Every weight must be present with its
    shape; a file that does not fit raises `ValueError` naming the first difference. Weights of
    layers whose names start with one of `skip` may be in the file without a place in `model`
    (the classifier, for a model built without its top).

    Example:
        >>> trained = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
        >>> save_binary_weights(trained, "bcnn18.npz")
        >>> model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
        >>> load_binary_weights(model, "bcnn18.npz")
    """
    if sha256 is not None and file_sha256(path) != sha256:
        raise ValueError(f"{path} does not match its recorded checksum: the file is damaged or was replaced")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not a weights file of save_binary_weights: {error}") from None
    values, unused = [], set(arrays)
    for name, (variable, binary) in _named_weights(model).items():
        value = _unpacked(path, arrays, name, tuple(variable.shape)) if binary else arrays.get(name)
        if value is None:
            raise ValueError(f"{path} has no weight {name}")
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{path}: {name} has shape {tuple(value.shape)}, the model's is {tuple(variable.shape)}")
        values.append((variable, value))
        unused -= {name, _SIGN_BITS + name, _SHAPE + name}
    unused = {name for name in unused if not _weight_name(name).startswith(tuple(skip))}
    if unused:
        # Weights of layers this model lacks: it is not the model the file was saved from.
        raise ValueError(f"{path} holds weights the model has no place for, such as {sorted(unused)[0]}")
    for variable, value in values:
        variable.assign(value)
    from bcnn_keras import layers

    layers.set_phase(model, 2)


def _weight_name(key):
    """ "layer/weight:0" of a key of the weights file."""
    for prefix in (_SIGN_BITS, _SHAPE):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def _unpacked(path, arrays, name, shape):
    """The -1/+1 kernel of `name` from its packed sign bits, checked against the model's shape."""
    bits, recorded = arrays.get(_SIGN_BITS + name), arrays.get(_SHAPE + name)
    if bits is None or recorded is None:
        raise ValueError(f"{path} has no sign bits for the binary kernel {name}")
    if tuple(int(d) for d in recorded) != shape:
        raise ValueError(f"{path}: {name} has shape {tuple(int(d) for d in recorded)}, the model's is {shape}")
    count = int(np.prod(shape))
    # unpackbits pads a short array with zeros (-1 weights): the length must be exact.
    if bits.dtype != np.uint8 or bits.shape != (-(-count // 8),):
        raise ValueError(f"{path}: the sign bits of {name} do not fit its shape {shape}")
    return np.where(np.unpackbits(bits, count=count).reshape(shape) == 1, 1.0, -1.0).astype(np.float32)


def resolve(preset, arguments):
    """The builder `arguments` of `preset` with named weights (`weights="fashion_mnist"`) applied.

    The named weights fix the architecture they were trained with: an argument left at its
    default takes the recorded value, and any other value raises `ValueError`. Without the top
    (`include_top=False`, for fine-tuning) the classes do not matter and the input may have any
    size the architecture accepts, with the recorded channel count. `weights` becomes the
    `PretrainedWeights`; other values pass through unchanged.
    """
    weights = arguments.get("weights")
    if not isinstance(weights, str) or weights not in SHIPPED_DATASETS:
        return arguments
    shipped = SHIPPED.get((preset.__name__, weights))
    if shipped is None:
        presets = sorted(p for p, dataset in SHIPPED if dataset == weights)
        raise ValueError(f"weights={weights!r} exist only for {', '.join(presets)}, not for {preset.__name__}")
    if not arguments["binary"]:
        raise ValueError(f"weights={weights!r} are the binary model's: they need binary=True")
    defaults = {name: p.default for name, p in inspect.signature(preset).parameters.items()}
    resolved = dict(arguments, weights=shipped)
    trunk = not arguments["include_top"]
    for name, recorded in shipped.architecture.items():
        given = arguments[name]
        if trunk and name == "classes":
            continue
        if trunk and name == "input_shape" and given is not None:
            _check_channels(weights, given, recorded)
            continue
        if given is not None and tuple(np.atleast_1d(given)) == tuple(np.atleast_1d(recorded)):
            continue
        if given != defaults[name]:
            hint = " (leave it out to take the trained value)"
            if name in ("classes", "input_shape"):
                hint = (
                    f"; for {'other classes' if name == 'classes' else 'another input size'}, build the trunk with "
                    f"include_top=False and put a new classifier on it (fine-tuning)"
                )
            raise ValueError(f"weights={weights!r} were trained with {name}={recorded!r}, got {name}={given!r}{hint}")
        resolved[name] = recorded
    return resolved


def _check_channels(weights, input_shape, recorded):
    if len(tuple(input_shape)) != 3 or tuple(input_shape)[-1] != recorded[-1]:
        raise ValueError(
            f"weights={weights!r} are for images of {recorded[-1]} channel(s), got input_shape={tuple(input_shape)!r}: "
            "convert the images, or train from scratch"
        )
