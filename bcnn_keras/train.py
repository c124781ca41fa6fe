"""Training CLI: two-step training of a BCNN, optionally distilled from a float teacher.

    python -m bcnn_keras.train --dataset fashion_mnist --model BCNN18 \\
        --phase1-epochs 4 --phase2-epochs 4 --output-dir runs/fmnist

`--dataset folder:PATH` trains on your own images (one subfolder per class, see
`data.scan_image_folder`); the model's input shape and class count follow the folder.

Writes to the output dir: `model.keras` (the final model), `classes.json` (the class names, when
the dataset has them), `history.json` (one record per
epoch, with `phase` and `learning_rate`), `training.png` (loss and accuracy across both phases,
the switch marked), `checkpoints/epoch_NNN.keras`, TensorBoard logs in `logs/`, and a backup in
`backup/` from which a re-run with the same output dir resumes (also after SIGKILL).
"""

import argparse
import math
import os
import shutil
import sys
import tempfile
from typing import NamedTuple

import tensorflow as tf

from bcnn_keras import callbacks, data, distillation, files, layers, loading, models
from bcnn_keras.cli import OneLineParser
from bcnn_keras.plots import plot_history

MODELS = {"BCNN18": models.BCNN18, "BCNNA": models.BCNNA}
STRATEGIES = ("default", "mirrored", "multiworker")
CONFIG_FILE = "config.json"
# Flags that do not change what is trained: where it goes, what it prints, how files load.
_NOT_CONFIGURATION = ("output_dir", "verbose", "restart", "unsafe_load")
# What a run writes into its output dir (and --restart removes).
RUN_FILES = (CONFIG_FILE, "model.keras", data.CLASS_NAMES_FILE, "history.json", "training.png", "checkpoints", "backup", "logs", "teacher")


class TrainingError(Exception):
    """A problem with the user's input, reported as one line."""


def dataset_name(value):
    """An argparse type: a known dataset name, or `folder:PATH`."""
    if value in data.DATASETS or (data.is_folder(value) and len(value) > len(data.FOLDER_PREFIX)):
        return value
    raise argparse.ArgumentTypeError(
        f"invalid choice: {value!r} (choose from {', '.join(sorted(data.DATASETS))}, or folder:PATH)"
    )


