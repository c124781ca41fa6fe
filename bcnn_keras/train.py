"""Training CLI: two-step training of a BCNN, optionally distilled from a float teacher.

    python -m bcnn_keras.train --dataset fashion_mnist --model BCNN18 \\
        --phase1-epochs 4 --phase2-epochs 4 --output-dir runs/fmnist

`--dataset folder:PATH` trains on your own images (one subfolder per class, see
`data.scan_image_folder`); the model's input shape and class count follow the folder.

The flags are the fields of `bcnn_keras.training.TrainConfig` (their defaults and help too),
and the training is `bcnn_keras.training.run`; `bcnn_keras.run_dir` describes what the output
dir receives. A re-run with the same output dir resumes (also after SIGKILL).
"""

import argparse
import dataclasses
import sys
import types
import typing

from bcnn_keras import data
from bcnn_keras.cli import EXIT_BAD_INPUT, OneLineParser, fail
from bcnn_keras.training import TrainConfig, TrainingError, check_dataset_name, flag, run


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


def _value_type(field):
    """The type of a field's values: `int` for `int | None`."""
    if isinstance(field.type, types.UnionType):
        return next(kind for kind in typing.get_args(field.type) if kind is not type(None))
    return field.type


def _argument_options(field):
    """The `add_argument` options of the flag of a `TrainConfig` field."""
    options = {"help": field.metadata["help"]}
    if field.default is dataclasses.MISSING:
        return {**options, "required": True}
    if _value_type(field) is bool:
        return {**options, "action": "store_true"}
    options.update(type=_PARSERS.get(field.name, _value_type(field)), default=field.default)
    if field.metadata["choices"]:
        options["choices"] = list(field.metadata["choices"])
    return options


def build_parser():
    """The command line: one flag per `TrainConfig` field, plus `--no-augment`.

    Example:
        >>> build_parser().parse_args(["--output-dir", "run", "--no-augment"]).augment
        'none'
    """
    parser = OneLineParser(
        prog="python -m bcnn_keras.train",
        description="Two-step training of a fully binary CNN (phase 1: binary activations and "
        "real weights; phase 2: binary weights too).",
    )
    for field in dataclasses.fields(TrainConfig):
        parser.add_argument(flag(field.name), **_argument_options(field))
        if field.name == "augment":
            parser.add_argument(
                "--no-augment",
                dest="augment",
                action="store_const",
                const="none",
                help="the same as --augment none (short schedules can fit better without augmentation)",
            )
    return parser


def main(argv=None):
    """The CLI entry point: parses the flags into a `TrainConfig` and runs it; returns the exit status.

    Example:
        >>> main(["--output-dir", "run", "--batch-size", "0"])
        2
    """
    args = build_parser().parse_args(argv)
    try:
        records = run(TrainConfig(**vars(args)))  # the config checks its values when made
    except (TrainingError, data.DatasetNotFoundError, ValueError) as error:
        return fail(error, EXIT_BAD_INPUT)
    except OSError as error:  # e.g. a full or unwritable output dir; every file is written atomically
        where = error.filename or args.output_dir
        return fail(f"{where}: {error.strerror or error} (files written before are intact)", EXIT_BAD_INPUT)
    last = records[-1] if records else {}
    if "val_accuracy" in last:
        print(f"final test accuracy: {last['val_accuracy']:.4f} ({args.output_dir}/model.keras)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
