import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from helpers import CLASS_PATTERNS, pattern_image, random_images, randomize_statistics, small_bcnn18, write_image_folder

import bcnn_keras
from bcnn_keras import callbacks, distillation, layers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tiny_data(count=64, seed=0):
    return random_images(count, seed=seed), np.arange(count) % 10


class _PhaseRecorder(tf.keras.callbacks.Callback):
    def __init__(self, model):
        super().__init__()
        self.watched = model
        self.phases = []

    def on_train_batch_begin(self, batch, logs=None):
        self.phases.append(bcnn_keras.get_phase(self.watched))


@pytest.mark.slow  # Keras traces a full fit: `make test-slow`, in CI
def test_phase_switches_at_the_epoch_boundary():
    model = small_bcnn18()
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    two_step = callbacks.TwoStepTraining(2, 1)
    recorder = _PhaseRecorder(model)
    images, labels = _tiny_data()
    history = model.fit(
        images, labels, batch_size=32, epochs=two_step.epochs, callbacks=[two_step, recorder], verbose=0
    )
    assert history.history["phase"] == [1, 1, 2]
    assert recorder.phases == [1, 1, 1, 1, 2, 2]  # two batches per epoch
    assert two_step.phase == 2 and bcnn_keras.get_phase(model) == 2


def test_learning_rate_decays_to_zero_within_each_phase_after_warmup():
    two_step = callbacks.TwoStepTraining(4, 2, learning_rate=1.0, warmup_epochs=1)
    assert two_step.learning_rate_at(0, 0.0) == 0.0
    assert two_step.learning_rate_at(0, 0.5) == pytest.approx(0.5)
    assert two_step.learning_rate_at(1, 0.0) == pytest.approx(1.0)
    assert two_step.learning_rate_at(3, 1.0) == pytest.approx(0.0)
    assert two_step.learning_rate_at(4, 0.0) == 0.0  # phase 2 warms up again
    assert two_step.learning_rate_at(5, 0.0) == pytest.approx(1.0)
    assert two_step.learning_rate_at(5, 0.5) == pytest.approx(0.5)


def test_phase_2_can_have_its_own_peak_learning_rate():
    two_step = callbacks.TwoStepTraining(2, 2, learning_rate=1.0, phase2_learning_rate=0.25)
    assert two_step.learning_rate_at(0, 0.0) == pytest.approx(1.0)
    assert two_step.learning_rate_at(2, 0.0) == pytest.approx(0.25)
    assert two_step.learning_rate_at(3, 0.0) == pytest.approx(0.125)
    assert two_step.get_config()["phase2_learning_rate"] == 0.25


def _scale_latent_kernels(model, factor):
    for layer in model.layers:
        if isinstance(layer, layers.BinaryConv2D):
            layer.kernel.assign(layer.kernel * factor)


def test_sign_preserving_rescale_of_kernels_matters_only_in_phase_1():
    images = random_images(8)
    for phase, unchanged in ((2, True), (1, False)):
        model = randomize_statistics(small_bcnn18(classifier_activation=None))
        bcnn_keras.set_phase(model, phase)
        before = model.predict(images, verbose=0)
        _scale_latent_kernels(model, 0.37)
        after = model.predict(images, verbose=0)
        assert np.array_equal(before, after) == unchanged, f"phase {phase}"


@pytest.mark.slow  # Keras traces a full fit: `make test-slow`, in CI
def test_weight_decay_applies_only_in_phase_1():
    model = small_bcnn18()
    # A loss with zero gradient isolates the decay from the optimizer's own update.
    model.compile(tf.keras.optimizers.SGD(0.5), lambda y_true, y_pred: 0.0 * tf.reduce_sum(y_pred))
    two_step = callbacks.TwoStepTraining(1, 1, phase1_weight_decay=0.1, decay=None)
    conv = model.get_layer("block1_conv")
    kernels = []
    record = tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: kernels.append(conv.kernel.numpy()))
    start = conv.kernel.numpy()
    images, labels = _tiny_data()
    model.fit(images, labels, batch_size=32, epochs=2, callbacks=[two_step, record], verbose=0)
    np.testing.assert_allclose(kernels[0], start * (1 - 0.5 * 0.1) ** 2, rtol=1e-5)
    np.testing.assert_array_equal(kernels[1], kernels[0])


