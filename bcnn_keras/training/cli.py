"""Training CLI: two-step training of a BCNN, optionally distilled from a float teacher.

    python -m bcnn_keras.train --dataset fashion_mnist --model BCNN18 \\
        --phase1-epochs 4 --phase2-epochs 4 --output-dir runs/fmnist

`--dataset folder:PATH` trains on your own images (one subfolder per class, see
`data.scan_image_folder`); the model's input shape and class count follow the folder.

The flags are the fields of `bcnn_keras.training.TrainConfig` (their defaults and help too;
the architecture's come from `bcnn_keras.architecture.Architecture`), and the training is
`bcnn_keras.training.run`; `bcnn_keras.run_dir` describes what the output dir receives. A
re-run with the same output dir resumes (also after SIGKILL).

`--help` and bad flags need no TensorFlow: it loads only when the training starts, after its
log lines have been turned down (`--library-logs` shows them).
"""

import argparse
import dataclasses
import os
import shlex
import sys
import types
import typing

from bcnn_keras.console import EXIT_BAD_INPUT, OneLineParser, fail, quiet_libraries
from bcnn_keras.training.config import ARCHITECTURE_SETTINGS, TrainConfig, TrainingError, check_dataset_name, flag

LIBRARY_LOGS = "--library-logs"


def dataset_name(value):
    """An argparse type: a known dataset name, or `folder:PATH`.

    Example:
        >>> dataset_name("folder:photos")
        'folder:photos'
    """
    try:
        check_dataset_name(value)
    except TrainingError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return value


# Settings whose flag parses the value with more than their type.
_PARSERS = {"dataset": dataset_name}


def value_type(field):
    """The type of a field's values: `int` for `int | None`."""
    if isinstance(field.type, types.UnionType):
        return next(kind for kind in typing.get_args(field.type) if kind is not type(None))
    return field.type


def _argument_options(field):
    """The `add_argument` options of the flag of a `TrainConfig` field; its help ends with its default."""
    options = {"help": field.metadata["help"]}
    if field.default is dataclasses.MISSING:
        return {**options, "required": True, "help": options["help"] + " (required)"}
    if value_type(field) is bool:
        return {**options, "action": "store_true", "help": options["help"] + " (default: off)"}
    if "(default" not in options["help"]:
        options["help"] += " (default: %(default)s)"
    options.update(type=_PARSERS.get(field.name, value_type(field)), default=field.default)
    if field.metadata["choices"]:
        options["choices"] = list(field.metadata["choices"])
    return options


def build_parser():
    """The command line: one flag per `TrainConfig` field, plus `--no-augment` and `--library-logs`.

    Example:
        >>> build_parser().parse_args(["--output-dir", "run", "--no-augment"]).augment
        'none'
    """
    parser = OneLineParser(
        prog="python -m bcnn_keras.train",
        description="Two-step training of a fully binary CNN (phase 1: binary activations and "
        "real weights; phase 2: binary weights too).",
    )
    architecture = parser.add_argument_group(
        "architecture", "the knobs of bcnn_keras.architecture.Architecture (unset: the model's own)"
    )
    for field in dataclasses.fields(TrainConfig):
        group = architecture if field.name in ARCHITECTURE_SETTINGS else parser
        group.add_argument(flag(field.name), **_argument_options(field))
        if field.name == "augment":
            parser.add_argument(
                "--no-augment",
                dest="augment",
                action="store_const",
                const="none",
                help="the same as --augment none (short schedules can fit better without augmentation) (default: off)",
            )
    parser.add_argument(
        LIBRARY_LOGS, action="store_true", help="show TensorFlow's and the other libraries' log lines (default: off)"
    )
    return parser


def main(argv=None):
    """The CLI entry point: parses the flags into a `TrainConfig` and runs it; returns the exit status.

    Example:
        >>> main(["--output-dir", "run", "--batch-size", "0"])
        2
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if LIBRARY_LOGS not in argv:
        quiet_libraries()  # before TensorFlow loads: its import prints C++ log lines
    from bcnn_keras import data

    args = build_parser().parse_args(argv)
    settings = {key: value for key, value in vars(args).items() if key != "library_logs"}
    try:
        config = TrainConfig(**settings)  # checks its values when made, without TensorFlow
        from bcnn_keras.training import run  # TensorFlow loads here

        records = run(config)
    except (TrainingError, data.DatasetNotFoundError, ValueError) as error:
        return fail(error, EXIT_BAD_INPUT)
    except OSError as error:  # e.g. a full or unwritable output dir; every file is written atomically
        where = error.filename or args.output_dir
        return fail(f"{where}: {error.strerror or error} (files written before are intact)", EXIT_BAD_INPUT)
    print(summary(args, records[-1] if records else {}))
    return 0


def summary(args, last):
    """The lines that end a run: its accuracy, then the commands to export the model and to see
    its curves.

    Example:
        >>> print(summary(argparse.Namespace(output_dir="runs/a b", validation_images=None), {"val_accuracy": 0.9}))
        final test top-1: 0.9000 (runs/a b/model.keras)
        next: bcnn-export 'runs/a b/model.keras' -o 'runs/a b/model.tflite' --verify ...
              tensorboard --logdir 'runs/a b/logs'
    """
    from bcnn_keras import data
    from bcnn_keras.run_dir import LOGS, MODEL_FILE, read_test_result

    model = os.path.join(args.output_dir, MODEL_FILE)
    lines = []
    if "val_accuracy" in last:
        measured_on = "validation" if args.validation_images else "test"
        lines.append(f"final {measured_on} top-1: {last['val_accuracy']:.4f} ({model})")
    tested = read_test_result(args.output_dir) if args.validation_images else None
    if tested:
        lines.append(f"test top-1, evaluated once: {tested['top1']:.4f} on {tested['images']} images")
    verify = (
        args.dataset if getattr(args, "dataset", "").startswith(("fashion_mnist", data.FOLDER_PREFIX)) else "random"
    )
    tflite = os.path.join(args.output_dir, "model.tflite")
    lines.append(f"next: bcnn-export {shlex.quote(model)} -o {shlex.quote(tflite)} --verify {shlex.quote(verify)}")
    lines.append(f"      tensorboard --logdir {shlex.quote(os.path.join(args.output_dir, LOGS))}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
