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

import runpy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    # Importable from a fresh clone without `pip install -e .`.
    sys.path.insert(0, str(REPO))
    # Run by path: importing the package would import TensorFlow before the CLI turns its logs down.
    cli = runpy.run_path(str(REPO / "bcnn_keras" / "export" / "cli.py"))
    sys.exit(cli["main"]())
