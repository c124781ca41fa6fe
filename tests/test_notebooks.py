"""Every notebook runs from a clean kernel with small settings, and the committed copies hold
the outputs of a real, error-free run."""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
SMALL_SETTINGS = {
    "BCNN_NOTEBOOK_TRAIN_IMAGES": "1024",
    "BCNN_NOTEBOOK_TEST_IMAGES": "512",
    "BCNN_NOTEBOOK_PHASE1_EPOCHS": "1",
    "BCNN_NOTEBOOK_PHASE2_EPOCHS": "1",
    "BCNN_NOTEBOOK_TRAIN_EPOCHS": "1",
    # A model trained on 1,024 images for two epochs flips signs near zero (see the notebook).
    "BCNN_NOTEBOOK_PARITY_THRESHOLD": "0.95",
}


def test_there_are_notebooks():
    assert [path.name for path in NOTEBOOKS] == ["01_quickstart.ipynb", "02_inside_bcnn.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_notebook_holds_outputs_of_a_clean_run(path):
    cells = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    outputs = [output for cell in cells for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    assert any("image/png" in output.get("data", {}) for output in outputs)


# The quickstart runs in `make test`, the others in `make test-slow` (CI runs both).
RUNS = [path if path.stem == "01_quickstart" else pytest.param(path, marks=pytest.mark.slow) for path in NOTEBOOKS]


@pytest.mark.parametrize("path", RUNS, ids=lambda path: path.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    for name, value in {**SMALL_SETTINGS, "BCNN_NOTEBOOK_OUTPUT_DIR": str(tmp_path)}.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert list(tmp_path.iterdir()), "the notebook wrote nothing to its output dir"
