"""The export's results, typed: `Census` (what the file holds), `Parity` (Keras against the file),
`Latency` (x86 timings) and the `Report` that gathers them; each is a frozen dataclass built
once, with `to_dict()` (JSON data) and `to_json()`. The report's JSON is what `--report` writes.

Nothing here imports TensorFlow. `bcnn_keras.export.on_device` adds the on-device fields to
the same JSON, as plain JSON.
"""

import dataclasses
import importlib.metadata
import json
import os
from collections.abc import Mapping

from bcnn_keras.version import __version__
from bcnn_keras.export.outputs import atomic_output

# Filled by export/benchmark_on_device.py; absent from the JSON until then.
ON_DEVICE_FIELDS = ("latency_ms_arm", "latency_arm", "memory_arm")


class _Record:
    """`to_dict`, `to_json` and `from_dict` of a frozen result dataclass."""

    _NESTED = {}  # field -> the record class of its value

    def to_dict(self):
        """The fields as JSON data, in their order (nested records as dicts)."""
        return {
            field.name: _json_data(getattr(self, field.name))
            for field in dataclasses.fields(self)
            if not (field.name in ON_DEVICE_FIELDS and getattr(self, field.name) is None)
        }

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data):
        values = dict(data)
        for key, record in cls._NESTED.items():
            if isinstance(values.get(key), Mapping):
                values[key] = record.from_dict(values[key])
        return cls(**values)

    @classmethod
    def from_json(cls, text):
        return cls.from_dict(json.loads(text))


def _json_data(value):
    return value.to_dict() if isinstance(value, _Record) else value


@dataclasses.dataclass(frozen=True, kw_only=True)
class Census(_Record):
    """What a flatbuffer holds (`census()`): ops by type, binary and float MACs, bytes by kind.

    Example:
        >>> Census(size_bytes=10, ops={}, macs={"binary": 3, "float": 1}, binary_mac_fraction=0.75,
        ...        bytes={}, float_ops=[]).to_dict()["binary_mac_fraction"]
        0.75
    """

    size_bytes: int
    ops: dict  # op type -> count in the main graph, most common first
    macs: dict  # {"binary": n, "float": n}
    binary_mac_fraction: float | None  # None without conv or dense ops
    bytes: dict  # bitpacked_weights, float_parameters, other_constants, graph_and_metadata
    float_ops: list  # [{"op", "output", "macs"}] float conv/dense ops in the file
    predicted_size_bytes: int | None = None  # what lq.models.summary predicts, when a model was given


@dataclasses.dataclass(frozen=True, kw_only=True)
class Parity(_Record):
    """Keras against the flatbuffer on the same inputs (`parity()`; `checked_parity()` adds what
    it ran on, the threshold and the verdict)."""

    samples: int
    top1_agreement: float
    max_abs_diff: float
    mean_abs_diff: float
    keras_accuracy: float | None = None  # with labels
    tflite_accuracy: float | None = None
    data: str | None = None  # what the inputs were
    threshold: float | None = None
    passed: bool | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class Latency(_Record):
    """Single-image latency on this host (`latency_x86()`), in milliseconds."""

    median_ms: float
    mean_ms: float
    min_ms: float
    p10_ms: float
    p90_ms: float
    runs: int
    warmup_runs: int
    threads: int
    kernel: str
    machine: str
    cpu: str
    timings_ms: list | None = None  # every run, with keep_timings=True


@dataclasses.dataclass(frozen=True, kw_only=True)
class Report(_Record):
    """What an export found and measured; `to_json` gives the `--report` file, key for key.

    Example:
        >>> from bcnn_keras.export import export
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> _ = export(model, "model.tflite", report_path="report.json")
        >>> report = Report.from_json(open("report.json").read())
        >>> report.binary_mac_fraction, report.parity
        (1.0, None)
    """

    _NESTED = {"parity": Parity, "latency_x86": Latency}

    model: str  # the source: a path, or the model's name
    output: str  # the .tflite file written
    target: str  # "arm" or "xcore"
    size_bytes: int
    predicted_size_bytes: int | None  # what lq.models.summary predicts; None if larq cannot profile
    ops: dict  # op type -> count in the main graph
    macs: dict  # {"binary": n, "float": n}
    binary_mac_fraction: float | None  # None without conv or dense ops
    bytes: dict  # bitpacked_weights, float_parameters, other_constants, graph_and_metadata
    float_layers: list  # [{"layer", "reason"}] the lint found float
    float_ops: list  # [{"op", "output", "macs"}] float conv/dense ops in the file
    rewritten_layers: list  # [{"layer", "reason"}]
    warnings: list
    parity: Parity | None = None  # None without verification data
    class_names: list | None = None  # also in the file's metadata; None if there were none
    input_type: str = "float32"  # the file's image input: "float32" or "uint8" (raw bytes, cast inside)
    latency_ms_x86: float | None = None
    latency_x86: Latency | None = None
    versions: dict
    latency_ms_arm: float | None = None
    latency_arm: dict | None = None
    memory_arm: dict | None = None

    @classmethod
    def of_export(cls, source, output_path, target, census, findings, warnings, **measured):
        """The report of one export: the census of the converted file, the lint's findings and
        what was measured (`parity`, `latency_x86`, `class_names`, `input_type`)."""
        latency = measured.get("latency_x86")
        return cls(
            model=source,
            output=os.fspath(output_path),
            target=target,
            **dataclasses.asdict(census),  # every field of a census is one of the report's
            float_layers=_layers_of_kind(findings, "float"),
            rewritten_layers=_layers_of_kind(findings, "rewrite"),
            warnings=warnings
            + [f"layer {f.layer!r}: {f.reason}" for f in findings if f.kind in ("slow", "unverified")],
            versions=installed_versions(),
            latency_ms_x86=latency.median_ms if latency else None,
            **measured,
        )


