"""The notebooks: each is committed clean (no outputs, a markdown cell first) and runs top to
bottom in its smoke setting (PEPITA_LAB_SMOKE=1) on real MNIST, with run folders in a tmp folder.

Charts are shown as altair `JupyterChart` widgets (vega bundled in, so they render offline);
a chart whose spec failed to build would be an error output, and every chart's spec is checked
to have reached the stored widget state.
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ["00_quickstart", "01_reproduce_mnist", "02_reproduce_cifar",
            "03_feedback_scale_and_learning_rate", "04_activation_differences",
            "05_alignment_with_backprop", "06_architectures"]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
CELL_TIMEOUT = 300  # seconds per cell


def test_every_expected_notebook_is_there():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.kernelspec.display_name == "Python 3"
    assert nb.cells and nb.cells[0].cell_type == "markdown", "start with what the reader sees"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {i} has outputs: strip them before committing"
            assert cell.execution_count is None, f"cell {i} has an execution count"
    assert "widgets" not in nb.metadata, "stored widget state: strip it before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_reads_the_smoke_switch(path):
    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    assert "pick(" in source


def _chart_specs(nb) -> list[dict]:
    """The vega-lite specs of the JupyterChart widgets the notebook displayed."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return [m["state"]["spec"] for m in state.values()
            if m.get("model_name") == "AnyModel" and m.get("state", {}).get("spec")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode(path, data_dir, tmp_path, monkeypatch):
    # The kernel is a child process: it inherits these.
    monkeypatch.setenv("PEPITA_LAB_SMOKE", "1")
    monkeypatch.setenv("PEPITA_LAB_DATA", str(data_dir))
    monkeypatch.setenv("PEPITA_LAB_RUNS", str(tmp_path / "runs"))
    # Tiny matrices: one thread avoids oversubscribing the CPU when other work runs beside.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    tracebacks = [o.text for o in outputs if o.output_type == "stream" and "Traceback" in o.text]
    assert not tracebacks, tracebacks[0]
    assert any(WIDGET_VIEW in o.get("data", {}) for o in outputs), "no chart or widget shown"
    specs = _chart_specs(nb)
    assert specs, "no chart reached the page"
    assert all("$schema" in s and ("datasets" in s or "data" in s) for s in specs)
    lines = [line for c in nb.cells for line in c.source.splitlines()]
    if any("RUNS /" in line and "SweepPanel" not in line for line in lines):
        assert any((tmp_path / "runs").iterdir())  # it writes run folders: there, not ../runs
