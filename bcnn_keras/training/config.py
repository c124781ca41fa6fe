"""The settings of a training run (`TrainConfig`), checked when made, and what `config.json`
records of them. No TensorFlow here: `bcnn-train --help` reads its flags from this module.

The architecture's settings are the knobs of `bcnn_keras.architecture.Architecture`, one field
each (`ArchitectureSettings`), with the help and allowed values declared there.
"""

import dataclasses
import math
import os

from bcnn_keras import data, pretrained
from bcnn_keras.architecture import PRESETS, Architecture

# Defaults of the schedule, shared with `bcnn_keras.callbacks.TwoStepTraining`.
PHASE1_WEIGHT_DECAY = 1e-5
WARMUP_EPOCHS = 0.0

# The key of config.json that records the resolved `Architecture` (`Architecture.to_dict()`),
# next to the settings it follows from.
RECORDED_ARCHITECTURE = "architecture"
STRATEGIES = ("default", "mirrored", "multiworker")
# Settings that do not change what is trained: where it goes, what it prints, how files load.
_NOT_RECORDED = ("output_dir", "verbose", "restart", "unsafe_load")
_PATH_SETTINGS = ("teacher", "data_dir", "manual_dir", "weights")
_POSITIVE = (
    "validation_images",
    "batch_size",
    "learning_rate",
    "phase2_learning_rate",
    "width_multiplier",
    "encoding_levels",
    "stem_kernel_size",
    "image_size",
)
_FINITE = ("alpha", "warmup_epochs", "phase1_weight_decay")
_FOLDER_ONLY = ("image_size", "validation_split")
_NAMED_DATASETS_ONLY = ("validation_images",)


class TrainingError(Exception):
    """A problem with the user's input, reported as one line."""

    __module__ = "bcnn_keras.training"  # its public name


def flag(name):
    """The command-line flag of the setting `name`, as errors name it.

    Example:
        >>> flag("phase1_epochs")
        '--phase1-epochs'
    """
    return "--" + name.replace("_", "-")