def _layers_of_kind(findings, kind):
    return [{"layer": f.layer, "reason": f.reason} for f in findings if f.kind == kind]


def installed_versions():
    """The versions of bcnn_keras and the libraries an export depends on (read from the
    installed packages' metadata, without importing them)."""
    versions = {"bcnn_keras": __version__}
    for name in ("tensorflow", "larq", "larq_compute_engine"):
        try:
            versions[name] = importlib.metadata.version(name.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def write_report(report, path):
    """Writes `report` (a `Report`, or its dict) as JSON, atomically.

    Example:
        >>> from bcnn_keras.export import export
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> write_report(export(model, "model.tflite"), "report.json")
    """
    report = _as_report(report)
    with atomic_output(path, "report") as temporary:
        with open(temporary, "w") as file:
            file.write(report.to_json() + "\n")


def format_report(report):
    """The report (a `Report`, or its dict) as a two-column text table.

    Example:
        >>> from bcnn_keras.export import export
        >>> model = tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)], name="tiny")
        >>> print(format_report(export(model, "model.tflite")))
        model             tiny
        output            model.tflite (target arm)
        ...
        binary MAC share  100.00% (binary 147.46 k, float 0 MACs)
        ops               LceQuantize 1, LceBconv2d 1
        ...
    """
    report = _as_report(report)
    fraction = report.binary_mac_fraction
    predicted = report.predicted_size_bytes
    size = f"{report.size_bytes:,} bytes"
    if predicted:
        size += f" (lq.models.summary predicts {predicted:,}; file/predicted {report.size_bytes / predicted:.2f})"
    rows = [
        ("model", report.model),
        ("output", f"{report.output} (target {report.target})"),
        ("size", size),
        ("bytes by kind", ", ".join(f"{kind.replace('_', ' ')} {n:,}" for kind, n in report.bytes.items())),
        (
            "binary MAC share",
            ("n/a (no conv or dense ops)" if fraction is None else f"{fraction:.2%}")
            + f" (binary {_count(report.macs['binary'])}, float {_count(report.macs['float'])} MACs)",
        ),
        ("ops", ", ".join(f"{name} {count}" for name, count in report.ops.items())),
        ("float layers", "; ".join(f"{f['layer']} ({f['reason']})" for f in report.float_layers) or "none"),
        ("rewritten layers", ", ".join(f["layer"] for f in report.rewritten_layers) or "none"),
        ("input", f"{report.input_type} raw pixels 0..255"),
        ("classes", _classes_line(report.class_names)),
        ("parity", _parity_line(report.parity)),
        ("latency (x86)", _latency_line(report.latency_x86)),
    ]
    if report.latency_arm:
        device = report.latency_arm.get("device", "?")
        rows.append(("latency (arm)", f"{report.latency_ms_arm:.2f} ms ({device})"))
    rows += [("warning", warning) for warning in report.warnings]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def _as_report(report):
    return Report.from_dict(report) if isinstance(report, Mapping) else report


def _count(value):
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f} {unit}"
    return str(value)


def _classes_line(class_names, shown=5):
    if not class_names:
        return "no names (no classes.json next to the model, no class_names given)"
    names = ", ".join(class_names[:shown])
    more = f", ... (+{len(class_names) - shown})" if len(class_names) > shown else ""
    return f"{len(class_names)}: {names}{more}"


def _parity_line(parity):
    if not parity:
        return "not run (use --verify)"
    line = (
        f"{parity.samples} samples of {parity.data}: top-1 agreement "
        f"{parity.top1_agreement:.2%} (threshold {parity.threshold:.2%}), "
        f"max |diff| {parity.max_abs_diff:.3g}, mean |diff| {parity.mean_abs_diff:.3g}"
    )
    if parity.keras_accuracy is not None:
        line += f"; accuracy Keras {parity.keras_accuracy:.2%}, LCE {parity.tflite_accuracy:.2%}"
    return line


def _latency_line(latency):
    if not latency:
        return "not measured"
    return (
        f"{latency.median_ms:.2f} ms median of {latency.runs} runs ({latency.threads} thread, "
        f"{latency.kernel}, {latency.machine} {latency.cpu})"
    )
