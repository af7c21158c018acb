"""The notebooks: each is committed clean (no outputs, a markdown cell first), starts with the
quick-run switch, and runs top to bottom in quick mode (PEPITA_LAB_SMOKE=1) on real MNIST, with
run folders in a tmp folder; and the helpers they share (`pepita_lab.notebook`).

Charts are shown as altair `JupyterChart` widgets (vega bundled in, so they render offline);
a chart whose spec failed to build would be an error output, and every chart's spec is checked
to have reached the stored widget state.
"""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from pepita_lab import notebook
from pepita_lab.config import RunConfig

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = ["00_quickstart", "01_reproduce_mnist", "02_reproduce_cifar",
            "03_feedback_scale_and_learning_rate", "04_activation_differences",
            "05_alignment_with_backprop", "06_architectures", "07_after_the_paper",
            "08_cost_panel"]
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
def test_notebook_starts_with_the_quick_switch(path):
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert re.search(r"^start\(\)", cells[0], re.M), "the first code cell calls start()"
    assert cells[0].index("start()") < cells[0].index("import pepita_lab as pl")  # says first
    source = "\n".join(cells)
    assert "pick(" in source
    # run folders only through runs_dir() / train_once: quick and full never share a folder
    assert not re.search(r"\bRUNS\b|[\"']\.\./runs", source)


# a warnings.warn line of the lab's outcome warnings and the source line Python shows after it
_OUTCOME_WARNING = re.compile(r"^\S.*:\d+: (DivergedWarning|DidNotLearnWarning): .*\n(  .*\n)?",
                              re.M)


def _progress_bar(line: str) -> bool:
    """Whether a line of stderr is a (tqdm) progress bar, or blank."""
    return not line.strip() or bool(re.search(r"\d+%\|.*\| *\d+/\d+ \[", line))


def test_only_progress_bars_pass_for_progress_bars():
    assert _progress_bar("grid:  50%|█████     | 9/18 [06:01<06:01, 40.2s/run]")
    assert _progress_bar("pepita mnist: 100%|██████████| 64/64 [00:01<00:00, 50.1step/s]")
    assert _progress_bar("  ")
    for noise in ("USDT:2026-12-07 21:07:37 5493:5493 SyncActivityProfilerHandler.cpp:39] "
                  "profiler_start",
                  "ERROR:2026-12-07 21:07:37 5493:5493 DeviceProperties.cpp:56] "
                  "gpuGetDeviceCount failed with code 35", "50%"):
        assert not _progress_bar(noise)
    warned = ("/x/reproduce.py:92: DidNotLearnWarning: the run completed but did not learn\n"
              "  run = train(config)\n/x/y.py:3: UserWarning: something else\n  f()\n")
    assert _OUTCOME_WARNING.sub("", warned) == "/x/y.py:3: UserWarning: something else\n  f()\n"


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
    # A kernel that sees this forwards nothing written to fd 2 (ipykernel's iostream), so the
    # C++ side's output (the profiler's, a GPU probe) would pass unseen: the kernel gets the
    # environment a user's kernel has.
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    tracebacks = [o.text for o in outputs if o.output_type == "stream" and "Traceback" in o.text]
    assert not tracebacks, tracebacks[0]
    # stderr carries progress bars and nothing else (the kernel forwards what C++ writes to fd
    # 2 too: the profiler's trace points, a GPU probe), but for the lab's warnings that a run
    # diverged or did not learn (with the likely cause: the user can act on them; quick mode's
    # tiny nets may not learn)
    said = [line for o in outputs if o.output_type == "stream" and o.name == "stderr"
            for line in re.split(r"[\r\n]+", _OUTCOME_WARNING.sub("", o.text))
            if not _progress_bar(line)]
    assert not said, "stderr besides progress bars:\n" + "\n".join(said[:20])
    assert any(WIDGET_VIEW in o.get("data", {}) for o in outputs), "no chart or widget shown"
    specs = _chart_specs(nb)
    assert specs, "no chart reached the page"
    assert all("$schema" in s and ("datasets" in s or "data" in s) for s in specs)
    lines = [line for c in nb.cells for line in c.source.splitlines()]
    if any(("runs_dir()" in line or "train_once(" in line) and "SweepPanel" not in line
           for line in lines):  # it writes run folders: in the tmp folder, among quick runs
        assert any((tmp_path / "runs" / "quick").iterdir())
        assert not (tmp_path / "runs" / "full").exists()


# ------------------------------------------------------------------ pepita_lab.notebook


