"""From a trained Keras model to a bit-packed Larq Compute Engine flatbuffer.

`export()` is the pipeline behind `export/to_tflite.py` and `bcnn-export`; every step is also
public:

    load_model -> prepare_in_place (phase 2, float32) -> check_model -> lint -> rewrite
    -> convert -> census -> parity -> latency_x86 -> report

LCE's converter fails silently in several ways (a `QuantDense` stays float32, a grouped binary
conv with the wrong channel count falls back to float, `ste_tern` inputs miscompile, a failed
SavedModel conversion falls back to another path with only a warning). Each step here turns one
of those into a clear `ExportError` or an exact rewrite, and the census and parity check prove
what the written file computes.

One module per step: `loading`, `lint`, `rewrite`, `convert`, `census`, `verify`, `latency`,
`report` (the `Report` dataclass, its JSON and its table) and `pipeline`; `cli` is the command
line, `defaults` the targets and defaults they share, `files` the atomic output files and
`errors` the `ExportError`. Where a step function has its module's name (`lint`, `rewrite`,
`convert`, `census`), `export.<name>` is the function; the module's other names come from
`from bcnn_keras.export.<name> import ...`.

Example:
    >>> from bcnn_keras import export
    >>> tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)]).save("model.keras")
    >>> report = export.export("model.keras", "model.tflite", verify="random")
"""

from bcnn_keras.export import loading
from bcnn_keras.export.census import (
    BINARY_CONV_OP,
    FLOAT_MATRIX_OPS,
    census,
    cross_check,
    op_counts,
    op_name,
    predicted_size_bytes,
    read_flatbuffer,
)
from bcnn_keras.export.convert import captured_stderr, convert, convert_with_diagnostics
from bcnn_keras.export.defaults import TARGETS
from bcnn_keras.export.errors import ExportError
from bcnn_keras.export.latency import latency_summary, latency_x86
from bcnn_keras.export.lint import Classification, Finding, binary_layers, check_findings, classify_layers, lint
from bcnn_keras.export.loading import check_model, in_phase_2, load_model, prepare, prepare_in_place
from bcnn_keras.export.pipeline import export
from bcnn_keras.export.report import Report, format_report, write_report
from bcnn_keras.export.rewrite import rewrite
from bcnn_keras.export.verify import checked_parity, parity, verification_data

__all__ = [
    "BINARY_CONV_OP",
    "FLOAT_MATRIX_OPS",
    "TARGETS",
    "Classification",
    "ExportError",
    "Finding",
    "Report",
    "binary_layers",
    "captured_stderr",
    "census",
    "check_findings",
    "check_model",
    "checked_parity",
    "classify_layers",
    "convert",
    "convert_with_diagnostics",
    "cross_check",
    "export",
    "format_report",
    "in_phase_2",
    "latency_summary",
    "latency_x86",
    "lint",
    "load_model",
    "loading",
    "op_counts",
    "op_name",
    "parity",
    "predicted_size_bytes",
    "prepare",
    "prepare_in_place",
    "read_flatbuffer",
    "rewrite",
    "verification_data",
    "write_report",
]
