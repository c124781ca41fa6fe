#!/usr/bin/env python3
"""Export a Keras/larq model to a fully bit-packed Larq Compute Engine flatbuffer.

    python export/to_tflite.py MODEL -o OUT.tflite [--target arm|xcore] [--report REPORT.json]
        [--verify fashion_mnist|folder:PATH|PATH.npz|random] [--allow-float]

The command line lives in `bcnn_keras/export/cli.py` (installed as `bcnn-export`); see
`--help`. Any bad input or failed check prints one line "error: ..." on stderr, exits with 2 and
leaves no file at OUT.

Example:
    python export/to_tflite.py runs/model.keras -o model.tflite --verify fashion_mnist --report report.json
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    # Runnable from a fresh clone without `pip install -e .`; importing the CLI loads no TensorFlow.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bcnn_keras.export.cli import main

    sys.exit(main())
