#!/usr/bin/env python3
"""Benchmark a .tflite file on an Android phone (adb) or a Raspberry Pi (ssh) with LCE's
`lce_benchmark_model`, and record the result in the exporter's report schema.

    python export/benchmark_on_device.py MODEL.tflite --android [--serial SERIAL]
        [--benchmark-binary lce_benchmark_model_android_arm64] [--report REPORT.json]
    python export/benchmark_on_device.py MODEL.tflite --ssh pi@raspberrypi.local
        [--benchmark-binary lce_benchmark_model_aarch64] [--report REPORT.json]

The logic lives in `bcnn_keras/export/on_device.py`, which imports no TensorFlow: this runs
anywhere adb or ssh does, from a fresh clone, with Python alone. See `--help`.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bcnn_keras.export.on_device import main

    sys.exit(main())