@pytest.fixture
def mode(monkeypatch, tmp_path):
    """notebook's switch state, restored after the test; runs under tmp_path/runs."""
    monkeypatch.setitem(notebook._QUICK, "on", False)
    monkeypatch.setattr(notebook, "_SWITCH", None)
    monkeypatch.setenv("PEPITA_LAB_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def test_the_switch_decides_settings_and_folders(mode):
    switch = notebook.quick_switch()
    toggle, info = switch.children
    assert notebook.pick(full=5, smoke=1) == 5 and notebook.runs_dir() == mode / "full"
    assert "full settings" in info.value and str(mode / "full") in info.value
    toggle.value = True  # as a click on "quick run" does
    assert notebook.quick() and notebook.pick(full=5, smoke=1) == 1
    assert notebook.runs_dir() == mode / "quick" and str(mode / "quick") in info.value
    assert notebook.quick_switch() is switch  # the first cell run again: the same switch
    notebook.set_quick(False)
    assert toggle.value is False and notebook.runs_dir() == mode / "full"


def test_the_smoke_variable_starts_quick(monkeypatch):
    import subprocess
    import sys

    code = "from pepita_lab import notebook as n; print(n.quick(), n.pick(1, 2))"
    for value, expected in (("1", "True 2"), ("", "False 1"), ("0", "False 1")):
        env = {"PEPITA_LAB_SMOKE": value, "PATH": "/usr/bin:/bin"}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True, timeout=120).stdout
        assert out.strip() == expected


def test_start_says_what_it_loads(mode, data_dir, monkeypatch, capsys):
    monkeypatch.setenv("PEPITA_LAB_DATA", str(data_dir))
    notebook.start()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Loading pepita_lab: torch, xarray and altair")
    assert lines[1].startswith("Loaded in ") and "torch 2." in lines[1] and "cpu" in lines[1]
    assert lines[2] == f"Datasets from {data_dir}: mnist, fashion-mnist; synthetic needs no files."


def test_train_once_never_overwrites_a_finished_run(mode):
    notebook.set_quick(True)
    config = RunConfig(dataset="synthetic", hidden=(8,), epochs=1, device="cpu", subset=256)
    first = notebook.train_once(config, "demo/a", progress=False)
    assert first.path == mode / "quick" / "demo" / "a" and first.status == "completed"
    history = first.path / "history.nc"
    written = history.stat().st_mtime_ns
    again = notebook.train_once(config, "demo/a", progress=False)  # the same settings: loaded
    assert again.path == first.path and history.stat().st_mtime_ns == written
    assert float(again.history.test_acc[0, -1]) == first.test_acc
    other = notebook.train_once(config.replace(lr=0.02), "demo/a", progress=False)
    assert other.path == mode / "quick" / "demo" / "a-2" and history.stat().st_mtime_ns == written
    (mode / "quick" / "demo" / "b").mkdir()
    (mode / "quick" / "demo" / "b" / "notes.txt").write_text("mine")  # not a run: kept
    assert notebook.train_once(config, "demo/b", progress=False).path.name == "b-2"
    assert (mode / "quick" / "demo" / "b" / "notes.txt").read_text() == "mine"


def test_outcome_line_says_percent_epochs_and_what_went_wrong(mode):
    notebook.set_quick(True)
    assert notebook.plural(1, "epoch") == "1 epoch" and notebook.plural(2, "epoch") == "2 epochs"
    config = RunConfig(dataset="synthetic", hidden=(8,), epochs=1, device="cpu", subset=256)
    run = notebook.train_once(config, "demo/line", progress=False)
    line = notebook.outcome_line(run, "mine")
    assert line.startswith(f"mine: test accuracy {100 * run.test_acc:.2f} % after 1 epoch")
    run.history.attrs["not_learned"] = "did not learn: ended at chance"
    assert notebook.outcome_line(run).endswith("after 1 epoch; did not learn: ended at chance")
    run.status = "diverged"
    run.history.attrs["diverged_reason"] = "mean batch loss 24 nats"
    assert notebook.outcome_line(run).endswith("; diverged: mean batch loss 24 nats")


def test_the_stderr_check_sees_what_cpp_writes_to_fd_2(monkeypatch):
    """The smoke test's stderr check can fail: a kernel forwards writes to fd 2 (as the
    profiler's C++ side makes them) into the notebook as stderr outputs, which the check
    does not take for progress bars."""
    monkeypatch.delenv("PYTEST_CURRENT_TEST", raising=False)  # as the smoke test does
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3",
                              "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "import os, time\nos.write(2, b'USDT:2026-12-07 21:07:37 1:1 X.cpp:39] profiler_start\\n')"
        "\ntime.sleep(0.5)")]
    NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT).execute()
    err = [o.text for o in nb.cells[0].outputs if o.output_type == "stream"
           and o.name == "stderr"]
    assert err and not all(_progress_bar(line) for line in "".join(err).splitlines())