def build_parser():
    parser = OneLineParser(
        prog="python -m bcnn_keras.train",
        description="Two-step training of a fully binary CNN (phase 1: binary activations and "
        "real weights; phase 2: binary weights too).",
    )
    parser.add_argument(
        "--dataset",
        type=dataset_name,
        default="fashion_mnist",
        help=f"dataset to train on: {', '.join(sorted(data.DATASETS))}, or folder:PATH, a folder of PNG/JPEG "
        "images with one subfolder per class (and optionally train/ and test/ splits)",
    )
    parser.add_argument(
        "--image-size",
        type=int,
        help="folder:PATH only: resize images to N x N (default: the size of the folder's first image)",
    )
    parser.add_argument(
        "--validation-split",
        type=float,
        help=f"folder:PATH without train/ and test/ only: the share of each class held out for testing "
        f"(default {data.DEFAULT_VALIDATION_SPLIT}; the same seeded split in every run, whatever --seed)",
    )
    parser.add_argument("--model", choices=sorted(MODELS), default="BCNN18", help="model family")
    parser.add_argument("--phase1-epochs", type=int, default=4, help="epochs with binary activations, real weights")
    parser.add_argument("--phase2-epochs", type=int, default=4, help="epochs with binary weights too")
    parser.add_argument("--output-dir", required=True, help="where model, history, plots and checkpoints go; re-running resumes")
    parser.add_argument(
        "--teacher",
        help="distil from a float teacher: the path of a Keras model, or 'float-twin' to train the "
        "float twin first (step 0, in OUTPUT_DIR/teacher)",
    )
    parser.add_argument(
        "--init-from-teacher",
        action="store_true",
        help="start phase 1 from the weights of the float-twin teacher (needs --teacher float-twin)",
    )
    parser.add_argument(
        "--unsafe-load",
        action="store_true",
        help="load a --teacher file that stores Python code (a Lambda layer) and run that code: only "
        "for files you trust",
    )
    parser.add_argument("--teacher-epochs", type=int, help="epochs of the float-twin teacher (default: phase1 + phase2)")
    parser.add_argument("--alpha", type=float, default=1.0, help="weight of the distillation loss against the label loss (1 = teacher only)")
    parser.add_argument("--float-twin", action="store_true", help="train the float twin instead (the float baseline)")
    parser.add_argument("--width-multiplier", type=float, default=1.0, help="scales every width")
    parser.add_argument("--channel-multiple", type=int, choices=list(models.CHANNEL_MULTIPLES), default=8, help="widths round to a multiple of this (32: one word of LCE's bit-packing)")
    parser.add_argument("--input-layer", choices=list(models.LAYER_KINDS), default="binary", help="'float': a real conv on the image (ablation)")
    parser.add_argument("--shortcut", choices=list(layers.SHORTCUTS), default="pool", help="'float_conv': real 1x1 convs in downsampling shortcuts (ablation)")
    parser.add_argument("--classifier", choices=list(models.LAYER_KINDS), default="binary", help="'float': a real dense classifier (ablation)")
    parser.add_argument("--stem-strides", type=int, choices=[1, 2, 4], help="stride of the input block (default: 1 for images up to 64 px, else the model's)")
    parser.add_argument("--stem-kernel-size", type=int, help="kernel size of the input block (default: 3 at stride 1, else the stride)")
    parser.add_argument("--input-encoding", choices=["thermometer", "learned"], default="thermometer", help="how pixels become +-1 planes")
    parser.add_argument("--encoding-levels", type=int, help="thermometer levels per image channel (default: 32 // channels)")
    parser.add_argument("--batch-size", type=int, default=128, help="global batch size")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="peak Adam learning rate of each phase")
    parser.add_argument("--phase2-learning-rate", type=float, help="peak learning rate of phase 2 (default: --learning-rate)")
    parser.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up at the start of each phase")
    parser.add_argument("--phase1-weight-decay", type=float, default=1e-5, help="decoupled weight decay in phase 1")
    parser.add_argument("--strategy", choices=STRATEGIES, default="default", help="tf.distribute strategy ('multiworker' reads TF_CONFIG)")
    parser.add_argument("--mixed-precision", action="store_true", help="train with the mixed_float16 policy (for GPUs)")
    parser.add_argument(
        "--augment",
        choices=list(data.AUGMENTATIONS),
        default="standard",
        help="training augmentation: 'standard' (pad-and-crop and flip; random resized crop on ImageNet), 'flip' only, or 'none'",
    )
    parser.add_argument(
        "--no-augment",
        dest="augment",
        action="store_const",
        const="none",
        help="the same as --augment none (short schedules can fit better without augmentation)",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="delete the run in --output-dir (model, history, checkpoints, backup, logs, teacher) and start over",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, shuffling and augmentation")
    parser.add_argument("--data-dir", help="tensorflow-datasets data dir (or a dir with Fashion-MNIST IDX files)")
    parser.add_argument("--manual-dir", help="tensorflow-datasets manual download dir (ImageNet)")
    parser.add_argument("--train-limit", type=int, help="train on the first N examples only (quick runs)")
    parser.add_argument("--test-limit", type=int, help="evaluate on the first N test examples only")
    parser.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1, help="Keras verbosity (1: progress bars)")
    return parser


def _check_arguments(args):
    if args.phase1_epochs < 0 or args.phase2_epochs < 0 or args.phase1_epochs + args.phase2_epochs < 1:
        raise TrainingError("--phase1-epochs and --phase2-epochs must be >= 0 with at least one epoch in total")
    for flag in ("batch_size", "learning_rate", "phase2_learning_rate", "width_multiplier", "encoding_levels", "stem_kernel_size", "image_size"):
        value = getattr(args, flag)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise TrainingError(f"--{flag.replace('_', '-')} must be > 0")
    for flag in ("alpha", "warmup_epochs", "phase1_weight_decay"):
        if not math.isfinite(getattr(args, flag)):
            raise TrainingError(f"--{flag.replace('_', '-')} must be a finite number")
    for flag in ("image_size", "validation_split"):
        if getattr(args, flag) is not None and not data.is_folder(args.dataset):
            raise TrainingError(f"--{flag.replace('_', '-')} is for --dataset folder:PATH only")
    if args.init_from_teacher and args.teacher != "float-twin":
        raise TrainingError("--init-from-teacher needs --teacher float-twin")
    if args.teacher and args.float_twin:
        raise TrainingError("--teacher and --float-twin exclude each other")
    if args.teacher not in (None, "float-twin") and not os.path.exists(args.teacher):
        raise TrainingError(f"teacher model {args.teacher} does not exist")


