"""Training CLI: two-step training of a BCNN, optionally distilled from a float teacher.

    python -m bcnn_keras.train --dataset fashion_mnist --model BCNN18 \\
        --phase1-epochs 4 --phase2-epochs 4 --output-dir runs/fmnist

Writes to the output dir: `model.keras` (the final model), `history.json` (one record per
epoch, with `phase` and `learning_rate`), `training.png` (loss and accuracy across both phases,
the switch marked), `checkpoints/epoch_NNN.keras`, TensorBoard logs in `logs/`, and a backup in
`backup/` from which a re-run with the same output dir resumes (also after SIGKILL).
"""

import argparse
import json
import os
import sys

import tensorflow as tf

from bcnn_keras import callbacks, data, distillation, layers, models

MODELS = {"BCNN18": models.BCNN18, "BCNNA": models.BCNNA}
STRATEGIES = ("default", "mirrored", "multiworker")


class TrainingError(Exception):
    """A problem with the user's input, reported as one line."""


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser():
    parser = _OneLineParser(
        prog="python -m bcnn_keras.train",
        description="Two-step training of a fully binary CNN (phase 1: binary activations and "
        "real weights; phase 2: binary weights too).",
    )
    parser.add_argument("--dataset", choices=sorted(data.DATASETS), default="fashion_mnist", help="dataset to train on")
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
    for flag in ("batch_size", "learning_rate", "phase2_learning_rate", "width_multiplier", "encoding_levels", "stem_kernel_size"):
        if getattr(args, flag) is not None and getattr(args, flag) <= 0:
            raise TrainingError(f"--{flag.replace('_', '-')} must be > 0")
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


def _write_atomically(path, write):
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.partial{os.path.splitext(name)[1]}")
    write(temporary)
    os.replace(temporary, path)


def save_model(model, path):
    """Saves `model` to `path` through a temporary file, so `path` is never half-written."""
    _write_atomically(path, lambda temporary: model.save(temporary))


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

        def write(temporary):
            with open(temporary, "w") as stream:
                json.dump(self.records, stream, indent=1)

        _write_atomically(self.path, write)


def load_history(path):
    """The epoch records of a `history.json`, or [] when there is none yet."""
    if not os.path.exists(path):
        return []
    with open(path) as stream:
        return json.load(stream)


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Saves the trained model (a distiller's student) as `directory/epoch_NNN.keras`."""

    def __init__(self, directory):
        super().__init__()
        self.directory = directory

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        model = getattr(self.model, "student", self.model)
        save_model(model, os.path.join(self.directory, f"epoch_{epoch + 1:03d}.keras"))


def plot_history(records, path, phase1_epochs=None):
    """Plots loss and accuracy per epoch (train and test), with the phase switch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] + 1 for r in records]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for prefix, label in (("", "train"), ("val_", "test")):
            values = [r.get(prefix + metric) for r in records]
            if any(v is not None for v in values):
                axis.plot(epochs, values, marker="o", label=label)
        if phase1_epochs and phase1_epochs < len(records):
            axis.axvline(phase1_epochs + 0.5, color="gray", linestyle="--", label="phase 1 -> 2")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle("Two-step training: binary activations, then binary weights")
    figure.tight_layout()
    _write_atomically(path, lambda temporary: figure.savefig(temporary, dpi=100, format="png"))
    plt.close(figure)


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


def _fit(model, train, test, epochs, output_dir, schedule_callback, verbose):
    """One resumable `fit` (`schedule_callback` may be None) writing history, checkpoints and
    TensorBoard logs to `output_dir`."""
    history_path = os.path.join(output_dir, "history.json")
    model.fit(
        train,
        validation_data=test,
        epochs=epochs,
        verbose=verbose,
        # The schedule goes first, so that the loggers after it see `phase` and `learning_rate`.
        callbacks=[schedule_callback] * (schedule_callback is not None) + [
            tf.keras.callbacks.BackupAndRestore(os.path.join(output_dir, "backup")),
            HistoryFile(history_path),
            tf.keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")),
            EpochCheckpoint(os.path.join(output_dir, "checkpoints")),
        ],
    )
    return load_history(history_path)


def _is_complete(output_dir, epochs):
    return os.path.exists(os.path.join(output_dir, "model.keras")) and len(
        load_history(os.path.join(output_dir, "history.json"))
    ) >= epochs


def _linear_decay(learning_rate, steps):
    return tf.keras.optimizers.schedules.PolynomialDecay(learning_rate, max(steps, 1), 0.0)


def train_float(args, spec, strategy, train, test, output_dir, epochs):
    """Trains the float twin for `epochs` with a linearly decaying learning rate."""
    with strategy.scope():
        model = _build(args, spec, binary=False)
        _compile(model, _linear_decay(args.learning_rate, epochs * int(train.cardinality())))
    records = _fit(model, train, test, epochs, output_dir, None, args.verbose)
    save_model(model, os.path.join(output_dir, "model.keras"))
    plot_history(records, os.path.join(output_dir, "training.png"))
    return model


def _teacher(args, spec, strategy, train, test, output_dir):
    if args.teacher is None:
        return None
    if args.teacher != "float-twin":
        with strategy.scope():
            return tf.keras.models.load_model(args.teacher, compile=False)
    teacher_dir = os.path.join(output_dir, "teacher")
    epochs = args.teacher_epochs or args.phase1_epochs + args.phase2_epochs
    if _is_complete(teacher_dir, epochs):
        with strategy.scope():
            return tf.keras.models.load_model(os.path.join(teacher_dir, "model.keras"), compile=False)
    print(f"step 0: training the float-twin teacher for {epochs} epochs in {teacher_dir}")
    return train_float(args, spec, strategy, train, test, teacher_dir, epochs)


def run(args):
    """Runs the training described by parsed CLI `args`; returns the final history records."""
    _check_arguments(args)
    spec = data.dataset_spec(args.dataset)
    output_dir = args.output_dir
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise TrainingError(f"cannot create output dir {output_dir}: {error.strerror}") from error
    epochs = args.phase1_epochs + args.phase2_epochs
    if _is_complete(output_dir, epochs):
        print(f"{output_dir} already holds a finished run ({epochs} epochs); nothing to do")
        return load_history(os.path.join(output_dir, "history.json"))

    tf.keras.utils.set_random_seed(args.seed)
    if args.mixed_precision:
        tf.keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = make_strategy(args.strategy)
    train = data.make_dataset(
        args.dataset, spec.train_split, args.batch_size, augment=args.augment, seed=args.seed,
        data_dir=args.data_dir, manual_dir=args.manual_dir, limit=args.train_limit,
    )
    test = data.make_dataset(
        args.dataset, spec.test_split, args.batch_size,
        data_dir=args.data_dir, manual_dir=args.manual_dir, limit=args.test_limit,
    )
    if args.float_twin:
        train_float(args, spec, strategy, train, test, output_dir, epochs)
        return load_history(os.path.join(output_dir, "history.json"))

    teacher = _teacher(args, spec, strategy, train, test, output_dir)
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
    records = _fit(model, train, test, epochs, output_dir, two_step, args.verbose)
    save_model(student, os.path.join(output_dir, "model.keras"))
    plot_history(records, os.path.join(output_dir, "training.png"), phase1_epochs=args.phase1_epochs)
    return records


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        records = run(args)
    except (TrainingError, data.DatasetNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    last = records[-1] if records else {}
    if "val_accuracy" in last:
        print(f"final test accuracy: {last['val_accuracy']:.4f} ({args.output_dir}/model.keras)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
