"""`pepita-lab reproduce deeper --search` on a tiny synthetic task (seconds): the search sees
only a validation split of the training set, never the test set; a finished run is never
trained again; a run interrupted after an epoch resumes to the same table as an uninterrupted
one; two processes share the work."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import pepita_lab as pl
from pepita_lab.data import TensorData, load_data
from pepita_lab.reproduce import search
from pepita_lab.reproduce.searched import SearchedSpec, long_run_order, run_searched
from pepita_lab.store import RunStore


def tiny_spec(**kw) -> SearchedSpec:
    """Two variants at one depth, 4 candidates, rungs of 1 and 2 epochs, 3-epoch long runs."""
    base = dict(dataset="synthetic", depths=(1,), variants=("pepita", "bp"), width=16,
                epochs=3, seeds=2, baseline_seeds=1, candidates=4, rungs=(1, 2),
                search_train=1500, search_val=1000)
    return SearchedSpec(**{**base, **kw})


def histories(out: Path) -> dict[Path, int]:
    """Every long run's history file -> its modification time (ns)."""
    return {p: p.stat().st_mtime_ns for p in sorted((out / "runs").rglob("history.nc"))}


class Poisoned(TensorData):
    """A dataset whose test split raises on any read (its training split as loaded)."""

    def __getattribute__(self, name):
        if name in ("x_test", "y_test"):
            raise AssertionError(f"the search read the test split ({name})")
        return super().__getattribute__(name)


def poisoned(data: TensorData) -> Poisoned:
    return Poisoned(**{f.name: getattr(data, f.name) for f in dataclasses.fields(data)})


def test_the_validation_split_is_held_out_of_the_search_training_samples():
    data = load_data("synthetic")
    split, where = search.validation_split(data, 1500, 1000)
    assert where == {"train": [0, 1500], "validation": [4000, 5000]}
    assert search.split_is_disjoint(where)
    # no validation sample is a training sample (rows compared whole)
    same = (split.x_test[:, None, :] == split.x_train[None, :, :]).all(-1)
    assert not same.any()
    assert torch.equal(split.x_test, data.x_train[4000:])  # from the training set, not test
    with pytest.raises(ValueError, match="exceed"):
        search.validation_split(data, 4500, 1000)


def test_the_search_never_reads_the_test_split(tmp_path, monkeypatch):
    bad = poisoned(load_data("synthetic"))
    with pytest.raises(AssertionError, match="test split"):  # the poison works
        pl.grid(pl.preset("paper-mnist", dataset="synthetic", hidden=(16,), epochs=1),
                lr=[0.1], data=bad, progress=False)
    monkeypatch.setattr(search, "load_data", lambda *a, **k: bad)
    out = tmp_path / "d"
    run_searched(tiny_spec(), out, progress=False, figures=False)  # completes unpoisoned
    for cell in ("h1-pepita", "h1-bp"):
        result = json.loads((out / "search" / cell / "result.json").read_text())
        assert search.split_is_disjoint(result["split"])
        assert len(result["rungs"][0]["candidates"]) == 4  # the same budget for every rule
        assert len(result["rungs"][1]["candidates"]) == 2
        assert result["settings"]["lr"] in [c["lr"] for c in result["rungs"][1]["candidates"]]


def test_long_runs_go_deepest_first_pepita_and_its_baselines_before_the_options():
    order = long_run_order(SearchedSpec().cells())
    assert order[:7] == ["h3-pepita", "h3-pepita-minus", "h3-bp", "h3-fa", "h3-pepita+wd+norm",
                         "h3-pepita+mirror", "h3-ff"]
    assert sorted(order) == sorted(SearchedSpec().cells()) and order[-1] == "h1-ff"