def make_strategy(name):
    """The `tf.distribute` strategy for `--strategy`."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def save_model(model, path):
    """Saves `model` to `path` through a temporary file, so `path` is never half-written."""
    with files.atomic_write(path) as temporary:
        model.save(temporary)


def save_final_model(model, spec, run_dir):
    """Saves the run's `model.keras` and, when the dataset has them, its class names in
    `classes.json` next to it (where the exporter and `bcnn_keras.predict` look for them)."""
    save_model(model, run_dir.written("model.keras"))
    if spec.class_names:
        data.write_class_names(run_dir.written(data.CLASS_NAMES_FILE), spec.class_names)


class HistoryFile(tf.keras.callbacks.Callback):
    """Keeps `path` (JSON: one record per epoch) up to date, across interrupted runs."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_train_begin(self, logs=None):
        self.records = load_history(self.path)

    def on_epoch_end(self, epoch, logs=None):
        self.records = [r for r in self.records if r["epoch"] < epoch]
        self.records.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        files.write_json(self.path, self.records, indent=1)


def load_history(path):
    """The epoch records of a `history.json`, or [] when there is none yet."""
    return files.read_json(path, default=[])


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(tf.keras.callbacks.Callback):
    """Stops `fit` at the first step whose loss is NaN or infinite, or at the end of an epoch
    whose test loss is (the last step's update broke the weights). Goes first in the callbacks,
    so that no backup, history or checkpoint saves the broken state."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check((logs or {}).get("loss"), f"step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        for key in ("loss", "val_loss"):
            self._check((logs or {}).get(key), "its end" if key == "loss" else "its test")

    def _check(self, loss, where):
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLossError(f"the loss became {float(loss)} in epoch {self.epoch + 1}, at {where}")


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Saves the trained model (a distiller's student) as `directory/epoch_NNN.keras`."""

    def __init__(self, directory):
        super().__init__()
        self.directory = directory

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        model = getattr(self.model, "student", self.model)
        save_model(model, os.path.join(self.directory, f"epoch_{epoch + 1:03d}.keras"))


class RunDir(NamedTuple):
    """A run's folder. Every worker reads `path`; this worker writes to `write_path`: the same
    folder on the chief, a private temporary one on the other workers of a cluster (the files
    there are Keras' and TensorFlow's collective saving's business, then deleted)."""

    path: str
    write_path: str

    def __truediv__(self, name):
        return RunDir(os.path.join(self.path, name), os.path.join(self.write_path, name))

    def written(self, name):
        return os.path.join(self.write_path, name)


def is_chief(strategy):
    """Whether this process writes the run's files: always, except on a cluster's other workers."""
    return getattr(strategy.extended, "should_checkpoint", True)


def _build(args, spec, binary):
    return MODELS[args.model](
        input_shape=spec.image_shape,
        classes=spec.classes,
        width_multiplier=args.width_multiplier,
        channel_multiple=args.channel_multiple,
        stem_strides=args.stem_strides,
        stem_kernel_size=args.stem_kernel_size,
        input_layer=args.input_layer,
        shortcut=args.shortcut,
        classifier=args.classifier,
        input_encoding=args.input_encoding,
        encoding_levels=args.encoding_levels,
        binary=binary,
    )


def _compile(model, learning_rate):
    """Adam (a float or a schedule), sparse cross-entropy, accuracy."""
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def _fit(model, train, test, epochs, run_dir, schedule_callback, verbose):
    """One resumable `fit` (`schedule_callback` may be None) writing history, checkpoints and
    TensorBoard logs to `run_dir`; a NaN or infinite loss stops it with a `TrainingError`."""
    history_path = run_dir.written("history.json")
    checkpoint_dir = run_dir.written("checkpoints")
    try:
        model.fit(
            train,
            validation_data=test,
            epochs=epochs,
            verbose=verbose,
            # The schedule goes before the loggers, so that they see `phase` and `learning_rate`.
            callbacks=[StopOnNonFiniteLoss()] + [schedule_callback] * (schedule_callback is not None) + [
                # Shared by all workers: Keras keeps the other workers' copies apart itself.
                tf.keras.callbacks.BackupAndRestore(os.path.join(run_dir.path, "backup")),
                HistoryFile(history_path),
                tf.keras.callbacks.TensorBoard(run_dir.written("logs")),
                EpochCheckpoint(checkpoint_dir),
            ],
        )
    except NonFiniteLossError as error:
        checkpoints = sorted(os.listdir(checkpoint_dir)) if os.path.isdir(checkpoint_dir) else []
        last = os.path.join(checkpoint_dir, checkpoints[-1]) if checkpoints else "none yet"
        raise TrainingError(
            f"training stopped: {error}; the last good checkpoint is {last} (to retry with a lower "
            "--learning-rate, use another --output-dir: --restart would delete it)"
        ) from error
    return load_history(history_path)


