"""Training as a library: a `TrainConfig` holds every setting of a run; `run(config)` trains.

    from bcnn_keras.training import TrainConfig, run

    records = run(TrainConfig(dataset="fashion_mnist", output_dir="runs/fmnist", phase1_epochs=4, phase2_epochs=4))

A run trains, in `output_dir`: step 0, the float-twin teacher (`teacher="float-twin"`, in
`OUTPUT_DIR/teacher`), if asked for; then the binary student in two steps (binary activations
with real weights, then binary weights too), distilled from the teacher if there is one; then
it saves the final model. `bcnn_keras.run_dir` describes the folder. Running the same config
again resumes where the run stopped; other settings in the same folder are refused.

Modules: `config` (the `TrainConfig`, without TensorFlow), `trainer` (`run`, `build_model`) and
`cli`, the command line `python -m bcnn_keras.train` (`bcnn-train`): one flag per setting,
named after the field (`phase1_epochs` is `--phase1-epochs`), which is also how errors name them.
"""

from bcnn_keras.lazy import lazy_package

# Public names -> the module that defines them, imported on first use (TensorFlow with `trainer`).
_EXPORTS = {
    **dict.fromkeys(
        (
            "ARCHITECTURE_SETTINGS",
            "RECORDED_ARCHITECTURE",
            "STRATEGIES",
            "TrainConfig",
            "TrainingError",
            "check_dataset_name",
            "flag",
            "recorded_settings",
        ),
        "config",
    ),
    **dict.fromkeys(
        (
            "NonFiniteLossError",
            "StopOnNonFiniteLoss",
            "architecture",
            "build_model",
            "has_trained",
            "is_chief",
            "make_strategy",
            "run",
            "start_from_weights",
            "top1_accuracy",
            "train_float",
            "train_head",
        ),
        "trainer",
    ),
}

__all__ = sorted(_EXPORTS)
lazy_package(__name__, _EXPORTS, ("cli", "config", "trainer"))
