import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bcnn_keras  # noqa: E402,F401  (sets up Keras 2 before any test touches tf.keras)