def _is_complete(output_dir, epochs):
    return os.path.exists(os.path.join(output_dir, "model.keras")) and len(
        load_history(os.path.join(output_dir, "history.json"))
    ) >= epochs


def _linear_decay(learning_rate, steps):
    return tf.keras.optimizers.schedules.PolynomialDecay(learning_rate, max(steps, 1), 0.0)


def train_float(args, spec, strategy, train, test, run_dir, epochs):
    """Trains the float twin for `epochs` with a linearly decaying learning rate."""
    with strategy.scope():
        model = _build(args, spec, binary=False)
        _compile(model, _linear_decay(args.learning_rate, epochs * int(train.cardinality())))
    records = _fit(model, train, test, epochs, run_dir, None, args.verbose)
    save_final_model(model, spec, run_dir)
    plot_history(records, run_dir.written("training.png"))
    return model


def _teacher_epochs(args):
    return args.teacher_epochs or args.phase1_epochs + args.phase2_epochs


def _teacher(args, spec, strategy, train, test, run_dir, finished):
    if args.teacher is None:
        return None
    if args.teacher != "float-twin":
        with strategy.scope():
            try:
                return loading.load_model(args.teacher, safe_mode=not args.unsafe_load)
            except loading.ModelFileError as error:
                raise TrainingError(f"teacher {error}") from error
    teacher_dir = run_dir / "teacher"
    epochs = _teacher_epochs(args)
    if finished:
        with strategy.scope():
            return tf.keras.models.load_model(os.path.join(teacher_dir.path, "model.keras"), compile=False)
    print(f"step 0: training the float-twin teacher for {epochs} epochs in {teacher_dir.path}")
    return train_float(args, spec, strategy, train, test, teacher_dir, epochs)


_PATH_FLAGS = ("teacher", "data_dir", "manual_dir")


def run_configuration(args):
    """The flags that shape the model, the data and the schedule, as recorded in `config.json`
    (paths made absolute, so that a resume from another working dir matches)."""
    configuration = {key: value for key, value in sorted(vars(args).items()) if key not in _NOT_CONFIGURATION}
    for key in _PATH_FLAGS:
        if configuration.get(key) not in (None, "float-twin"):
            configuration[key] = os.path.abspath(configuration[key])
    if data.is_folder(configuration["dataset"]):
        folder = configuration["dataset"][len(data.FOLDER_PREFIX) :]
        configuration["dataset"] = data.FOLDER_PREFIX + os.path.abspath(os.path.expanduser(folder))
    return configuration


