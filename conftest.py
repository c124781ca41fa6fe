"""Runs the `>>>` examples of the package's docstrings (`pytest --doctest-modules`): each in a
fresh temporary working directory, with `bcnn_keras`, `tf`, `np` and `lq` imported."""

import bcnn_keras  # first: it selects Keras 2 before larq and TensorFlow load Keras
import larq as lq
import numpy as np
import pytest
import tensorflow as tf


@pytest.fixture(autouse=True)
def _doctest_namespace(request, doctest_namespace, tmp_path, monkeypatch):
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.chdir(tmp_path)
        doctest_namespace.update(bcnn_keras=bcnn_keras, tf=tf, np=np, lq=lq)
