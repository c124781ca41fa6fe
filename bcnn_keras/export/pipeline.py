"""The export pipeline: every step in order, with the flatbuffer written only when all passed."""

import contextlib
import os
from typing import NamedTuple

from bcnn_keras import data, layers, loading
from bcnn_keras.version import __version__
from bcnn_keras.export import defaults
from bcnn_keras.export.census import census, cross_check
from bcnn_keras.export.convert import convert_with_diagnostics
from bcnn_keras.export.errors import ExportError
from bcnn_keras.export.outputs import TFLITE_IDENTIFIER, atomic_output, check_directory
from bcnn_keras.export.latency import latency_x86
from bcnn_keras.export.lint import check_findings, classify_layers
from bcnn_keras.export.metadata import with_metadata
from bcnn_keras.export.prepare import check_model, load_model, prepare_in_place
from bcnn_keras.export.report import Report, write_report
from bcnn_keras.export.rewrite import rewrite
from bcnn_keras.export.verify import checked_parity, parity_failure, verification_data


class _Options(NamedTuple):
    class_names: object
    target: str
    input_type: str
    overwrite: bool
    progress: object
    verify: object
    allow_float: bool
    parity_threshold: float
    samples: int
    latency_runs: int
    safe_mode: bool
    custom_objects: dict


def export(
    model_or_path,
    output_path,
    *,
    target=defaults.TARGET,
    verify=None,
    allow_float=False,
    parity_threshold=defaults.PARITY_THRESHOLD,
    samples=defaults.SAMPLES,
    latency_runs=defaults.LATENCY_RUNS,
    report_path=None,
    safe_mode=True,
    custom_objects=None,
    class_names=None,
    input_type=defaults.INPUT_TYPE,
    overwrite=False,
    progress=None,
):
    """Exports a Keras model (or model file) to a bit-packed LCE flatbuffer; returns the `Report`.

    Steps: load, prepare (phase 2, float32), check shapes and weights, lint (float layers need
    `allow_float`; ternary inputs are refused), rewrite, convert, census, parity on `verify`
    data (see `verification_data`; fails below `parity_threshold`), x86 latency
    (`latency_runs=0` skips it). The flatbuffer is written to a temporary file and renamed to
    `output_path` only when every step passed: a failed export leaves whatever was at
    `output_path` as it was. Raises `ExportError` (one line) on bad input or a failed check; on a
    parity failure `report_path` still gets the report.

    Nothing of the user's is overwritten by accident: `output_path` may not be the model file
    itself, nor an existing file that is not a TFLite flatbuffer, unless `overwrite=True`.

    `input_type="uint8"` makes the file take raw uint8 pixels (cast to float32 inside it); the
    parity check then feeds both sides the same whole pixel values. The class names and the
    input's type ride in the file's metadata (`bcnn_keras.export.metadata`). `progress` is
    called as `progress(done, total)` while the parity check runs. A model file that
    stores Python code (a `Lambda`) is refused unless `safe_mode=False`; `custom_objects` maps
    names of unregistered classes and functions in the file to their objects.

    The report's and the file's `class_names` are `class_names` if given, else those of a
    `classes.json` next to the model file (a JSON list of strings, one per output, as the
    training CLI writes it), else the model's own (`BCNN18(weights="fashion_mnist")` has them);
    a malformed file is an `ExportError`.

    A bcnn_keras model in training phase 1 is exported in phase 2, with a warning; a model passed
    in keeps its phase (it is switched only while the export runs).

    Example:
        >>> bcnn_keras.BCNN18(weights="fashion_mnist").save("model.keras")
        >>> report = export("model.keras", "model.tflite", verify="fashion_mnist", samples=100)
        >>> report.binary_mac_fraction, report.parity.top1_agreement >= 0.995
        (1.0, True)
    """
    options = _Options(
        class_names,
        target,
        input_type,
        overwrite,
        progress,
        verify,
        allow_float,
        parity_threshold,
        samples,
        latency_runs,
        safe_mode,
        custom_objects or {},
    )
    _check_options(options)
    check_output_path(output_path, model_or_path, overwrite)
    if report_path is not None:
        check_directory(report_path, "report")
        check_output_path(report_path, model_or_path, overwrite, what="report", expected_start=b"{")
    try:
        report = _export(model_or_path, output_path, options)
    except ExportError as error:
        if report_path is not None and error.report is not None:
            write_report(error.report, report_path)
        raise
    if report_path is not None:
        write_report(report, report_path)
    return report


def _check_options(options):
    if options.target not in defaults.TARGETS:
        raise ExportError(f"target must be one of {defaults.TARGETS}, got {options.target!r}")
    if options.input_type not in defaults.INPUT_TYPES:
        raise ExportError(f"input type must be one of {', '.join(defaults.INPUT_TYPES)}, got {options.input_type!r}")
    if not 0 <= options.parity_threshold <= 1:
        raise ExportError(f"parity threshold must be between 0 and 1, got {options.parity_threshold!r}")
    if options.samples < 1:
        raise ExportError(f"samples must be >= 1, got {options.samples!r}")
    if options.latency_runs and options.latency_runs < 10:
        raise ExportError(f"latency runs must be 0 (skip) or >= 10, got {options.latency_runs!r}")


