"""uint8 input against float32 input: the shipped BCNN18 exported both ways, side by side.

`bcnn-export --input-type uint8` gives the file a uint8 image input (raw camera bytes) that a
`CAST` op turns into float32 in front of the model. This measures what that costs: file size,
Keras/LCE agreement and accuracy on all 10k Fashion-MNIST test images, and single-image x86
latency (LCE interpreter, 1 thread, indirect BGEMM), both files timed in interleaved rounds.

    python benchmarks/uint8_input.py
"""

import argparse
import os
import shlex
import sys
import tempfile

import bcnn_keras
from bcnn_keras import export
from common import RESULTS_DIR, interleaved_latencies, machine, write_json

LATENCY_SETTINGS = dict(threads=1, indirect_bgemm=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000, help="test images of the parity check")
    parser.add_argument("--runs", type=int, default=100, help="timed runs per file and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=os.path.join(RESULTS_DIR, "uint8_input.json"))
    args = parser.parse_args()

    model = bcnn_keras.BCNN18(weights="fashion_mnist")
    files, reports = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        for input_type in ("float32", "uint8"):
            path = os.path.join(scratch, f"{input_type}.tflite")
            reports[input_type] = export.export(
                model, path, verify="fashion_mnist", samples=args.samples, input_type=input_type, latency_runs=0
            )
            with open(path, "rb") as stream:
                files[input_type] = stream.read()
    latencies = interleaved_latencies(files, LATENCY_SETTINGS, args.runs, args.rounds)
    rows = {
        input_type: {
            "size_bytes": report.size_bytes,
            "ops": report.ops,
            "top1_agreement": report.parity.top1_agreement,
            "tflite_accuracy": report.parity.tflite_accuracy,
            "keras_accuracy": report.parity.keras_accuracy,
            "latency": latencies[input_type],
        }
        for input_type, report in reports.items()
    }
    print(f"\n{'input':8s} {'file':>10s} {'agreement':>10s} {'LCE top-1':>10s} {'latency':>9s}")
    for input_type, row in rows.items():
        print(
            f"{input_type:8s} {row['size_bytes']:>10,} {row['top1_agreement']:>10.2%} {row['tflite_accuracy']:>10.2%} "
            f"{row['latency']['median_ms']:>7.3f}ms"
        )
    ratio = rows["uint8"]["latency"]["median_ms"] / rows["float32"]["latency"]["median_ms"]
    print(
        f"uint8 / float32: {rows['uint8']['size_bytes'] - rows['float32']['size_bytes']:+,} bytes, latency {ratio:.3f}x"
    )
    write_json(
        {
            "benchmark_command": shlex.join(["python", "benchmarks/uint8_input.py", *sys.argv[1:]]),
            "model": "BCNN18(weights='fashion_mnist'), 28x28x1, 10 classes",
            "samples": args.samples,
            "latency_settings": LATENCY_SETTINGS,
            "rows": rows,
            "latency_uint8_over_float32": ratio,
            **machine(),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
