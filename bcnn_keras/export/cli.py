"""The exporter's command line (`python export/to_tflite.py` or `bcnn-export`).

    bcnn-export MODEL -o OUT.tflite [--target arm|xcore] [--report REPORT.json]
        [--verify fashion_mnist|folder:PATH|PATH.npz|random] [--allow-float]

MODEL is a .keras file, an .h5 file or a SavedModel directory. The report is printed as a table
(stdout) and, with --report, written as JSON; a `classes.json` next to MODEL (the training
CLI writes one) puts the class names into the report and into the file's metadata. Any bad input
or failed check prints one line "error: ..." on stderr, exits with 2 and writes nothing at OUT: a
file that was there stays as it was. OUT may not be the model itself, nor an existing file that
is not a `.tflite`, unless --overwrite.

This module and the packages above it import only the standard library: TensorFlow is imported
after the arguments are parsed and its logs are turned down, so `--help` is quick and prints
no library log lines, and errors stay one line.
"""

import contextlib
import sys

from bcnn_keras.console import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_UNEXPECTED,
    OneLineParser,
    Progress,
    fail,
    quiet_libraries,
)
from bcnn_keras.export import defaults


def parse_args(argv=None):
    """The command line as an `argparse.Namespace`.

    Example:
        >>> parse_args(["model.keras", "-o", "model.tflite"]).target
        'arm'
    """
    parser = OneLineParser(
        description="Export a Keras/larq model to a bit-packed Larq Compute Engine .tflite file, "
        "with lint, op census, parity check and report.",
        epilog="Exit status: 0 on success, 2 on a bad input or a failed check (one 'error:' line on "
        "stderr, no output file), 1 on an unexpected error.",
    )
    parser.add_argument("model", help="a .keras file, an .h5 file or a SavedModel directory")
    parser.add_argument("-o", "--output", required=True, help="the .tflite file to write")
    parser.add_argument(
        "--target", choices=defaults.TARGETS, default=defaults.TARGET, help="LCE target (default: %(default)s)"
    )
    parser.add_argument(
        "--input-type",
        choices=defaults.INPUT_TYPES,
        default=defaults.INPUT_TYPE,
        help="the file's image input: float32 pixels, or uint8 (raw camera bytes, cast to float32 inside "
        "the file) (default: %(default)s)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace OUT (and REPORT.json) even if it is not a file of that kind, or is the model itself",
    )
    parser.add_argument("--report", metavar="REPORT.json", help="also write the report as JSON")
    parser.add_argument(
        "--verify",
        metavar="fashion_mnist|folder:PATH|PATH.npz|random",
        help="compare Keras and the LCE interpreter on this data: the Fashion-MNIST test split, the "
        "test split of an image folder (as the training CLI splits it), an .npz file with arrays x "
        "(and optional labels y), or random raw-pixel images",
    )
    parser.add_argument(
        "--samples", type=int, default=defaults.SAMPLES, help="verification samples (default: %(default)s)"
    )
    parser.add_argument(
        "--parity-threshold",
        type=float,
        default=defaults.PARITY_THRESHOLD,
        help="minimum top-1 agreement between Keras and LCE (default: %(default)s)",
    )
    parser.add_argument("--allow-float", action="store_true", help="export even if some conv/dense layers stay float")
    parser.add_argument(
        "--latency-runs",
        type=int,
        default=defaults.LATENCY_RUNS,
        help="timed x86 runs, >= 10; 0 skips latency (default: %(default)s)",
    )
    parser.add_argument(
        "--unsafe-load",
        action="store_true",
        help="load a model file that stores Python code (a Lambda layer) and run that code: only for "
        "files you trust (refused by default, in every format)",
    )
    parser.add_argument(
        "--custom-objects",
        metavar="MODULE",
        help="import MODULE (a dotted name or a .py file) first: it registers the custom classes and "
        "functions of the model (an optional dict `custom_objects` adds unregistered ones)",
    )
    parser.add_argument("--verbose", action="store_true", help="show library logs and tracebacks")
    return parser.parse_args(argv)


def _export(export, loading, args):
    """Runs the export with library output captured (unless --verbose); returns the report."""
    progress = Progress("verifying")  # made before the capture: it draws on the terminal
    with contextlib.nullcontext() if args.verbose else export.captured_stderr():
        custom_objects = loading.import_custom_objects(args.custom_objects) if args.custom_objects else None
        return export.export(
            args.model,
            args.output,
            target=args.target,
            verify=args.verify,
            allow_float=args.allow_float,
            parity_threshold=args.parity_threshold,
            samples=args.samples,
            latency_runs=args.latency_runs,
            report_path=args.report,
            safe_mode=not args.unsafe_load,
            custom_objects=custom_objects,
            input_type=args.input_type,
            overwrite=args.overwrite,
            progress=progress,
        )


def main(argv=None):
    """The CLI entry point; returns the exit status.

    Example:
        >>> tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)]).save("model.keras")
        >>> main(["model.keras", "-o", "model.tflite", "--verify", "random"])
        model             model.keras
        output            model.tflite (target arm)
        ...
        binary MAC share  100.00% (binary 147.46 k, float 0 MACs)
        ...
        0
    """
    args = parse_args(argv)
    if not args.verbose:
        quiet_libraries()
    try:
        from bcnn_keras import export, loading
    except Exception as error:
        return fail(f"cannot import bcnn_keras ({type(error).__name__}: {error})", EXIT_UNEXPECTED)
    try:
        report = _export(export, loading, args)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except (export.ExportError, loading.ModelFileError) as error:
        return fail(error, EXIT_BAD_INPUT)
    except Exception as error:
        if args.verbose:
            raise
        return fail(f"unexpected {type(error).__name__}: {error} (rerun with --verbose)", EXIT_UNEXPECTED)
    print(export.format_report(report))
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
