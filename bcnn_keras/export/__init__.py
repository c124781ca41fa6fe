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

One module per step: `prepare`, `lint`, `rewrite`, `convert`, `census`, `verify`, `latency`,
`report` (the `Report` dataclass, its JSON and its table) and `pipeline`; `cli` is the command
line, `defaults` the targets and defaults they share, `outputs` the atomic output files and
`errors` the `ExportError`. Where a step function has its module's name (`lint`, `rewrite`,
`convert`, `census`), `export.<name>` is the function; the module's other names come from
`from bcnn_keras.export.<name> import ...`.

Example:
    >>> from bcnn_keras import export
    >>> tf.keras.Sequential([tf.keras.Input((8, 8, 32)), bcnn_keras.layers.BinaryConv2D(8, 3)]).save("model.keras")
    >>> report = export.export("model.keras", "model.tflite", verify="random")
"""

from bcnn_keras.lazy import lazy_package

# Public names -> the step module that defines them, imported on first use (TensorFlow with it).
_EXPORTS = {
    **dict.fromkeys(
        (
            "BINARY_CONV_OP",
            "FLOAT_MATRIX_OPS",
            "census",
            "cross_check",
            "op_counts",
            "op_name",
            "predicted_size_bytes",
            "read_flatbuffer",
        ),
        "census",
    ),
    **dict.fromkeys(("captured_stderr", "convert", "convert_with_diagnostics"), "convert"),
    "TARGETS": "defaults",
    "ExportError": "errors",
    **dict.fromkeys(("latency_summary", "latency_x86"), "latency"),
    **dict.fromkeys(
        ("Classification", "Finding", "binary_layers", "check_findings", "classify_layers", "lint"), "lint"
    ),
    **dict.fromkeys(("check_model", "in_phase_2", "load_model", "prepare_in_place"), "prepare"),
    "export": "pipeline",
    **dict.fromkeys(("Census", "Latency", "Parity", "Report", "format_report", "write_report"), "report"),
    "rewrite": "rewrite",
    **dict.fromkeys(("checked_parity", "parity", "verification_data"), "verify"),
}

__all__ = sorted([*_EXPORTS, "prepare"])
lazy_package(__name__, _EXPORTS, ("prepare",))
