"""The training of a run: the float-twin teacher, then the two-step student, in its output dir.

`run(config)` trains a `TrainConfig`; `build_model` builds its model. `bcnn_keras.training`
says what a run does, `bcnn_keras.run_dir` what its folder receives.
"""

import dataclasses
import inspect
import math
import os

import tensorflow as tf

from bcnn_keras import callbacks, data, distillation, layers, loading, models, pretrained
from bcnn_keras.plots import plot_history
from bcnn_keras.run_dir import (
    BACKUP,
    CHECKPOINTS,
    CONFIG_FILE,
    HISTORY_FILE,
    LOGS,
    MODEL_FILE,
    HEAD,
    PLOT_FILE,
    TEACHER,
    TEST_FILE,
    EpochCheckpoint,
    HistoryFile,
    RunDir,
    changed_settings,
    is_complete,
    last_checkpoint,
    load_history,
    read_config,
    remove_run,
    save_final_model,
    write_config,
    write_test_result,
)
from bcnn_keras.architecture import KNOBS, PRESETS, Architecture
from bcnn_keras.training.config import (
    ARCHITECTURE_SETTINGS,
    RECORDED_ARCHITECTURE,
    TrainConfig,
    TrainingError,
    flag,
    recorded_settings,
)


def make_strategy(name):
    """The `tf.distribute` strategy called `name` (one of `STRATEGIES`).

    Example:
        >>> make_strategy("default").num_replicas_in_sync
        1
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    """Whether this process writes the run's files: always, except on a cluster's other workers.

    Example:
        >>> is_chief(tf.distribute.get_strategy())
        True
    """
    return getattr(strategy.extended, "should_checkpoint", True)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""

    __module__ = "bcnn_keras.training"  # its public name


class StopOnNonFiniteLoss(tf.keras.callbacks.Callback):
    """Stops `fit` at the first step whose loss is NaN or infinite, or at the end of an epoch
    whose test loss is (the last step's update broke the weights). Goes first in the callbacks,
    so that no backup, history or checkpoint saves the broken state.

    Example:
        >>> stop = StopOnNonFiniteLoss()
        >>> stop.on_epoch_begin(0)
        >>> stop.on_train_batch_end(2, {"loss": float("nan")})
        Traceback (most recent call last):
        bcnn_keras.training.NonFiniteLossError: the loss became nan in epoch 1, at step 3
    """

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


def architecture(config, spec, binary=True):
    """The `Architecture` of `config`'s model: the preset's defaults with the settings given;
    with shipped `weights`, the architecture they were trained with, checked against the
    settings as `BCNN18(weights=...)` checks its arguments.

    Example:
        >>> spec = bcnn_keras.data.dataset_spec("fashion_mnist")
        >>> architecture(TrainConfig(output_dir="run", weights="fashion_mnist"), spec).width_multiplier
        0.25
    """
    # Shipped weights are the binary model's; its float twin (a teacher) has the same architecture.
    return _binary_architecture(config, spec).replace(binary=binary)


def _binary_architecture(config, spec):
    given = {name: getattr(config, name) for name in ARCHITECTURE_SETTINGS if getattr(config, name) is not None}
    chosen = PRESETS[config.model].defaults.replace(**given)
    if config.weights not in pretrained.SHIPPED_DATASETS:
        return chosen
    preset = models.MODELS[config.model]
    defaults = {name: parameter.default for name, parameter in inspect.signature(preset).parameters.items()}
    arguments = {
        **defaults,
        **chosen.to_dict(),
        "weights": config.weights,
        "include_top": False,
        "input_shape": spec.image_shape,
    }
    try:
        resolved = pretrained.resolve(preset, arguments)
    except ValueError as error:
        raise TrainingError(f"--weights {config.weights}: {error}") from error
    return Architecture(**{knob: resolved[knob] for knob in KNOBS})


def build_model(config, spec, binary):
    """The model of `config` for the dataset `spec`: the binary student, or (`binary=False`) its float twin.

    Example:
        >>> config = TrainConfig(output_dir="run", width_multiplier=0.125)
        >>> build_model(config, bcnn_keras.data.dataset_spec("fashion_mnist"), binary=True).output_shape
        (None, 10)
    """
    return models.MODELS[config.model](
        input_shape=spec.image_shape, classes=spec.classes, **architecture(config, spec, binary).to_dict()
    )


def start_from_weights(model, config, spec):
    """Copies the trained weights of `config.weights` into every layer of `model` but its
    classifier (fine-tuning): the shipped model's, or those of a `.keras` file of the same
    architecture. Raises `TrainingError` naming the first layer that does not fit."""
    if config.weights in pretrained.SHIPPED_DATASETS:
        source = models.MODELS[config.model](
            weights=config.weights,
            include_top=False,
            input_shape=spec.image_shape,
            **architecture(config, spec).to_dict(),
        )
    else:
        try:
            source = loading.load_model(config.weights, safe_mode=not config.unsafe_load)
        except loading.ModelFileError as error:
            raise TrainingError(f"--weights {error}") from error
    available = {layer.name: layer for layer in source.layers}
    for layer in model.layers:
        if not layer.weights or layer.name.startswith(pretrained.CLASSIFIER_PREFIX):
            continue
        origin = available.get(layer.name)
        shapes = [tuple(w.shape) for w in layer.weights]
        if origin is None or [tuple(w.shape) for w in origin.weights] != shapes:
            found = (
                "has no such layer"
                if origin is None
                else f"has weights of shapes {[tuple(w.shape) for w in origin.weights]}"
            )
            raise TrainingError(
                f"--weights {config.weights}: the model's layer {layer.name!r} (weights {shapes}) does not fit, "
                f"the trained model {found}; train with the architecture flags it was trained with"
            )
        layer.set_weights(origin.get_weights())
    if config.weights in pretrained.SHIPPED_DATASETS:
        _shrink_latent_weights(model)


# Shipped weights store signs only, loaded as latent weights of +-1: the clip edge, where Adam's
# steps of about the learning rate would need hundreds of steps to flip one. Fine-tuning starts
# them at the size of a trained latent weight instead (their median was 0.05-0.08 in our runs):
# the signs, and so the binary model, are unchanged, and in phase 1 the batch norm that follows
# each conv absorbs the scale.
FINE_TUNE_LATENT_WEIGHT = 0.05


def _shrink_latent_weights(model):
    for layer in model.layers:
        if isinstance(getattr(layer, "kernel_quantizer", None), layers.PhasedSign):
            kernel = layer.kernel
            kernel.assign(tf.where(kernel >= 0, FINE_TUNE_LATENT_WEIGHT, -FINE_TUNE_LATENT_WEIGHT))


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
    history_path = run_dir.written(HISTORY_FILE)
    checkpoint_dir = run_dir.written(CHECKPOINTS)
    try:
        model.fit(
            train,
            validation_data=test,
            epochs=epochs,
            verbose=verbose,
            # The schedule goes before the loggers, so that they see `phase` and `learning_rate`.
            callbacks=[StopOnNonFiniteLoss()]
            + [schedule_callback] * (schedule_callback is not None)
            + [
                # Shared by all workers: Keras keeps the other workers' copies apart itself.
                tf.keras.callbacks.BackupAndRestore(os.path.join(run_dir.path, BACKUP)),
                HistoryFile(history_path),
                tf.keras.callbacks.TensorBoard(run_dir.written(LOGS)),
                EpochCheckpoint(checkpoint_dir),
            ],
        )
    except NonFiniteLossError as error:
        raise TrainingError(
            f"training stopped: {error}; the last good checkpoint is {last_checkpoint(checkpoint_dir) or 'none yet'} "
            "(to retry with a lower --learning-rate, use another --output-dir: --restart would delete it)"
        ) from error
    return load_history(history_path)


def _linear_decay(learning_rate, steps):
    return tf.keras.optimizers.schedules.PolynomialDecay(learning_rate, max(steps, 1), 0.0)


def train_float(config, spec, strategy, train, test, run_dir, epochs):
    """Trains the float twin of `config`'s model for `epochs` with a linearly decaying learning
    rate, saving it and its history, plot and checkpoints in `run_dir`; returns the model."""
    with strategy.scope():
        model = build_model(config, spec, binary=False)
        _compile(model, _linear_decay(config.learning_rate, epochs * int(train.cardinality())))
    records = _fit(model, train, test, epochs, run_dir, None, config.verbose)
    save_final_model(model, spec, run_dir)
    plot_history(records, run_dir.written(PLOT_FILE))
    return model


def _teacher(config, spec, strategy, train, test, run_dir, finished):
    """The teacher to distil from: None, a loaded model file, or the float twin (trained in
    `run_dir/teacher` unless `finished`, then loaded from there)."""
    if config.teacher is None:
        return None
    if config.teacher != "float-twin":
        with strategy.scope():
            try:
                return loading.load_model(config.teacher, safe_mode=not config.unsafe_load)
            except loading.ModelFileError as error:
                raise TrainingError(f"teacher {error}") from error
    teacher_dir = run_dir / TEACHER
    if finished:
        with strategy.scope():
            return tf.keras.models.load_model(os.path.join(teacher_dir.path, MODEL_FILE), compile=False)
    epochs = config.teacher_training_epochs
    print(f"step 0: training the float-twin teacher for {epochs} epochs in {teacher_dir.path}")
    return train_float(config, spec, strategy, train, test, teacher_dir, epochs)


def _refuse_other_settings(output_dir, settings):
    """Raises `TrainingError` when `output_dir` holds a run recorded with other settings."""
    try:
        recorded = read_config(output_dir)
    except (OSError, ValueError) as error:
        raise TrainingError(
            f"{os.path.join(output_dir, CONFIG_FILE)} is unreadable ({error}); --restart starts over"
        ) from error
    if recorded is None:
        return
    recorded.pop(RECORDED_ARCHITECTURE, None)  # follows from the settings
    # A setting that is newer than the recorded run had its default there.
    recorded = {**recorded_settings(TrainConfig(output_dir=output_dir)), **recorded}
    changed = changed_settings(recorded, settings)
    if changed and not has_trained(output_dir):
        # Nothing was trained with the old settings (the run failed before its first epoch ended).
        print(f"{output_dir}: no epoch of the earlier run finished; starting over with these settings")
        remove_run(output_dir)
        return
    if changed:
        described = ", ".join(f"{flag(key)} {settings.get(key)} (was {recorded.get(key)})" for key in changed)
        raise TrainingError(
            f"{output_dir} holds a run with other settings: {described}; use another --output-dir, "
            "or --restart to start over"
        )


def has_trained(output_dir):
    """Whether a run in `output_dir` has finished an epoch (a checkpoint or a model, of the
    student, the float-twin teacher or the fine-tuned head).

    Example:
        >>> has_trained("empty-run")
        False
    """
    return any(
        last_checkpoint(os.path.join(output_dir, *step, CHECKPOINTS))
        or os.path.exists(os.path.join(output_dir, *step, MODEL_FILE))
        for step in ((), (TEACHER,), (HEAD,))
    )


def _claim_output_dir(config, spec, chief=True):
    """Starts over (`restart`), or checks that the dir holds no run of other settings; then
    the chief records this run's settings and its resolved `Architecture` (which also proves
    that the dir is writable)."""
    if config.restart and not chief:
        return  # the chief deletes the old run and writes the new settings
    if config.restart:
        remove_run(config.output_dir)
    settings = recorded_settings(config)
    _refuse_other_settings(config.output_dir, settings)
    if chief:
        write_config(config.output_dir, {**settings, RECORDED_ARCHITECTURE: architecture(config, spec).to_dict()})


def _check_teacher_file(config):
    if config.teacher not in (None, "float-twin") and not os.path.exists(config.teacher):
        raise TrainingError(f"teacher model {config.teacher} does not exist")


def _make_output_dir(output_dir):
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise TrainingError(f"cannot create output dir {output_dir}: {error.strerror}") from error


def run(config):
    """Runs the training of `config` (teacher, then the two-step student, then save); returns
    the student's history records, one per epoch. Resumes a run stopped in `output_dir`, and
    returns a finished one's records at once.

    Raises `TrainingError` (one line) on bad settings, a run of other settings in the folder or
    a NaN loss; `data.DatasetNotFoundError` or `ValueError` on missing or bad data; `OSError`
    when a file cannot be written (every file is written atomically).

    Example (two epochs on 64 images; most of its minute goes into building the training step):

        records = run(TrainConfig(dataset="fashion_mnist", output_dir="run", width_multiplier=0.125,
                                  phase1_epochs=1, phase2_epochs=1, train_limit=64, test_limit=64, batch_size=32))
        [record["phase"] for record in records]  # [1.0, 2.0]; the model is in run/model.keras
    """
    _check_teacher_file(config)
    spec = data.dataset_spec(config.dataset, config.image_size)  # scans a folder: its errors come first
    # First: a multi-worker strategy must exist before any other TensorFlow op runs.
    strategy = make_strategy(config.strategy)
    chief = is_chief(strategy)
    output_dir = config.output_dir
    _make_output_dir(output_dir)
    _claim_output_dir(config, spec, chief)
    # Every worker decides what is finished here, before the first collective op: the chief
    # cannot write anything that changes the answer until all workers have got this far.
    # (With restart the chief has just deleted the old run; the others may not see that yet.)
    finished = {
        "run": not config.restart and is_complete(output_dir, config.epochs),
        "teacher": not config.restart
        and is_complete(os.path.join(output_dir, TEACHER), config.teacher_training_epochs),
    }
    if finished["run"]:
        print(f"{output_dir} already holds a finished run ({config.epochs} epochs); nothing to do")
        return load_history(os.path.join(output_dir, HISTORY_FILE))
    run_dir = RunDir.for_worker(output_dir, chief)
    try:
        return _train(config, spec, strategy, run_dir, finished["teacher"])
    finally:
        run_dir.remove_worker_files()


def _data_sources(config, spec):
    """The options of `data.make_dataset` that say where the data comes from (and, for a
    folder, how it is sized and split), the same for training and test."""
    folder_options = {}
    if data.is_folder(config.dataset):
        folder_options = dict(image_size=spec.image_shape[:2], validation_split=config.validation_split)
    else:
        folder_options = dict(validation_images=config.validation_images)
    return dict(data_dir=config.data_dir, manual_dir=config.manual_dir, **folder_options)


def top1_accuracy(model, dataset):
    """The top-1 accuracy of `model` on a dataset of `(images, labels)` batches (labels may be
    `(labels, teacher_outputs)`), and the number of examples.

    Example:
        >>> model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.125)
        >>> accuracy, count = top1_accuracy(model, bcnn_keras.data.make_dataset("fashion_mnist", "test", 64, limit=64))
        >>> count, 0 <= accuracy <= 1
        (64, True)
    """
    infer = tf.function(lambda images: model(images, training=False), autograph=False)
    correct = total = 0
    for images, labels in dataset:
        labels = labels[0] if isinstance(labels, tuple) else labels
        predicted = tf.argmax(infer(images), axis=-1, output_type=labels.dtype)
        correct += int(tf.reduce_sum(tf.cast(predicted == labels, tf.int64)))
        total += int(labels.shape[0])
    return correct / max(total, 1), total


def _test_once(config, model, test, run_dir):
    """With a validation set, evaluates `model` on the test split once and records it in
    `run_dir/test.json`; without one, the epochs measured the test split already."""
    if not config.validation_images or os.path.exists(os.path.join(run_dir.path, TEST_FILE)):
        return
    accuracy, count = top1_accuracy(model, test)
    print(f"test top-1, evaluated once: {accuracy:.4f} on {count} images ({run_dir.path})")
    write_test_result(run_dir.written(TEST_FILE), accuracy, count)


def _caches_teacher_outputs(config):
    # Without augmentation the teacher sees the same images every epoch: run it once. (Not
    # across a cluster, where `predict` would need the workers' data shards gathered, and not
    # for ImageNet, whose outputs would not fit in memory.)
    return config.augment == "none" and config.strategy != "multiworker" and config.dataset != "imagenet2012"


def _train(config, spec, strategy, run_dir, teacher_finished):
    tf.keras.utils.set_random_seed(config.seed)
    if config.mixed_precision:
        tf.keras.mixed_precision.set_global_policy("mixed_float16")
    config = _with_batch_that_fits(config, spec)
    sources = _data_sources(config, spec)

    def training_data(teacher=None):
        return data.make_dataset(
            config.dataset,
            spec.train_split,
            config.batch_size,
            augment=config.augment,
            seed=config.seed,
            limit=config.train_limit,
            teacher=teacher,
            **sources,
        )

    train = training_data()
    test = data.make_dataset(config.dataset, spec.test_split, config.batch_size, limit=config.test_limit, **sources)
    # With a validation set, every epoch is measured on it and the test split only once, at the end.
    monitor = test
    if config.validation_images:
        monitor = data.make_dataset(config.dataset, data.VALIDATION_SPLIT, config.batch_size, **sources)
    if config.float_twin:
        twin = train_float(config, spec, strategy, train, monitor, run_dir, config.epochs)
        _test_once(config, twin, test, run_dir)
        return load_history(run_dir.written(HISTORY_FILE))

    teacher = _teacher(config, spec, strategy, train, monitor, run_dir, teacher_finished)
    if teacher is not None and config.teacher == "float-twin":
        _test_once(config, teacher, test, run_dir / TEACHER)
    with strategy.scope():
        student = _student(config, spec, strategy, train, monitor, run_dir, teacher)
    if teacher is not None and _caches_teacher_outputs(config):
        print("computing the teacher's outputs on the training set once (no augmentation)")
        train = training_data(teacher)
    with strategy.scope():
        model = student if teacher is None else distillation.Distiller(student, teacher, alpha=config.alpha)
        _compile(model, config.learning_rate)
    two_step = callbacks.TwoStepTraining(
        config.phase1_epochs,
        config.phase2_epochs,
        learning_rate=config.learning_rate,
        phase2_learning_rate=config.phase2_learning_rate,
        phase1_weight_decay=config.phase1_weight_decay,
        warmup_epochs=config.warmup_epochs,
    )
    records = _fit(model, train, monitor, config.epochs, run_dir, two_step, config.verbose)
    _test_once(config, student, test, run_dir)  # before the model: a finished run has both
    save_final_model(student, spec, run_dir)
    plot_history(records, run_dir.written(PLOT_FILE), phase1_epochs=config.phase1_epochs)
    return records


def _student(config, spec, strategy, train, monitor, run_dir, teacher):
    """The binary model that the two steps train: new, from the float twin's weights, or from
    trained weights with a new classifier (trained alone first for `head_epochs`, in
    `run_dir/head`). A resumed run then restores its own state from the backup."""
    head_dir = run_dir / HEAD
    if config.head_epochs and is_complete(head_dir.path, config.head_epochs):
        return tf.keras.models.load_model(os.path.join(head_dir.path, MODEL_FILE), compile=False)
    student = build_model(config, spec, binary=True)
    if config.init_from_teacher:
        # The run's own twin has the student's layers; a teacher file may differ in some (ablations).
        try:
            kept = models.initialize_from_float_twin(student, teacher, partial=config.teacher != "float-twin")
        except ValueError as error:
            raise TrainingError(f"--init-from-teacher: {error}") from error
        if kept:
            print(f"starting from the teacher's weights; layers it does not have start fresh: {', '.join(kept)}")
    if config.weights:
        start_from_weights(student, config, spec)
    if config.head_epochs:
        print(f"training the new classifier alone for {config.head_epochs} epochs in {head_dir.path}")
        train_head(config, spec, student, train, monitor, head_dir)
    return student


def train_head(config, spec, model, train, monitor, run_dir):
    """Trains only the classifier of `model` (every other layer frozen, its batch norm in
    inference mode) for `head_epochs`, with a linearly decaying learning rate, in phase 2: the
    frozen trunk then computes exactly what it was trained to compute. Saves it in `run_dir`."""
    layers.set_phase(model, 2)
    trunk = [layer for layer in model.layers if not layer.name.startswith(pretrained.CLASSIFIER_PREFIX)]
    for layer in trunk:
        layer.trainable = False
    _compile(model, _linear_decay(config.learning_rate, config.head_epochs * int(train.cardinality())))
    records = _fit(model, train, monitor, config.head_epochs, run_dir, None, config.verbose)
    for layer in trunk:
        layer.trainable = True
    save_final_model(model, spec, run_dir)
    plot_history(records, run_dir.written(PLOT_FILE))


def _with_batch_that_fits(config, spec):
    """`config`, with the batch shrunk to the training set when the set is smaller (said in one line)."""
    size = spec.train_size
    if data.is_folder(config.dataset):
        size = len(
            data.scan_image_folder(config.dataset[len(data.FOLDER_PREFIX) :], config.validation_split).files["train"]
        )
    if size is not None and config.validation_images:
        size -= config.validation_images
    if size is not None and config.train_limit:
        size = min(size, config.train_limit)
    if size is None or size >= config.batch_size:
        return config
    print(
        f"the training set has {size} images, fewer than --batch-size {config.batch_size}: "
        f"each step trains on all {size}"
    )
    return dataclasses.replace(config, batch_size=size)
