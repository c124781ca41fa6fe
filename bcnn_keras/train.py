"""`python -m bcnn_keras.train`: the training command line (`bcnn_keras.training.cli`)."""

import sys

from bcnn_keras.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
