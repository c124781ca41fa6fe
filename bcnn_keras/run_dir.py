"""A training run's folder: what goes in it, how it is written, and how a re-run reads it back.

    OUTPUT_DIR/
        config.json          the settings of the run (a re-run with other settings is refused)
        model.keras          the final model, written last
        classes.json         its class names, when the dataset has them
        history.json         one record per epoch (val_*: the test split, or the validation set)
        test.json            with a validation set: the test top-1, evaluated once at the end
        training.png         loss and accuracy per epoch
        checkpoints/         epoch_NNN.keras after every epoch
        backup/              Keras' `BackupAndRestore` state, from which a re-run resumes
        logs/                TensorBoard logs
        teacher/             the same again for a float-twin teacher
        head/                the same again for the new classifier trained alone (fine-tuning)

Every file is written atomically (`bcnn_keras.files`), so a killed run leaves whole files only.
"""

import os
import shutil
import tempfile
from typing import NamedTuple

import tensorflow as tf

from bcnn_keras import data, files

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.json"
PLOT_FILE = "training.png"
TEST_FILE = "test.json"
CHECKPOINTS = "checkpoints"
BACKUP = "backup"
LOGS = "logs"
TEACHER = "teacher"
HEAD = "head"
# What a run writes into its output dir (and a restart removes).
RUN_FILES = (
    CONFIG_FILE,
    MODEL_FILE,
    data.CLASS_NAMES_FILE,
    HISTORY_FILE,
    TEST_FILE,
    PLOT_FILE,
    CHECKPOINTS,
    BACKUP,
    LOGS,
    TEACHER,
    HEAD,
)


class RunDir(NamedTuple):
    """A run's folder. Every worker reads `path`; this worker writes to `write_path`: the same
    folder on the chief, a private temporary one on the other workers of a cluster (the files
    there are Keras' and TensorFlow's collective saving's business, then deleted).

    Example:
        >>> run_dir = RunDir("run", "run")
        >>> (run_dir / "teacher").written("model.keras")
        'run/teacher/model.keras'
    """

    path: str
    write_path: str

    def __truediv__(self, name):
        return RunDir(os.path.join(self.path, name), os.path.join(self.write_path, name))

    def written(self, name):
        """Where this worker writes the file `name` of the run."""
        return os.path.join(self.write_path, name)

    @classmethod
    def for_worker(cls, path, chief):
        """The run dir at `path` as the chief writes it, or with a new private `write_path` on
        another worker (delete it with `remove_worker_files`).

        Example:
            >>> RunDir.for_worker("run", chief=True)
            RunDir(path='run', write_path='run')
        """
        return cls(path, path if chief else tempfile.mkdtemp(prefix="bcnn_keras_worker_"))

    def remove_worker_files(self):
        """Deletes a worker's private `write_path` (never the shared run)."""
        if self.write_path != self.path:
            shutil.rmtree(self.write_path, ignore_errors=True)


def save_model(model, path):
    """Saves `model` to `path` through a temporary file, so `path` is never half-written.

    Example:
        >>> save_model(bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.125), "m.keras")
        >>> os.listdir(".")
        ['m.keras']
    """
    with files.atomic_write(path) as temporary:
        model.save(temporary)


def save_final_model(model, spec, run_dir):
    """Saves the run's `model.keras` and, when the dataset has them, its class names in
    `classes.json` next to it (where the exporter and `bcnn_keras.predict` look for them).

    Example:
        >>> model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.125)
        >>> save_final_model(model, bcnn_keras.data.dataset_spec("fashion_mnist"), RunDir(".", "."))
        >>> bcnn_keras.data.read_class_names("classes.json")[:2]
        ['T-shirt/top', 'Trouser']
    """
    # Names first: a finished run is one with `model.keras`, which must not come without them.
    if spec.class_names:
        data.write_class_names(run_dir.written(data.CLASS_NAMES_FILE), spec.class_names)
    save_model(model, run_dir.written(MODEL_FILE))


def write_test_result(path, top1, images):
    """Records the test top-1 of a run that chose its recipe on a validation set (`test.json`).

    Example:
        >>> write_test_result("test.json", 0.9, 10000)
        >>> read_test_result(".")
        {'split': 'test', 'top1': 0.9, 'images': 10000}
    """
    files.write_json(path, {"split": "test", "top1": top1, "images": images}, indent=1)


