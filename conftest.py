"""Runs the `>>>` examples of the package's docstrings (`pytest --doctest-modules`, on by default
in setup.cfg): each in a fresh temporary working directory, with `bcnn_keras`, `tf`, `np` and
`lq` imported.

The examples run with `tf.function`s executed eagerly: tracing Keras' train step of a BCNN takes
far longer than the few steps an example trains, and the results are the same. TensorFlow's
logging set-up and `TF_CPP_MIN_LOG_LEVEL`, which the exporter's CLI changes, are restored after
each example."""

import logging
import os
import re
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import bcnn_keras  # noqa: E402  (first: it selects Keras 2 before larq and TensorFlow load Keras)
import larq as lq  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Imports larq_zoo (the `bench` extra) and has no examples.
collect_ignore = ["export/larq_zoo_objects.py"]

_LOGGERS = ("tensorflow", "absl")


@pytest.fixture(autouse=True)
def _doctest_namespace(request, doctest_namespace, tmp_path, monkeypatch):
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", os.environ["TF_CPP_MIN_LOG_LEVEL"])
    doctest_namespace.update(bcnn_keras=bcnn_keras, tf=tf, np=np, lq=lq)
    levels = {name: logging.getLogger(name).level for name in _LOGGERS}
    eager = tf.config.functions_run_eagerly()
    tf.config.run_functions_eagerly(True)
    # tf.data functions are traced as always; the warning that says so is no news here.
    warnings.filterwarnings("ignore", re.escape("Even though the `tf.config.experimental_run_functions_eagerly`"))
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(eager)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