def _setting(default=dataclasses.MISSING, *, help, choices=None):
    """A `TrainConfig` field: its default, its help (the CLI's too) and its allowed values."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


def _knob_setting(field):
    """The `TrainConfig` field of an `Architecture` field: the default every preset shares, or
    `None` (the model's own) where the presets differ."""
    defaults = {preset: getattr(spec.defaults, field.name) for preset, spec in PRESETS.items()}
    shared = len(set(defaults.values())) == 1
    help = field.metadata["help"]
    if not shared:
        by_value = {}
        for preset, value in defaults.items():
            by_value.setdefault(value, []).append(preset)
        own = "; ".join(f"{value} for {', '.join(presets)}" for value, presets in by_value.items())
        help = f"{help} (default: the model's own: {own})"
    default = field.default if shared else None
    return (field.name, field.type, _setting(default, help=help, choices=field.metadata["choices"]))


# Settings of a training run that are `Architecture` knobs: all but `binary` (the float twin is
# `float_twin`) and `nonlinearity` (no flag: every preset has RPReLU).
_FLAGGED_KNOBS = [field for field in dataclasses.fields(Architecture) if field.metadata["flag"]]
ARCHITECTURE_SETTINGS = tuple(field.name for field in _FLAGGED_KNOBS)
ArchitectureSettings = dataclasses.make_dataclass(
    "ArchitectureSettings",
    [_knob_setting(field) for field in _FLAGGED_KNOBS],
    frozen=True,
    kw_only=True,
)
ArchitectureSettings.__doc__ = "The `Architecture` knobs that a training run sets, one field each."
ArchitectureSettings.__module__ = __name__


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(ArchitectureSettings):
    """Every setting of a training run; only `output_dir` has no default. Checked when made:
    a bad value raises a one-line `TrainingError` that names the setting by its flag.

    Example:
        >>> config = TrainConfig(dataset="fashion_mnist", output_dir="run", width_multiplier=0.125,
        ...                      phase1_epochs=1, phase2_epochs=1, train_limit=64, test_limit=64)
        >>> config.epochs, config.batch_size
        (2, 128)
        >>> TrainConfig(output_dir="run", batch_size=0)
        Traceback (most recent call last):
        bcnn_keras.training.TrainingError: --batch-size must be > 0
    """

    dataset: str = _setting(
        "fashion_mnist",
        help=f"dataset to train on: {', '.join(sorted(data.DATASETS))}, or folder:PATH, a folder of PNG/JPEG "
        "images with one subfolder per class (and optionally train/ and test/ splits)",
    )
    image_size: int | None = _setting(
        None, help="folder:PATH only: resize images to N x N (default: the size of the folder's first image)"
    )
    validation_split: float | None = _setting(
        None,
        help=f"folder:PATH without train/ and test/ only: the share of each class held out for testing "
        f"(default {data.DEFAULT_VALIDATION_SPLIT}; the same seeded split in every run, whatever --seed)",
    )
    validation_images: int | None = _setting(
        None,
        help="hold out a fixed, seeded set of N training images (the same in every run, whatever --seed) as "
        "the validation set: the per-epoch val_* metrics are measured on it, and the test split is evaluated "
        "once, at the end (test.json); not for folder:PATH, whose test split is --validation-split",
    )
    model: str = _setting("BCNN18", choices=tuple(sorted(PRESETS)), help="model family")
    phase1_epochs: int = _setting(4, help="epochs with binary activations, real weights")
    phase2_epochs: int = _setting(4, help="epochs with binary weights too")
    output_dir: str = _setting(help="where model, history, plots and checkpoints go; re-running resumes")
    teacher: str | None = _setting(
        None,
        help="distil from a float teacher: the path of a Keras model, or 'float-twin' to train the "
        "float twin first (step 0, in OUTPUT_DIR/teacher)",
    )
    init_from_teacher: bool = _setting(
        False,
        help="start phase 1 from the weights of the float-twin teacher (--teacher float-twin, or a float twin's "
        "file; layers it does not have start fresh)",
    )
    unsafe_load: bool = _setting(
        False,
        help="load a --teacher file that stores Python code (a Lambda layer) and run that code: only "
        "for files you trust",
    )
    teacher_epochs: int | None = _setting(None, help="epochs of the float-twin teacher (default: phase1 + phase2)")
    weights: str | None = _setting(
        None,
        help="fine-tune: start from trained weights, 'fashion_mnist' (the shipped BCNN18, for grey images; it sets "
        "the architecture) or the path of a .keras model of the same architecture; the classifier is new, for the "
        "dataset's classes",
    )
    head_epochs: int = _setting(
        0, help="with --weights: epochs that train only the new classifier (the rest frozen) before the two steps"
    )
    alpha: float = _setting(1.0, help="weight of the distillation loss against the label loss (1 = teacher only)")
    float_twin: bool = _setting(False, help="train the float twin instead (the float baseline)")
    batch_size: int = _setting(128, help="global batch size")
    learning_rate: float = _setting(2e-3, help="peak Adam learning rate of each phase")
    phase2_learning_rate: float | None = _setting(None, help="peak learning rate of phase 2 (default: --learning-rate)")
    warmup_epochs: float = _setting(WARMUP_EPOCHS, help="linear warm-up at the start of each phase")
    phase1_weight_decay: float = _setting(PHASE1_WEIGHT_DECAY, help="decoupled weight decay in phase 1")
    strategy: str = _setting(
        "default", choices=STRATEGIES, help="tf.distribute strategy ('multiworker' reads TF_CONFIG)"
    )
    mixed_precision: bool = _setting(False, help="train with the mixed_float16 policy (for GPUs)")
    augment: str = _setting(
        "standard",
        choices=data.AUGMENTATIONS,
        help="training augmentation: 'standard' (pad-and-crop and flip; random resized crop on ImageNet), "
        "'flip' only, or 'none'",
    )
    restart: bool = _setting(
        False,
        help="delete the run in --output-dir (model, history, checkpoints, backup, logs, teacher) and start over",
    )
    seed: int = _setting(0, help="seed of weights, shuffling and augmentation")
    data_dir: str | None = _setting(None, help="tensorflow-datasets data dir (or a dir with Fashion-MNIST IDX files)")
    manual_dir: str | None = _setting(None, help="tensorflow-datasets manual download dir (ImageNet)")
    train_limit: int | None = _setting(None, help="train on the first N examples only (quick runs)")
    test_limit: int | None = _setting(None, help="evaluate on the first N test examples only")
    verbose: int = _setting(1, choices=(0, 1, 2), help="Keras verbosity (1: progress bars)")

    def __post_init__(self):
        check_dataset_name(self.dataset)
        for field in dataclasses.fields(self):
            value, choices = getattr(self, field.name), field.metadata["choices"]
            # The default is always allowed: None means "the model's choice" for `stem_strides`.
            if choices is not None and value != field.default and value not in choices:
                raise TrainingError(f"{flag(field.name)}: {_invalid_choice(value, map(str, choices))}")
        self._check_values()

    def _check_values(self):
        if self.phase1_epochs < 0 or self.phase2_epochs < 0 or self.epochs < 1:
            raise TrainingError("--phase1-epochs and --phase2-epochs must be >= 0 with at least one epoch in total")
        for name in _POSITIVE:
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise TrainingError(f"{flag(name)} must be > 0")
        for name in _FINITE:
            if not math.isfinite(getattr(self, name)):
                raise TrainingError(f"{flag(name)} must be a finite number")
        if self.validation_split is not None and not 0 < self.validation_split < 1:
            raise TrainingError(f"--validation-split must be between 0 and 1 (exclusive), got {self.validation_split}")
        for name in _FOLDER_ONLY:
            if getattr(self, name) is not None and not data.is_folder(self.dataset):
                raise TrainingError(f"{flag(name)} is for --dataset folder:PATH only")
        for name in _NAMED_DATASETS_ONLY:
            if getattr(self, name) is not None and data.is_folder(self.dataset):
                raise TrainingError(f"{flag(name)} is not for --dataset folder:PATH (use --validation-split)")
        if self.init_from_teacher and not self.teacher:
            raise TrainingError("--init-from-teacher needs --teacher (float-twin, or the file of a float twin)")
        if self.teacher and self.float_twin:
            raise TrainingError("--teacher and --float-twin exclude each other")
        if self.head_epochs < 0:
            raise TrainingError("--head-epochs must be >= 0")
        if self.head_epochs and not self.weights:
            raise TrainingError("--head-epochs needs --weights (a trained model to fine-tune)")
        if self.weights and (self.float_twin or self.init_from_teacher):
            raise TrainingError("--weights starts from trained weights: not with --float-twin or --init-from-teacher")

    @classmethod
    def from_record(cls, recorded, output_dir):
        """The config of a run from what its `config.json` records (`recorded`).

        Example:
            >>> TrainConfig.from_record({"seed": 1, "architecture": {}}, "run").seed
            1
            >>> TrainConfig.from_record({"sed": 1}, "run")
            Traceback (most recent call last):
            bcnn_keras.training.TrainingError: run/config.json is from another version of the training CLI (no ...)
        """
        settings = {key: value for key, value in recorded.items() if key != RECORDED_ARCHITECTURE}
        unknown = sorted(set(settings) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise TrainingError(
                f"{os.path.join(output_dir, 'config.json')} is from another version of the training CLI "
                f"(no setting {', '.join(map(repr, unknown))})"
            )
        return cls(output_dir=output_dir, **settings)

    def to_argv(self):
        """The flags of the training CLI that make this config: one per setting that is not at
        its default (`python -m bcnn_keras.train` + these runs it).

        Example:
            >>> TrainConfig(output_dir="run", phase2_epochs=12, teacher="float-twin", init_from_teacher=True).to_argv()
            ['--phase2-epochs', '12', '--output-dir', 'run', '--teacher', 'float-twin', '--init-from-teacher']
        """
        argv = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value == field.default or value is None or value is False:
                continue
            argv += [flag(field.name)] if value is True else [flag(field.name), str(value)]
        return argv

    @property
    def epochs(self):
        """The epochs of both phases together."""
        return self.phase1_epochs + self.phase2_epochs

    @property
    def teacher_training_epochs(self):
        """The epochs of the float-twin teacher: `teacher_epochs`, else as many as the student's."""
        return self.teacher_epochs or self.epochs


def _invalid_choice(value, choices):
    return f"invalid choice: {value!r} (choose from {', '.join(choices)})"


def check_dataset_name(name):
    """Raises `TrainingError` unless `name` is a known dataset or `folder:PATH`.

    Example:
        >>> check_dataset_name("folder:photos")
        >>> check_dataset_name("mnist")
        Traceback (most recent call last):
        bcnn_keras.training.TrainingError: invalid choice: 'mnist' (choose from cifar10, fashion_mnist, ...)
    """
    if name in data.DATASETS or (data.is_folder(name) and len(name) > len(data.FOLDER_PREFIX)):
        return
    hint = (
        f"; {name} is a folder: use --dataset {data.FOLDER_PREFIX}{name}"
        if os.path.isdir(os.path.expanduser(name))
        else ""
    )
    raise TrainingError(_invalid_choice(name, [*sorted(data.DATASETS), "or folder:PATH"]) + hint)


def recorded_settings(config):
    """The settings that shape the model, the data and the schedule, as `config.json` records
    them (paths made absolute, so that a resume from another working dir matches).

    Example:
        >>> recorded_settings(TrainConfig(output_dir="run"))["phase1_epochs"]
        4
    """
    settings = {key: value for key, value in sorted(dataclasses.asdict(config).items()) if key not in _NOT_RECORDED}
    for key in _PATH_SETTINGS:
        if settings[key] not in (None, "float-twin", *pretrained.SHIPPED_DATASETS):
            settings[key] = os.path.abspath(settings[key])
    if data.is_folder(settings["dataset"]):
        folder = settings["dataset"][len(data.FOLDER_PREFIX) :]
        settings["dataset"] = data.FOLDER_PREFIX + os.path.abspath(os.path.expanduser(folder))
    return settings