def test_distributional_loss_matches_a_hand_computed_value():
    teacher = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype="float32")
    student = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]], dtype="float32")
    expected = [
        -(0.7 * np.log(0.5) + 0.2 * np.log(0.3) + 0.1 * np.log(0.2)),
        -(0.1 * np.log(0.2) + 0.1 * np.log(0.2) + 0.8 * np.log(0.6)),
    ]
    np.testing.assert_allclose(distillation.distributional_loss(teacher, student), expected, rtol=1e-6)
    logits_t, logits_s = np.log(teacher), np.log(student)
    np.testing.assert_allclose(
        distillation.distributional_loss(logits_t, logits_s, from_logits=True), expected, rtol=1e-5
    )
    assert float(distillation.DistributionalLoss()(teacher, student)) == pytest.approx(np.mean(expected))


@pytest.mark.slow  # Keras traces a full fit: `make test-slow`, in CI
def test_distiller_trains_the_student_against_the_teacher():
    teacher = randomize_statistics(small_bcnn18(binary=False))
    student = small_bcnn18()
    distiller = distillation.Distiller(student, teacher, alpha=0.5)
    distiller.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    teacher_weights = [w.copy() for w in teacher.get_weights()]
    student_weights = [w.copy() for w in student.get_weights()]
    images, labels = _tiny_data()
    two_step = callbacks.TwoStepTraining(1, 1)
    history = distiller.fit(
        images, labels, batch_size=32, epochs=2, validation_data=(images, labels), callbacks=[two_step], verbose=0
    )
    assert all(np.array_equal(a, b) for a, b in zip(teacher.get_weights(), teacher_weights))
    assert not all(np.array_equal(a, b) for a, b in zip(student.get_weights(), student_weights))
    assert all(loss > 0 for loss in history.history["loss"] + history.history["val_loss"])
    assert bcnn_keras.get_phase(student) == 2


@pytest.mark.slow  # a subprocess training run or more: `make test-slow`, in CI
def test_distiller_step_with_precomputed_teacher_outputs_matches_the_live_teacher():
    teacher = randomize_statistics(small_bcnn18(binary=False))
    images, labels = _tiny_data(32)
    teacher_outputs = teacher.predict(images, verbose=0)
    results = []
    for targets in (labels, (labels, teacher_outputs)):
        tf.keras.utils.set_random_seed(1)
        distiller = distillation.Distiller(small_bcnn18(), teacher, alpha=0.5)
        distiller.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        loss = distiller.train_on_batch(images, targets)
        results.append((loss, distiller.student.get_weights()))
    (live_loss, live_weights), (cached_loss, cached_weights) = results
    assert cached_loss == pytest.approx(live_loss, rel=1e-5)
    for live, cached in zip(live_weights, cached_weights):
        np.testing.assert_allclose(cached, live, rtol=1e-4, atol=1e-6)