def test_a_finished_run_is_never_trained_again(tmp_path):
    out = tmp_path / "d"
    run_searched(tiny_spec(), out, progress=False, figures=True)
    table, log, before = (out / "table.md").read_text(), (out / "log.jsonl").read_text(), \
        histories(out)
    assert len(before) == 3  # pepita x 2 seeds, bp x 1
    assert "(2)" in table and "not finished" not in table
    assert (out / "figures" / "stability.png").stat().st_size > 1000
    run_searched(tiny_spec(), out, progress=False, figures=False)  # everything is done
    assert histories(out) == before and (out / "log.jsonl").read_text() == log
    assert (out / "table.md").read_text() == table
    # without checkpoints (they are not committed) finished runs still count as finished
    for ckpt in (out / "runs").rglob("checkpoint.pt"):
        ckpt.unlink()
    run_searched(tiny_spec(), out, progress=False, figures=False)
    assert histories(out) == before and (out / "table.md").read_text() == table


def test_resuming_after_an_interruption_gives_the_same_table(tmp_path, monkeypatch):
    whole = tmp_path / "whole"
    run_searched(tiny_spec(), whole, progress=False, figures=False)
    out = tmp_path / "cut"
    original, ends = RunStore.on_epoch_end, []

    def killed_after_two_epochs(self, trainer):  # as a kill right after epoch 2 leaves it
        original(self, trainer)
        ends.append(1)
        if len(ends) == 4:  # the population of pepita's 2 seeds, epoch 2
            raise KeyboardInterrupt
    monkeypatch.setattr(RunStore, "on_epoch_end", killed_after_two_epochs)
    with pytest.raises(KeyboardInterrupt):
        run_searched(tiny_spec(), out, progress=False, figures=False)
    monkeypatch.setattr(RunStore, "on_epoch_end", original)
    searched = {p: p.stat().st_mtime_ns for p in (out / "search").rglob("*.json")}
    assert len(searched) == 6  # both cells searched: 2 rungs and a result each
    partial = sorted((out / "runs").rglob("checkpoint.pt"))
    assert len(partial) == 2 and not (out / "table.md").exists()
    run_searched(tiny_spec(), out, progress=False, figures=False, train=False)  # the state
    assert "| pepita | 2 of 2 not finished |" in (out / "table.md").read_text()
    assert sorted((out / "runs").rglob("checkpoint.pt")) == partial
    run_searched(tiny_spec(), out, progress=False, figures=False)
    assert {p: p.stat().st_mtime_ns for p in (out / "search").rglob("*.json")} == searched
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    # resumed from epoch 2: one epoch per pepita seed, then bp's 3
    assert [e.get("run_epochs") for e in log if "run_epochs" in e] == [2, 3]
    assert (out / "table.md").read_text() == (whole / "table.md").read_text()
    assert (out / "table.csv").read_text() == (whole / "table.csv").read_text()


def test_two_processes_share_the_work(tmp_path):
    out = tmp_path / "d"
    command = [sys.executable, "-m", "pepita_lab.cli", "reproduce", "deeper", "--search",
               "--dataset", "synthetic", "--depths", "1", "--variants", "pepita", "bp",
               "--width", "16", "--epochs", "3", "--seeds", "2", "--baseline-seeds", "1",
               "--candidates", "4", "--rungs", "1", "2", "--search-train", "1500",
               "--search-val", "1000", "--no-figures", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(pl.__file__).parents[1])}
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    items = [json.loads(line)["item"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert sorted(items) == ["runs h1-bp", "runs h1-pepita", "search h1-bp",
                             "search h1-pepita"]  # each item done once, by one of them
    assert "long runs 3/3 done" in outputs[0] + outputs[1]
    made_by = json.loads((out / "made_by.json").read_text())  # the command and the code
    assert made_by["command"].startswith("pepita-lab reproduce deeper --search")
    assert made_by["git_revision"] == pl.records.git_revision()
    whole = tmp_path / "whole"
    run_searched(tiny_spec(), whole, progress=False, figures=False)
    assert (out / "table.md").read_text() == (whole / "table.md").read_text()
