"""Fuzzed inputs: model files, IDX files and verification data.

Every malformed input must end in the one-line error that the CLIs print with exit code 2
(`ExportError` for the exporter, `ValueError` for the data loaders), and leave no output file.
"""

import gzip
import zipfile

import numpy as np
import pytest
from helpers import randomize_statistics, small_bcnn18
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bcnn_keras import data, export

FUZZ = settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    """A small trained-looking BCNN18 as `.keras` and `.h5` bytes."""
    directory = tmp_path_factory.mktemp("fuzz_models")
    model = randomize_statistics(small_bcnn18())
    files = {}
    for suffix in (".keras", ".h5"):
        path = directory / f"model{suffix}"
        model.save(str(path))
        files[suffix] = path.read_bytes()
    return files


def _export_fails_cleanly(path, tmp_path):
    output = tmp_path / "out.tflite"
    with pytest.raises(export.ExportError) as error:
        export.export(path, output, latency_runs=0)
    assert "\n" not in str(error.value) and str(error.value)
    assert not output.exists()


@FUZZ
@given(suffix=st.sampled_from([".keras", ".h5"]), fraction=st.floats(0.0, 0.95))
def test_truncated_model_files(tmp_path_factory, model_bytes, suffix, fraction):
    tmp_path = tmp_path_factory.mktemp("truncated")
    content = model_bytes[suffix]
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content[: int(len(content) * fraction)])
    _export_fails_cleanly(path, tmp_path)


@FUZZ
@given(suffix=st.sampled_from([".keras", ".h5"]), content=st.binary(max_size=2048))
def test_random_bytes_as_model_files(tmp_path_factory, suffix, content):
    tmp_path = tmp_path_factory.mktemp("random")
    path = tmp_path / f"model{suffix}"
    path.write_bytes(content)
    _export_fails_cleanly(path, tmp_path)


@FUZZ
@given(
    members=st.dictionaries(
        st.sampled_from(["config.json", "metadata.json", "model.weights.h5", "notes.txt", "a/b.bin"]),
        st.binary(max_size=256),
        max_size=4,
    )
)
def test_zips_holding_the_wrong_files(tmp_path_factory, members):
    tmp_path = tmp_path_factory.mktemp("wrong_zip")
    path = tmp_path / "model.keras"
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    _export_fails_cleanly(path, tmp_path)


@pytest.mark.slow  # ten loads of a model file: `make test-slow`, in CI
@settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(positions=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=1, max_size=8), value=st.integers(0, 255))
def test_corrupted_keras_bytes_fail_cleanly_or_export(tmp_path_factory, model_bytes, positions, value):
    # A flipped byte in a zip's slack (a timestamp, say) leaves a loadable model: then the export
    # may succeed. Whatever happens, it is never an unexpected exception or a partial file.
    tmp_path = tmp_path_factory.mktemp("corrupted")
    content = bytearray(model_bytes[".keras"])
    for position in positions:
        content[int(position * len(content))] = value
    path = tmp_path / "model.keras"
    path.write_bytes(bytes(content))
    output = tmp_path / "out.tflite"
    try:
        export.export(path, output, latency_runs=0)
    except export.ExportError as error:
        assert "\n" not in str(error) and not output.exists()
    else:
        assert output.stat().st_size > 0


def _idx_bytes(magic, dims, payload):
    return bytes(magic) + bytes([len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims) + payload


@FUZZ
@given(
    magic=st.one_of(st.just([0, 0, 8]), st.lists(st.integers(0, 255), min_size=3, max_size=3)),
    dims=st.lists(st.integers(0, 40), max_size=3),
    payload=st.binary(max_size=600),
    compressed=st.booleans(),
    cut=st.integers(0, 30),
)
def test_idx_files_with_wrong_magic_or_lengths(tmp_path_factory, magic, dims, payload, compressed, cut):
    tmp_path = tmp_path_factory.mktemp("idx")
    content = _idx_bytes(magic, dims, payload)
    if compressed:
        content = gzip.compress(content)
    content = content[: max(len(content) - cut, 0)]
    path = tmp_path / ("file.idx.gz" if compressed else "file.idx")
    path.write_bytes(content)
    try:
        array = data.read_idx(str(path))
    except ValueError as error:
        assert "\n" not in str(error)
    else:  # only a well-formed file is read, and it holds what its header says
        assert magic == [0, 0, 8] and array.shape == tuple(dims)


NPZ_CASES = {
    "no x": dict(y=np.zeros(4)),
    "wrong shape": dict(x=np.zeros((4, 28, 28))),
    "strings": dict(x=np.full((4, 28, 28, 1), "a")),
    "NaN": dict(x=np.full((4, 28, 28, 1), np.nan)),
    "infinite": dict(x=np.full((4, 28, 28, 1), np.inf)),
    "empty": dict(x=np.zeros((0, 28, 28, 1))),
    "complex": dict(x=np.zeros((4, 28, 28, 1), complex)),
    "label count": dict(x=np.zeros((4, 28, 28, 1)), y=np.zeros(3)),
    "NaN labels": dict(x=np.zeros((4, 28, 28, 1)), y=np.full(4, np.nan)),
    "label rank": dict(x=np.zeros((4, 28, 28, 1)), y=np.zeros((4, 2, 2))),
    "pickled objects": dict(x=np.array([None, {}], dtype=object)),
    "scalar": dict(x=np.float32(3.0)),
    "empty one-hot": dict(x=np.zeros((4, 28, 28, 1)), y=np.zeros((4, 0))),
}


@pytest.mark.parametrize("case", sorted(NPZ_CASES))
def test_bad_verification_npz_files(tmp_path, case):
    path = tmp_path / "data.npz"
    np.savez(path, **NPZ_CASES[case])
    with pytest.raises(export.ExportError) as error:
        export.verification_data(str(path), (28, 28, 1))
    assert "\n" not in str(error.value)


def test_a_single_npy_array_is_not_an_npz(tmp_path):
    path = tmp_path / "data.npz"
    with open(path, "wb") as stream:
        np.save(stream, np.zeros((4, 28, 28, 1)))
    with pytest.raises(export.ExportError, match="not an .npz archive"):
        export.verification_data(str(path), (28, 28, 1))


@FUZZ
@given(content=st.binary(max_size=1024))
def test_random_bytes_as_npz(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("npz") / "data.npz"
    path.write_bytes(content)
    with pytest.raises(export.ExportError) as error:
        export.verification_data(str(path), (28, 28, 1))
    assert "\n" not in str(error.value)