@contextlib.contextmanager
def _phases_kept(model):
    """Gives every phased quantizer of `model` its phase back when the block ends."""
    quantizers = layers.phased_quantizers(model)
    phases = [quantizer.phase for quantizer in quantizers]
    try:
        yield
    finally:
        for quantizer, phase in zip(quantizers, phases):
            quantizer.phase = phase


def _export(model_or_path, output_path, options):
    existed = os.path.exists(output_path)
    try:
        with atomic_output(output_path) as temporary:
            source, model, notes = _load(model_or_path, options)
            model_file = source if isinstance(model_or_path, (str, os.PathLike)) else None
            with _phases_kept(model):
                return _export_loaded(source, model_file, model, notes, output_path, temporary, options)
    except ExportError as error:
        if existed:
            raise ExportError(f"{error}; the existing {output_path} was kept as it was", report=error.report) from error
        raise


def _export_loaded(source, model_file, model, notes, output_path, temporary, options):
    model, preparation_notes = prepare_in_place(model)
    notes += preparation_notes
    check_model(model)
    class_names = _class_names(model_file, model, options.class_names)
    # Loaded before converting, so that bad verification data fails fast.
    data = None
    if options.verify is not None:
        data = verification_data(options.verify, model.inputs[0].shape[1:], options.samples)
    classification = classify_layers(model, options.target)
    check_findings(classification.findings, options.allow_float)
    flatbuffer, diagnostics = convert_with_diagnostics(
        rewrite(model, classification), options.target, options.input_type
    )
    flatbuffer = with_metadata(flatbuffer, _self_description(model, class_names, options.input_type))
    result = census(flatbuffer, model)
    notes += cross_check(result, classification, options.allow_float, diagnostics)
    with open(temporary, "wb") as file:
        file.write(flatbuffer)
    parity = None
    if data is not None:
        parity = checked_parity(model, flatbuffer, data, options.parity_threshold, options.progress)
    latency = None
    if options.latency_runs and (parity is None or parity.passed):
        latency = latency_x86(flatbuffer, runs=options.latency_runs)
    report = Report.of_export(
        source,
        output_path,
        options.target,
        result,
        classification.findings,
        notes + diagnostics,
        class_names=class_names,
        input_type=options.input_type,
        parity=parity,
        latency_x86=latency,
    )
    if parity is not None and not parity.passed:
        raise ExportError(parity_failure(parity), report=report)
    return report


def _self_description(model, class_names, input_type):
    """What the file says about itself in its metadata (`bcnn_keras.export.metadata`)."""
    shape = [1, *(int(d) for d in model.inputs[0].shape[1:])]
    return {
        "class_names": class_names,
        "input": {"dtype": input_type, "shape": shape, "pixels": "raw 0..255"},
        "bcnn_keras_version": __version__,
    }


def check_output_path(path, model_or_path, overwrite, what="output", expected_start=TFLITE_IDENTIFIER):
    """Refuses (`ExportError`) to write over the model file itself, or over an existing file that
    does not start like what is written there (a `.tflite`: `TFL3` at byte 4), unless
    `overwrite`: an export must never destroy a file of the user's by a slip of `-o`."""
    if overwrite or not os.path.lexists(path) or os.path.isdir(path):
        return  # a directory is refused by the directory check
    if isinstance(model_or_path, (str, os.PathLike)) and os.path.exists(model_or_path):
        if os.path.samefile(path, model_or_path) or _inside(path, model_or_path):
            raise ExportError(f"{what} {path} is the model being exported: choose another {what} path")
    try:
        with open(path, "rb") as stream:
            start = stream.read(8)
    except OSError as error:
        raise ExportError(f"{what} {path} exists and cannot be read ({error.strerror}): pass --overwrite to replace it")
    looks_right = (
        start[4:8] == expected_start if expected_start == TFLITE_IDENTIFIER else start.lstrip()[:1] == expected_start
    )
    if not looks_right:
        kind = "a TFLite flatbuffer" if expected_start == TFLITE_IDENTIFIER else "a JSON report"
        raise ExportError(
            f"{what} {path} exists and is not {kind}: refused, to keep it (pass --overwrite to replace it)"
        )


def _inside(path, directory):
    return os.path.isdir(directory) and os.path.commonpath(
        [os.path.abspath(path), os.path.abspath(directory)]
    ) == os.path.abspath(directory)


def _class_names(model_file, model, given):
    """The given class names, else those in `classes.json` next to `model_file`, else the
    model's own `class_names` (a model built with shipped weights has them); None without any.
    Checked against the model's output size."""
    classes = int(model.outputs[0].shape[-1])
    names = given if given is not None else getattr(model, "class_names", None)
    if model_file is not None and given is None:
        try:
            names = data.class_names_next_to(model_file, classes)
        except ValueError as error:
            raise ExportError(error) from error
    if names is None:
        return None
    names = list(names)
    if len(names) != classes or not all(isinstance(name, str) for name in names):
        raise ExportError(f"class_names must be {classes} strings, one per output, got {len(names)} items")
    return names


def _load(model_or_path, options):
    """`(source, model, notes)` for a model or the path of a model file."""
    if not isinstance(model_or_path, (str, os.PathLike)):
        return model_or_path.name, model_or_path, []
    source = os.fspath(model_or_path)
    model = load_model(source, safe_mode=options.safe_mode, custom_objects=options.custom_objects)
    code = [] if options.safe_mode else loading.stored_code_layers(source)
    notes = [f"unsafe load: ran the Python code of {', '.join(code)}"] if code else []
    return source, model, notes