def read_test_result(output_dir):
    """The `test.json` of a run dir, or None when the run has none.

    Example:
        >>> read_test_result("no-run-here") is None
        True
    """
    path = os.path.join(output_dir, TEST_FILE)
    return files.read_json(path) if os.path.exists(path) else None


def load_history(path):
    """The epoch records of a `history.json`, or [] when there is none yet.

    Example:
        >>> load_history("history.json")
        []
    """
    return files.read_json(path, default=[])


class HistoryFile(tf.keras.callbacks.Callback):
    """Keeps `path` (JSON: one record per epoch) up to date, across interrupted runs: a resumed
    `fit` replaces the records from its first epoch on and keeps the earlier ones.

    Example:
        >>> history = HistoryFile("history.json")
        >>> history.on_train_begin()
        >>> history.on_epoch_end(0, {"loss": 0.5})
        >>> load_history("history.json")
        [{'epoch': 0, 'loss': 0.5}]
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_train_begin(self, logs=None):
        self.records = load_history(self.path)

    def on_epoch_end(self, epoch, logs=None):
        self.records = [r for r in self.records if r["epoch"] < epoch]
        self.records.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
        files.write_json(self.path, self.records, indent=1)


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Saves the trained model (a distiller's student) as `directory/epoch_NNN.keras`.

    Example:
        >>> checkpoint = EpochCheckpoint("checkpoints")  # in `model.fit(..., callbacks=[checkpoint])`
        >>> checkpoint.set_model(bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.125))
        >>> checkpoint.on_epoch_end(0)
        >>> last_checkpoint("checkpoints")
        'checkpoints/epoch_001.keras'
    """

    def __init__(self, directory):
        super().__init__()
        self.directory = directory

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        model = getattr(self.model, "student", self.model)
        save_model(model, os.path.join(self.directory, f"epoch_{epoch + 1:03d}.keras"))


def last_checkpoint(directory):
    """The path of the latest `epoch_NNN.keras` in `directory`, or None.

    Example:
        >>> last_checkpoint("no-checkpoints-yet") is None
        True
    """
    names = sorted(os.listdir(directory)) if os.path.isdir(directory) else []
    return os.path.join(directory, names[-1]) if names else None


def is_complete(output_dir, epochs):
    """Whether `output_dir` holds a finished run of `epochs` epochs (its model and history).

    Example:
        >>> is_complete("run", epochs=2)
        False
    """
    history = load_history(os.path.join(output_dir, HISTORY_FILE))
    return os.path.exists(os.path.join(output_dir, MODEL_FILE)) and len(history) >= epochs


def remove_run(output_dir):
    """Deletes the files of the run in `output_dir` (`RUN_FILES`), nothing else.

    Example:
        >>> write_config("run", {"seed": 0})
        >>> remove_run("run")
        >>> os.listdir("run")
        []
    """
    for name in RUN_FILES:
        path = os.path.join(output_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def read_config(output_dir):
    """The settings recorded in `output_dir/config.json`, or None before the first run. Raises
    `OSError` or `ValueError` when the file is unreadable.

    Example:
        >>> write_config("run", {"seed": 0})
        >>> read_config("run")
        {'seed': 0}
    """
    path = os.path.join(output_dir, CONFIG_FILE)
    return files.read_json(path) if os.path.exists(path) else None


def write_config(output_dir, settings):
    """Records the run's `settings` in `output_dir/config.json`, after deleting what writes
    that a killed run left unfinished.

    Example:
        >>> write_config("run", {"seed": 0})
        >>> sorted(os.listdir("run"))
        ['config.json']
    """
    os.makedirs(output_dir, exist_ok=True)
    files.remove_partial_files(output_dir)
    files.write_json(os.path.join(output_dir, CONFIG_FILE), settings, indent=1)


def changed_settings(recorded, settings):
    """The names of the settings whose values differ, sorted (one missing on either side counts).

    Example:
        >>> changed_settings({"seed": 0, "alpha": 1.0}, {"seed": 1, "alpha": 1.0})
        ['seed']
    """
    return [key for key in sorted(set(recorded) | set(settings)) if recorded.get(key) != settings.get(key)]