def _claim_output_dir(args, chief=True):
    """Starts over (`--restart`), or checks that the dir holds no run of other settings; then
    the chief records this run's configuration (which also proves that the dir is writable)."""
    output_dir = args.output_dir
    if args.restart and not chief:
        return  # the chief deletes the old run and writes the new configuration
    if args.restart:
        for name in RUN_FILES:
            path = os.path.join(output_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    configuration = run_configuration(args)
    config_path = os.path.join(output_dir, CONFIG_FILE)
    if os.path.exists(config_path):
        try:
            recorded = files.read_json(config_path)
        except (OSError, ValueError) as error:
            raise TrainingError(f"{config_path} is unreadable ({error}); --restart starts over") from error
        # A flag that is newer than the recorded run had its default there.
        recorded = {**run_configuration(build_parser().parse_args(["--output-dir", output_dir])), **recorded}
        changed = [key for key in sorted(set(recorded) | set(configuration)) if recorded.get(key) != configuration.get(key)]
        if changed:
            described = ", ".join(
                f"--{key.replace('_', '-')} {configuration.get(key)} (was {recorded.get(key)})" for key in changed
            )
            raise TrainingError(
                f"{output_dir} holds a run with other settings: {described}; use another --output-dir, "
                "or --restart to start over"
            )
    if not chief:
        return
    files.remove_partial_files(output_dir)
    files.write_json(config_path, configuration, indent=1)


def run(args):
    """Runs the training described by parsed CLI `args`; returns the final history records."""
    _check_arguments(args)
    spec = data.dataset_spec(args.dataset, args.image_size)  # scans a folder: its errors come first
    # First: a multi-worker strategy must exist before any other TensorFlow op runs.
    strategy = make_strategy(args.strategy)
    chief = is_chief(strategy)
    output_dir = args.output_dir
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise TrainingError(f"cannot create output dir {output_dir}: {error.strerror}") from error
    _claim_output_dir(args, chief)
    epochs = args.phase1_epochs + args.phase2_epochs
    # Every worker decides what is finished here, before the first collective op: the chief
    # cannot write anything that changes the answer until all workers have got this far.
    # (With --restart the chief has just deleted the old run; the others may not see that yet.)
    finished = {
        "run": not args.restart and _is_complete(output_dir, epochs),
        "teacher": not args.restart and _is_complete(os.path.join(output_dir, "teacher"), _teacher_epochs(args)),
    }
    if finished["run"]:
        print(f"{output_dir} already holds a finished run ({epochs} epochs); nothing to do")
        return load_history(os.path.join(output_dir, "history.json"))
    run_dir = RunDir(output_dir, output_dir if chief else tempfile.mkdtemp(prefix="bcnn_keras_worker_"))
    try:
        return _train(args, spec, strategy, run_dir, epochs, finished["teacher"])
    finally:
        if not chief:
            shutil.rmtree(run_dir.write_path, ignore_errors=True)


def _train(args, spec, strategy, run_dir, epochs, teacher_finished):
    tf.keras.utils.set_random_seed(args.seed)
    if args.mixed_precision:
        tf.keras.mixed_precision.set_global_policy("mixed_float16")

    folder_options = {}
    if data.is_folder(args.dataset):
        folder_options = dict(image_size=spec.image_shape[:2], validation_split=args.validation_split)

    def training_data(teacher=None):
        return data.make_dataset(
            args.dataset, spec.train_split, args.batch_size, augment=args.augment, seed=args.seed,
            data_dir=args.data_dir, manual_dir=args.manual_dir, limit=args.train_limit, teacher=teacher,
            **folder_options,
        )

    train = training_data()
    test = data.make_dataset(
        args.dataset, spec.test_split, args.batch_size,
        data_dir=args.data_dir, manual_dir=args.manual_dir, limit=args.test_limit, **folder_options,
    )
    if args.float_twin:
        train_float(args, spec, strategy, train, test, run_dir, epochs)
        return load_history(run_dir.written("history.json"))

    teacher = _teacher(args, spec, strategy, train, test, run_dir, teacher_finished)
    # Without augmentation the teacher sees the same images every epoch: run it once. (Not
    # across a cluster, where `predict` would need the workers' data shards gathered, and not
    # for ImageNet, whose outputs would not fit in memory.)
    if teacher is not None and args.augment == "none" and args.strategy != "multiworker" and args.dataset != "imagenet2012":
        print("computing the teacher's outputs on the training set once (no augmentation)")
        train = training_data(teacher)
    with strategy.scope():
        student = _build(args, spec, binary=True)
        if args.init_from_teacher:  # a resumed run then restores its own weights from the backup
            models.initialize_from_float_twin(student, teacher)
        model = student if teacher is None else distillation.Distiller(student, teacher, alpha=args.alpha)
        _compile(model, args.learning_rate)
    two_step = callbacks.TwoStepTraining(
        args.phase1_epochs,
        args.phase2_epochs,
        learning_rate=args.learning_rate,
        phase2_learning_rate=args.phase2_learning_rate,
        phase1_weight_decay=args.phase1_weight_decay,
        warmup_epochs=args.warmup_epochs,
    )
    records = _fit(model, train, test, epochs, run_dir, two_step, args.verbose)
    save_final_model(student, spec, run_dir)
    plot_history(records, run_dir.written("training.png"), phase1_epochs=args.phase1_epochs)
    return records


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        records = run(args)
    except (TrainingError, data.DatasetNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # e.g. a full or unwritable output dir; every file is written atomically
        where = error.filename or args.output_dir
        print(f"error: {where}: {error.strerror or error} (files written before are intact)", file=sys.stderr)
        return 2
    last = records[-1] if records else {}
    if "val_accuracy" in last:
        print(f"final test accuracy: {last['val_accuracy']:.4f} ({args.output_dir}/model.keras)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