MIRRORED_SCRIPT = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import bcnn_keras, numpy as np
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    model = bcnn_keras.BCNN18(input_shape=(28, 28, 1), classes=10, width_multiplier=0.25)
    model.compile(tf.keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
images = np.random.default_rng(0).uniform(0, 255, (64, 28, 28, 1)).astype("float32")
two_step = bcnn_keras.callbacks.TwoStepTraining(1, 1)
history = model.fit(images, np.arange(64) % 10, batch_size=32, epochs=2, callbacks=[two_step], verbose=0)
print("replicas", strategy.num_replicas_in_sync, "phases", history.history["phase"], "loss", history.history["loss"])
"""


@pytest.mark.slow
def test_mirrored_strategy_fits_on_two_logical_cpus():
    # Logical devices must be configured before TensorFlow initialises, hence a fresh process.
    result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "replicas 2 phases [1, 2]" in result.stdout


def _train_command(output_dir, *extra):
    return [
        sys.executable,
        "-m",
        "bcnn_keras.train",
        "--dataset",
        "fashion_mnist",
        "--model",
        "BCNN18",
        "--width-multiplier",
        "0.25",
        "--batch-size",
        "64",
        "--train-limit",
        "256",
        "--test-limit",
        "128",
        "--output-dir",
        str(output_dir),
        "--verbose",
        "2",
        *extra,
    ]


def _history(output_dir):
    path = os.path.join(output_dir, "history.json")
    if not os.path.exists(path):
        return []
    with open(path) as stream:
        return json.load(stream)


@pytest.mark.slow
def test_training_killed_in_phase_2_resumes_in_phase_2(tmp_path):
    command = _train_command(tmp_path, "--phase1-epochs", "1", "--phase2-epochs", "3")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    deadline = time.time() + 600
    while len(_history(tmp_path)) < 2 and process.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_after = len(_history(tmp_path))
    assert 2 <= killed_after < 4, "the run must be killed after a finished phase-2 epoch, before the end"
    assert not os.path.exists(tmp_path / "model.keras")

    rerun = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert "Epoch 1/4" not in rerun.stdout and f"Epoch {killed_after + 1}/4" in rerun.stdout
    records = _history(tmp_path)
    assert [r["epoch"] for r in records] == [0, 1, 2, 3]
    assert [r["phase"] for r in records] == [1, 2, 2, 2]
    schedule = callbacks.TwoStepTraining(1, 3, learning_rate=2e-3)
    for record in records:
        # Logged at the end of the epoch's last step: (steps - 1) / steps of the way through.
        assert record["learning_rate"] == pytest.approx(schedule.learning_rate_at(record["epoch"], 3 / 4), rel=1e-4)
    model = tf.keras.models.load_model(tmp_path / "model.keras")
    assert bcnn_keras.get_phase(model) == 2
    for name in ("training.png", "checkpoints/epoch_004.keras", "logs"):
        assert (tmp_path / name).exists(), name


def _quick_run(output_dir, *extra):
    command = _train_command(output_dir, "--phase1-epochs", "1", "--phase2-epochs", "1", *extra)
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)


def _one_error_line(result):
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    return errors[0]


@pytest.mark.slow  # a subprocess training run or more: `make test-slow`, in CI
def test_resume_with_other_settings_is_refused_and_restart_starts_over(tmp_path):
    first = _quick_run(tmp_path, "--train-limit", "128")
    assert first.returncode == 0, first.stderr[-2000:]
    with open(tmp_path / "config.json") as stream:
        assert json.load(stream)["train_limit"] == 128
    error = _one_error_line(_quick_run(tmp_path, "--train-limit", "128", "--learning-rate", "0.001"))
    assert "holds a run with other settings: --learning-rate 0.001 (was 0.002)" in error and "--restart" in error
    assert (tmp_path / "model.keras").exists()  # nothing of the earlier run is lost
    restarted = _quick_run(tmp_path, "--train-limit", "128", "--learning-rate", "0.001", "--restart")
    assert restarted.returncode == 0 and "Epoch 1/2" in restarted.stdout
    assert [r["learning_rate"] < 0.001 for r in _history(tmp_path)] == [True, True]


@pytest.mark.slow  # a subprocess training run or more: `make test-slow`, in CI
def test_non_finite_loss_stops_with_one_line_and_no_model(tmp_path):
    error = _one_error_line(_quick_run(tmp_path, "--learning-rate", "1e30"))
    assert "training stopped: the loss became nan in epoch 1" in error
    assert not (tmp_path / "model.keras").exists() and not (tmp_path / "checkpoints").exists()


@pytest.mark.slow  # a subprocess training run or more: `make test-slow`, in CI
def test_failed_write_keeps_the_earlier_checkpoints(tmp_path):
    # A directory where the second checkpoint goes makes that write fail, as a full disk would
    # (permissions do not stop root).
    (tmp_path / "checkpoints" / "epoch_002.keras").mkdir(parents=True)
    error = _one_error_line(_quick_run(tmp_path))
    assert "epoch_002.keras" in error and "files written before are intact" in error
    assert [path.name for path in (tmp_path / "checkpoints").iterdir() if ".partial" in path.name] == []
    assert bcnn_keras.get_phase(tf.keras.models.load_model(tmp_path / "checkpoints" / "epoch_001.keras")) == 1
    assert not (tmp_path / "model.keras").exists()


def test_binary_model_starts_from_its_float_twin():
    twin = randomize_statistics(small_bcnn18(binary=False, input_encoding="learned"))
    model = small_bcnn18(input_encoding="learned")
    bcnn_keras.set_phase(model, 1)
    bcnn_keras.models.initialize_from_float_twin(model, twin)
    twin_weights = {w.name: w.numpy() for w in twin.weights}
    copied = [w for w in model.weights if w.name in twin_weights]
    assert len(copied) == len(twin.weights)
    assert all(np.array_equal(w.numpy(), twin_weights[w.name]) for w in copied)
    assert bcnn_keras.get_phase(model) == 1
    kernel = twin.get_layer("block1_conv").kernel
    kernel.assign(tf.fill(kernel.shape, 3.0))  # the twin's kernels are unconstrained
    bcnn_keras.models.initialize_from_float_twin(model, twin)
    assert np.all(model.get_layer("block1_conv").kernel.numpy() == 1.0)
    with pytest.raises(ValueError, match="is not the float twin"):
        bcnn_keras.models.initialize_from_float_twin(model, small_bcnn18(binary=False, width_multiplier=0.5))


@pytest.mark.slow
def test_cli_trains_with_a_float_twin_teacher(tmp_path):
    command = _train_command(
        tmp_path,
        "--phase1-epochs",
        "1",
        "--phase2-epochs",
        "1",
        "--teacher",
        "float-twin",
        "--teacher-epochs",
        "1",
        "--init-from-teacher",
    )
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "step 0: training the float-twin teacher" in result.stdout
    assert (tmp_path / "teacher" / "model.keras").exists()
    assert [r["phase"] for r in _history(tmp_path)] == [1, 2]
    assert "final test top-1: " in result.stdout
    rerun = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert rerun.returncode == 0 and "already holds a finished run" in rerun.stdout


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--phase1-epochs", "two"], "invalid int value"),
        (["--dataset", "mnist"], "invalid choice"),
        (["--batch-size", "0"], "--batch-size must be > 0"),
        (["--teacher", "/no/such/teacher.keras"], "teacher model /no/such/teacher.keras does not exist"),
        (["--phase1-epochs", "0", "--phase2-epochs", "0"], "at least one epoch"),
        (["--init-from-teacher"], "--init-from-teacher needs --teacher (float-twin, or the file of a float twin)"),
        (["--dataset", "cifar10", "--data-dir", "{tmp}/empty"], "cifar10 not found"),
        (["--dataset", "folder:{tmp}/photos"], "image folder {tmp}/photos does not exist"),
        (["--image-size", "32"], "--image-size is for --dataset folder:PATH only"),
    ],
)
def test_bad_flags_and_missing_data_give_one_line(tmp_path, arguments, message):
    arguments = [a.replace("{tmp}", str(tmp_path)) for a in arguments]
    message = message.replace("{tmp}", str(tmp_path))
    command = [sys.executable, "-m", "bcnn_keras.train", "--output-dir", str(tmp_path / "out"), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_help_documents_every_flag():
    result = subprocess.run(
        [sys.executable, "-m", "bcnn_keras.train", "--help"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0
    for flag in (
        "--dataset",
        "--model",
        "--phase1-epochs",
        "--phase2-epochs",
        "--output-dir",
        "--teacher",
        "--width-multiplier",
        "--batch-size",
        "--strategy",
        "--mixed-precision",
        "--seed",
        "--channel-multiple",
        "--stem-kernel-size",
        "--input-layer",
        "--shortcut",
        "--classifier",
    ):
        assert flag in result.stdout


@pytest.mark.parametrize(
    "arguments, augment", [([], "standard"), (["--no-augment"], "none"), (["--augment", "flip"], "flip")]
)
def test_augmentation_flags(arguments, augment):
    from bcnn_keras.training import cli

    assert cli.build_parser().parse_args(["--output-dir", "unused", *arguments]).augment == augment


def test_every_flag_is_a_config_field_with_its_default():
    import dataclasses

    from bcnn_keras import training
    from bcnn_keras.training import cli

    parsed = vars(cli.build_parser().parse_args(["--output-dir", "run"]))
    assert parsed.pop("library_logs") is False  # a flag of the command line only
    assert parsed == dataclasses.asdict(training.TrainConfig(output_dir="run"))
    two_step = callbacks.TwoStepTraining(1, 1).get_config()
    assert two_step["phase1_weight_decay"] == training.TrainConfig.phase1_weight_decay
    assert two_step["warmup_epochs"] == training.TrainConfig.warmup_epochs


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(model="BCNN50"), "--model: invalid choice: 'BCNN50'"),
        (dict(dataset="mnist"), "invalid choice: 'mnist'"),
        (dict(phase1_epochs=0, phase2_epochs=0), "at least one epoch"),
        (dict(alpha=float("nan")), "--alpha must be a finite number"),
        (dict(validation_split=0.5), "--validation-split is for --dataset folder:PATH only"),
        (dict(teacher="float-twin", float_twin=True), "--teacher and --float-twin exclude each other"),
        (dict(head_epochs=2), "--head-epochs needs --weights"),
        (dict(weights="fashion_mnist", float_twin=True), "--weights starts from trained weights"),
        (dict(dataset="folder:photos", validation_images=10), "--validation-images is not for --dataset folder:PATH"),
        (dict(validation_images=0), "--validation-images must be > 0"),
    ],
)
def test_config_refuses_bad_settings_when_made(settings, message):
    from bcnn_keras import training

    with pytest.raises(training.TrainingError, match=re.escape(message)):
        training.TrainConfig(output_dir="run", **settings)


def test_recorded_settings_refuse_a_changed_setting_and_default_a_newer_one(tmp_path):
    from bcnn_keras import data, files, training
    from bcnn_keras.training.trainer import _claim_output_dir

    config = training.TrainConfig(output_dir=str(tmp_path), learning_rate=0.001, model="BCNN8")
    spec = data.dataset_spec("fashion_mnist")
    claim = lambda config: _claim_output_dir(config, spec)  # noqa: E731
    claim(config)
    recorded = files.read_json(tmp_path / "config.json")
    # The resolved architecture goes with the settings: BCNN8's own input block.
    architecture = recorded.pop(training.RECORDED_ARCHITECTURE)
    assert architecture["stem_strides"] == 2 and architecture["width_multiplier"] == 1.0
    assert recorded == training.recorded_settings(config) and "output_dir" not in recorded
    del recorded["validation_split"]  # a run recorded before the setting existed had its default
    files.write_json(tmp_path / "config.json", recorded)
    claim(config)
    # No epoch has finished yet: other settings start over.
    claim(dataclasses.replace(config, learning_rate=0.003))
    assert files.read_json(tmp_path / "config.json")["learning_rate"] == 0.003
    claim(config)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "epoch_001.keras").write_bytes(b"an epoch finished")
    with pytest.raises(training.TrainingError, match=re.escape("--learning-rate 0.002 (was 0.001)")):
        claim(dataclasses.replace(config, learning_rate=0.002))
    claim(dataclasses.replace(config, learning_rate=0.002, restart=True))
    assert files.read_json(tmp_path / "config.json")["learning_rate"] == 0.002


def test_architecture_flags_reach_the_built_model():
    from bcnn_keras import data, training
    from bcnn_keras.training import cli

    args = cli.build_parser().parse_args(
        [
            "--output-dir",
            "unused",
            "--width-multiplier",
            "0.375",
            "--channel-multiple",
            "32",
            "--stem-strides",
            "2",
            "--stem-kernel-size",
            "3",
            "--input-layer",
            "float",
            "--shortcut",
            "float_conv",
            "--classifier",
            "float",
        ]
    )
    settings = {key: value for key, value in vars(args).items() if key != "library_logs"}
    model = training.build_model(training.TrainConfig(**settings), data.dataset_spec("fashion_mnist"), binary=True)
    assert model.get_layer("stem_conv").kernel_size == (3, 3) and model.get_layer("stem_conv").filters == 32
    assert isinstance(model.get_layer("classifier_dense"), tf.keras.layers.Dense)
    assert model.get_layer("block5_shortcut_conv").filters == 64


def test_float_twin_teacher_of_shipped_weights_has_their_architecture():
    from bcnn_keras import data, training

    config = training.TrainConfig(output_dir="unused", weights="fashion_mnist", teacher="float-twin")
    spec = data.dataset_spec("fashion_mnist")
    twin, student = (training.build_model(config, spec, binary=binary) for binary in (False, True))
    assert training.architecture(config, spec, binary=False).width_multiplier == 0.25
    assert twin.name == "bcnn18_float" and [layer.name for layer in twin.layers] == [
        layer.name for layer in student.layers
    ]
    assert twin.get_layer("stem_conv").filters == 16 and twin.get_layer("stem_conv").strides == (1, 1)


def test_train_then_export_then_verify_end_to_end(tmp_path):
    """The user's path: the training CLI, then the exporter CLI verifying on real test images."""
    train = subprocess.run(
        _train_command(tmp_path, "--phase1-epochs", "1", "--phase2-epochs", "1"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    # larq's quantized variables no longer make AutoGraph ask for a bug report.
    assert "AutoGraph could not transform" not in train.stdout + train.stderr
    report_path = tmp_path / "report.json"
    export = subprocess.run(
        [
            sys.executable,
            "export/to_tflite.py",
            str(tmp_path / "model.keras"),
            "-o",
            str(tmp_path / "model.tflite"),
            "--verify",
            "fashion_mnist",
            "--samples",
            "300",
            "--report",
            str(report_path),
            "--latency-runs",
            "10",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert export.returncode == 0, export.stdout[-2000:] + export.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["binary_mac_fraction"] == 1.0 and report["float_layers"] == []
    assert report["parity"]["samples"] == 300 and report["parity"]["top1_agreement"] >= 0.995
    assert report["parity"]["tflite_accuracy"] == pytest.approx(report["parity"]["keras_accuracy"], abs=0.01)
    assert report["size_bytes"] == (tmp_path / "model.tflite").stat().st_size
    # `make demo`'s last lines, from this run.
    demo = subprocess.run(
        [sys.executable, "-m", "bcnn_keras.demo", str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=900
    )
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-2000:]
    lines = demo.stdout.strip().splitlines()[-5:]
    assert [line.split()[0] for line in lines] == ["accuracy", "file", "binary", "agreement", "one"]
    assert f"{report['size_bytes']:,} bytes" in lines[1] and "smaller than the float twin's" in lines[1]
    assert "100.0% of the file's MACs" in lines[2] and "(its label: Ankle boot)" in lines[4]


def _free_ports(count):
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def _start_cluster(output_dir, ports, log_dir):
    """The multi-worker recipe of docs/training.md on two local workers: the same command, one TF_CONFIG each."""
    command = _train_command(
        output_dir,
        "--strategy",
        "multiworker",
        "--batch-size",
        "32",
        "--train-limit",
        "128",
        "--test-limit",
        "64",
        "--phase1-epochs",
        "1",
        "--phase2-epochs",
        "2",
        "--teacher",
        "float-twin",
        "--teacher-epochs",
        "1",
    )
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    workers = []
    for index in range(len(ports)):
        config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        log = open(os.path.join(log_dir, f"worker{index}.log"), "a")
        workers.append(
            subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=REPO,
                env={**os.environ, "TF_CONFIG": config},
            )
        )
    return workers


@pytest.mark.slow
def test_two_workers_write_one_run_and_resume_after_a_worker_is_killed(tmp_path):
    output_dir, log_dir = tmp_path / "run", tmp_path
    workers = _start_cluster(output_dir, _free_ports(2), log_dir)
    deadline = time.time() + 600
    first_checkpoint = output_dir / "checkpoints" / "epoch_001.keras"
    while not first_checkpoint.exists() and all(w.poll() is None for w in workers) and time.time() < deadline:
        time.sleep(0.5)
    assert first_checkpoint.exists(), (log_dir / "worker0.log").read_text()[-3000:]
    workers[1].kill()  # the other worker dies; the chief then waits for it in vain
    workers[0].kill()
    for worker in workers:
        worker.wait()
    assert not (output_dir / "model.keras").exists()

    workers = _start_cluster(output_dir, _free_ports(2), log_dir)  # the same command again
    for index, worker in enumerate(workers):
        assert worker.wait(timeout=900) == 0, (log_dir / f"worker{index}.log").read_text()[-3000:]
    chief_log = (log_dir / "worker0.log").read_text()
    assert chief_log.count("Epoch 1/3") == 1 and "Epoch 2/3" in chief_log  # resumed, not restarted
    records = _history(output_dir)
    assert [r["epoch"] for r in records] == [0, 1, 2] and [r["phase"] for r in records] == [1, 2, 2]
    assert sorted(os.listdir(output_dir)) == sorted(
        ["config.json", "model.keras", "classes.json", "history.json", "training.png", "checkpoints", "logs", "teacher"]
        + (["backup"] if (output_dir / "backup").exists() else [])
    )
    assert sorted(os.listdir(output_dir / "checkpoints")) == ["epoch_001.keras", "epoch_002.keras", "epoch_003.keras"]
    assert len(_history(output_dir / "teacher")) == 1 and (output_dir / "teacher" / "model.keras").exists()
    assert bcnn_keras.get_phase(tf.keras.models.load_model(output_dir / "model.keras")) == 2
    leftovers = [p for p in output_dir.rglob("*") if "partial" in p.name or "workertemp" in p.name]
    assert not leftovers


def _folder_train_command(folder, output_dir, *extra):
    return [
        sys.executable,
        "-m",
        "bcnn_keras.train",
        "--dataset",
        f"folder:{folder}",
        "--width-multiplier",
        "0.125",
        "--batch-size",
        "8",
        "--phase1-epochs",
        "1",
        "--phase2-epochs",
        "1",
        "--output-dir",
        str(output_dir),
        "--verbose",
        "2",
        *extra,
    ]


def test_a_bad_image_folder_gives_exactly_one_line(tmp_path):
    folder = write_image_folder(str(tmp_path / "photos"), per_class=2)
    write_image_folder(folder, per_class=1, mode="L", patterns=("vertical",))  # vertical/000.png turns grey
    result = subprocess.run(
        _folder_train_command(folder, tmp_path / "run"),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},  # keeps TensorFlow's import-time C++ lines off stderr
    )
    assert result.returncode == 2 and result.stderr.splitlines() == [
        f"error: mixed grey and RGB images: {folder}/vertical/000.png is grey, {folder}/checkers/000.png is RGB; "
        "convert them all to one"
    ], result.stderr
    assert not (tmp_path / "run").exists()  # the folder is checked before anything is written


@pytest.mark.slow  # a subprocess training run or more: `make test-slow`, in CI
def test_train_on_an_image_folder_then_export_then_predict_end_to_end(tmp_path):
    """Your own images: the training CLI on a folder, the exporter verifying on its test split,
    then `bcnn_keras.predict` with the class names the run saved."""
    folder = write_image_folder(str(tmp_path / "photos"), suffix=".jpg")
    run = tmp_path / "run"
    train = subprocess.run(_folder_train_command(folder, run), capture_output=True, text=True, cwd=REPO, timeout=900)
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-2000:]
    assert json.loads((run / "classes.json").read_text()) == sorted(CLASS_PATTERNS)  # the folder names, sorted
    model = tf.keras.models.load_model(run / "model.keras")
    assert model.input_shape == (None, 20, 20, 3) and model.output_shape == (None, 3)
    export = subprocess.run(
        # Six test images of a model trained for two tiny epochs: many of its pre-activations sit
        # next to a sign threshold, where float rounding flips them, and one flip of six is 17 %.
        # The parity of trained models is tested on Fashion-MNIST above.
        [
            sys.executable,
            "export/to_tflite.py",
            str(run / "model.keras"),
            "-o",
            str(run / "model.tflite"),
            "--verify",
            f"folder:{folder}",
            "--parity-threshold",
            "0.6",
            "--report",
            str(run / "report.json"),
            "--latency-runs",
            "0",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )
    assert export.returncode == 0, export.stdout[-2000:] + export.stderr[-2000:]
    report = json.loads((run / "report.json").read_text())
    assert report["class_names"] == sorted(CLASS_PATTERNS) and report["binary_mac_fraction"] == 1.0
    assert report["parity"]["samples"] == 6 and re.search(r"classes +3: checkers, horizontal, vertical", export.stdout)
    image = tmp_path / "new.png"
    from PIL import Image

    Image.fromarray(pattern_image("vertical", size=40, seed=7)).save(image)  # another size: resized
    predict = subprocess.run(
        [sys.executable, "-m", "bcnn_keras.predict", str(run / "model.tflite"), str(image), "--top-k", "2"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert predict.returncode == 0, predict.stderr[-2000:]
    lines = predict.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith(f"{image}  ") and lines[0].endswith(" ms")
    assert all(line.split()[1] in CLASS_PATTERNS for line in lines[1:]), predict.stdout
