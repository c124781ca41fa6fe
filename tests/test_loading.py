"""Untrusted model files: Python code stored in a model never runs without an explicit opt-in."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bcnn_keras import loading

REPO = Path(__file__).resolve().parents[1]
FORMATS = ("keras", "h5", "savedmodel")


def lambda_model(trace):
    """A model whose Lambda writes `trace` whenever its function runs (also while loading)."""
    leave_trace = eval(f"lambda x: (open({str(trace)!r}, 'w').write('ran'), x)[1]")
    image = tf.keras.Input((4,))
    output = tf.keras.layers.Dense(2)(tf.keras.layers.Lambda(leave_trace, name="payload")(image))
    return tf.keras.Model(image, output)


def save(model, directory, file_format):
    path = os.path.join(directory, {"keras": "model.keras", "h5": "model.h5", "savedmodel": "saved"}[file_format])
    model.save(path, save_format="tf" if file_format == "savedmodel" else None)
    return path


@pytest.fixture(scope="module")
def lambda_files(tmp_path_factory):
    """The Lambda model in every format, and the trace file its code would write."""
    directory = tmp_path_factory.mktemp("untrusted")
    trace = directory / "trace.txt"
    model = lambda_model(trace)
    files = {file_format: save(model, str(directory), file_format) for file_format in FORMATS}
    trace.unlink()  # building and saving the model ran the function
    return files, trace


@pytest.mark.parametrize("file_format", FORMATS)
def test_model_with_stored_code_is_refused_before_the_code_runs(lambda_files, file_format):
    files, trace = lambda_files
    assert loading.stored_code_layers(files[file_format]) == ["payload (Lambda)"]
    with pytest.raises(loading.ModelFileError, match=r"refused, payload \(Lambda\) stores Python code.*--unsafe-load"):
        loading.load_model(files[file_format])
    assert not trace.exists()


def test_code_in_an_old_style_saved_model_without_keras_metadata_is_found(lambda_files, tmp_path):
    # Older SavedModels keep the layers' metadata in saved_model.pb, and Keras revives from it.
    from tensorflow.core.protobuf import saved_model_pb2
    from tf_keras.protobuf import saved_metadata_pb2

    files, trace = lambda_files
    directory = tmp_path / "old_style"
    shutil.copytree(files["savedmodel"], directory)
    keras_metadata = saved_metadata_pb2.SavedMetadata()
    keras_metadata.ParseFromString((directory / "keras_metadata.pb").read_bytes())
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((directory / "saved_model.pb").read_bytes())
    nodes = saved_model.meta_graphs[0].object_graph_def.nodes
    for node in keras_metadata.nodes:
        nodes[node.node_id].user_object.metadata = node.metadata
    (directory / "saved_model.pb").write_bytes(saved_model.SerializeToString())
    (directory / "keras_metadata.pb").unlink()
    with pytest.raises(loading.ModelFileError, match=r"payload \(Lambda\)"):
        loading.load_model(directory)
    assert not trace.exists()


def test_functions_stored_by_other_layers_are_found():
    # tf.keras' RNN cell wrappers keep their functions as `residual_fn_type: "lambda"` etc.
    config = {
        "class_name": "RNN",
        "config": {
            "name": "rnn",
            "cell": {
                "class_name": "ResidualWrapper",
                "config": {"name": "wrapped", "residual_fn": ["code", None, None], "residual_fn_type": "lambda"},
            },
        },
    }
    assert loading.code_layers(config) == ["wrapped (Python function)"]
    assert loading.code_layers({"class_name": "Dense", "config": {"name": "dense", "activation": "relu"}}) == []


@pytest.mark.parametrize("file_format", FORMATS)
def test_opt_in_loads_the_model_and_runs_its_code(lambda_files, file_format):
    files, trace = lambda_files
    try:
        model = loading.load_model(files[file_format], safe_mode=False)
        assert trace.exists()
        assert model(np.ones((1, 4), "float32")).shape == (1, 2)
    finally:
        trace.unlink(missing_ok=True)


def _cli(script, *args):
    return subprocess.run(
        [sys.executable, *script, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def test_exporter_cli_refuses_stored_code_and_says_what_the_opt_in_allows(lambda_files, tmp_path):
    files, trace = lambda_files
    output = tmp_path / "model.tflite"
    refused = _cli(["export/to_tflite.py"], files["h5"], "-o", output, "--allow-float", "--latency-runs", "0")
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "refused, payload (Lambda)" in refused.stderr
    assert not trace.exists() and not output.exists()
    try:
        allowed = _cli(
            ["export/to_tflite.py"], files["h5"], "-o", output, "--allow-float", "--latency-runs", "0", "--unsafe-load"
        )
        assert allowed.returncode == 0, allowed.stderr
        assert trace.exists() and output.exists()
        assert "unsafe load: ran the Python code of payload (Lambda)" in allowed.stderr
    finally:
        trace.unlink(missing_ok=True)


def test_training_cli_refuses_a_teacher_with_stored_code(lambda_files, tmp_path):
    files, trace = lambda_files
    result = _cli(
        ["-m", "bcnn_keras.train"],
        "--teacher",
        files["keras"],
        "--output-dir",
        tmp_path / "run",
        "--phase1-epochs",
        "1",
        "--phase2-epochs",
        "0",
        "--train-limit",
        "64",
        "--test-limit",
        "32",
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: teacher ") and "refused" in result.stderr
    assert not trace.exists()


CUSTOM_MODULE = """
import tensorflow as tf

def scaled_ones(shape, dtype=None):
    return tf.ones(shape, dtype) * 0.5

custom_objects = {"scaled_ones": scaled_ones}
"""


def test_custom_objects_module_lets_unregistered_functions_load(tmp_path):
    # Like larq-zoo's QuickNet: an initializer that Keras stores by name and cannot find again.
    module = tmp_path / "my_objects.py"
    module.write_text(CUSTOM_MODULE)
    namespace = {}
    exec(CUSTOM_MODULE, namespace)
    image = tf.keras.Input((4,))
    model = tf.keras.Model(image, tf.keras.layers.Dense(2, kernel_initializer=namespace["scaled_ones"])(image))
    path = str(tmp_path / "custom.keras")
    model.save(path)
    with pytest.raises(loading.ModelFileError, match="cannot load a Keras model"):
        loading.load_model(path)
    loaded = loading.load_model(path, custom_objects=loading.import_custom_objects(str(module)))
    np.testing.assert_array_equal(loaded.get_weights()[0], model.get_weights()[0])
    with pytest.raises(loading.ModelFileError, match="cannot import custom objects module no_such_module"):
        loading.import_custom_objects("no_such_module")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(max_size=512), suffix=st.sampled_from([".keras", ".h5"]))
def test_random_bytes_give_one_model_file_error(tmp_path, content, suffix):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(content)
    with pytest.raises(loading.ModelFileError) as error:
        loading.load_model(path)
    assert "\n" not in str(error.value)
