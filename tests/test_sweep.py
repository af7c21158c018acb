"""Sweeps: the same results in-process and on a real Dask LocalCluster, surviving a killed
worker, resumable, with successive halving recorded."""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import xarray as xr

import pepita_lab as pl
from pepita_lab.config import ConfigError
from pepita_lab.sweep import Engine, SweepSpec, flatten, load_spec_file, run_sweep

BASE = pl.RunConfig(dataset="synthetic", hidden=(16,), epochs=2, batch_size=32, subset=512,
                    device="cpu")


def spec(**kw):
    return SweepSpec(base=kw.pop("base", BASE), grid=kw.pop("grid", {
        "f_scale": [0.01, 0.1], "lr": [0.01, 0.1]}), seeds=kw.pop("seeds", [0, 1]), **kw)


def same(a, b):
    """Identical results: all but wall times and the record of how the sweep was packed."""
    a, b = a.drop_vars("epoch_time"), b.drop_vars("epoch_time")
    a.attrs.pop("sweep"), b.attrs.pop("sweep")
    xr.testing.assert_identical(a, b)


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    return run_sweep(spec(), tmp_path_factory.mktemp("sweep") / "S", progress=False)


def test_swept_fields_are_dimensions(in_process):
    ds = in_process
    assert ds.test_acc.dims == ("epoch", "f_scale", "lr", "seed")
    assert ds.sizes["f_scale"] == ds.sizes["lr"] == ds.sizes["seed"] == 2
    assert "bp_cosine" in ds and "f_angle" in ds  # every trace of the records
    assert (ds.status.values == "completed").all()


@pytest.mark.numerics
def test_local_cluster_gives_identical_results(in_process, tmp_path):
    ds = run_sweep(spec(), tmp_path / "S", workers=2, progress=False)
    same(ds, in_process)


def test_a_killed_worker_does_not_lose_the_sweep(in_process, tmp_path):
    out = tmp_path / "S"
    engine = Engine(workers=2)
    pids = engine.client.run(os.getpid)  # worker address -> process id
    killed = []
    try:
        def kill_one():  # SIGKILL a worker process once the sweep is under way
            while not (out / "points").exists() or not any((out / "points").glob("*.nc")):
                time.sleep(0.05)
            pid = pids[sorted(pids)[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        killer = threading.Thread(target=kill_one, daemon=True)
        killer.start()
        ds = run_sweep(spec(pack_size=1), out, engine=engine, progress=False)
        killer.join(5)
    finally:
        engine.close()
    assert killed, "no worker was killed: the test proved nothing"
    same(ds, in_process)


def test_an_interrupted_sweep_resumes_without_redoing_points(in_process, tmp_path):
    out = tmp_path / "S"
    cmd = [sys.executable, "-m", "pepita_lab.cli", "sweep", "--dataset", "synthetic",
           "--hidden", "16", "--epochs", "2", "--batch-size", "32", "--subset", "512",
           "--device", "cpu", "--f-scale", "0.01", "0.1", "--lr", "0.01", "0.1", "--seed", "0",
           "1", "--pack-size", "1", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while len(list((out / "points").glob("*.nc"))) < 2 if (out / "points").exists() else True:
        assert proc.poll() is None
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in (out / "points").glob("*.nc")}
    assert 2 <= len(done) < 8
    subprocess.run(cmd, check=True, timeout=600)
    for name, mtime in done.items():  # finished points were not redone
        assert (out / "points" / name).stat().st_mtime_ns == mtime
    same(xr.open_dataset(out / "sweep.nc"), in_process)


def test_successive_halving_stops_the_worst_half(tmp_path):
    s = spec(base=BASE.replace(epochs=3), seeds=[0], halving_epochs=[1], halving_keep=0.5)
    ds = run_sweep(s, tmp_path / "S", progress=False)
    stopped = ds.stopped_at_epoch.values.ravel()
    assert sorted(stopped.tolist()) == [-1, -1, 1, 1]
    final = ds.test_acc.sel(epoch=1).values.ravel()
    kept = final[stopped == -1]
    assert kept.min() >= final[stopped == 1].max()  # the best half went on


def test_spec_files_and_bad_fields(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('seeds = [0, 1]\n[base]\ndataset = "synthetic"\n[grid]\nlr = [0.01, 0.1]\n')
    doc = load_spec_file(f)
    assert doc["grid"]["lr"] == [0.01, 0.1] and doc["base"]["dataset"] == "synthetic"
    y = tmp_path / "s.yaml"
    y.write_text("grid:\n  f_scale: [0.01, 1]\nn_random: 3\nrandom:\n  lr: [0.001, 0.1]\n")
    s = SweepSpec.from_dict({**load_spec_file(y), "base": {"dataset": "synthetic"}})
    points = s.points()
    assert len(points) == 2 + 3 and all(0.001 <= p.lr <= 0.1 for p in points[2:])
    with pytest.raises(ConfigError, match="'colour' is not a field of a sweep"):
        SweepSpec(base=BASE, grid={"colour": [1]})


# ---------------------------------------------------------------- pl.grid, the one door


def test_grid_has_only_the_swept_fields_as_dimensions_and_equals_the_sweep(in_process):
    ds = pl.grid(BASE, f_scale=[0.01, 0.1], lr=[0.01, 0.1], seeds=[0, 1], threads=1,
                 progress=False)
    same(ds, in_process)  # the same runs as the sweep's, in this process, without a folder
    one_seed = pl.grid(BASE.replace(f_scale=0.01), lr=[0.01, 0.1], threads=1, progress=False)
    assert one_seed.test_acc.dims == ("epoch", "lr") and "seed" not in one_seed.dims
    assert int(one_seed.seed) == BASE.seed  # the seed is kept, as a scalar coordinate
    for var in ("test_acc", "train_loss", "bp_cosine"):  # the same points as the sweep's
        np.testing.assert_array_equal(one_seed[var].transpose("epoch", ..., "lr").values,
                                      ds[var].sel(f_scale=0.01, seed=0)
                                      .transpose("epoch", ..., "lr").values)
    flat = flatten(ds)  # the per-run view, one call away
    assert flat.test_acc.dims == ("run", "epoch") and flat.sizes["run"] == 8
    assert list(flat.seed.values) == [0, 1] * 4
    backwards = pl.grid(BASE, lr=[0.1, 0.01], hidden=[(16,), (8,)], progress=False)
    assert list(backwards.lr.values) == [0.1, 0.01]  # values in the order given
    assert list(backwards.hidden.values) == ["16", "8"]
    old = pl.train_grid(BASE, lr=[0.01, 0.1], progress=False)  # the old name: flat runs
    assert old.sizes["run"] == 2 and list(old.lr.values) == [0.01, 0.1]


def test_grid_refuses_a_misspelled_field_naming_the_right_one():
    with pytest.raises(ConfigError, match="did you mean 'f_scale'"):
        pl.grid(BASE, f_scle=[0.1, 1.0])
    with pytest.raises(ConfigError, match="at least one field"):
        pl.grid(BASE)


# ---------------------------------------------------------------- every table lists every point


def test_the_sweeps_table_lists_a_diverged_point_with_its_epoch_and_no_accuracy(tmp_path,
                                                                                capsys):
    from pepita_lab.cli import main

    assert main(["sweep", "--dataset", "synthetic", "--hidden", "16", "--epochs", "2",
                 "--device", "cpu", "--f-scale", "0.05", "100", "--lr", "1", "--out",
                 str(tmp_path / "S"), "--quiet"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 2  # the header, then every point
    diverged = next(r for r in rows if r.startswith("| 100.0 "))
    cells = [c.strip() for c in diverged.split("|")[1:-1]]
    assert cells[2] == "—" and cells[-1] == "diverged in epoch 1"
    completed = next(r for r in rows if r.startswith("| 0.05 "))
    assert completed.rstrip().endswith("| completed |") and "nan" not in completed.lower()
    ds = xr.open_dataset(tmp_path / "S" / "sweep.nc")
    assert ds.diverged_epoch.sel(f_scale=100.0).item() == 1


def test_compare_and_reproduce_tables_say_when_a_run_diverged(tmp_path, capsys):
    from pepita_lab.cli import main
    from pepita_lab.reproduce import results_table, runs_table

    good = pl.RunConfig(dataset="synthetic", hidden=(16,), epochs=2, device="cpu")
    paths = [tmp_path / "good", tmp_path / "bad"]
    pl.train(good, out=paths[0], progress=False)
    with pytest.warns(Warning):
        pl.train(good.replace(f_scale=100.0, lr=1.0, seed=1), out=paths[1], progress=False)
    assert main(["compare", *map(str, paths)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    rows = [dict(zip(header, (c.strip() for c in line.split("|")[1:-1])))
            for line in lines[2:4]]  # one row per run, both listed
    assert [r["seed"] for r in rows] == ["0", "1"]
    assert rows[1]["test_acc (%)"] == "—" and rows[1]["status"] == "diverged in epoch 1"
    assert rows[0]["test_acc (%)"] != "—" and rows[0]["status"] == "completed"
    assert "1 completed, seed 1 diverged in epoch 1" in out  # the group of both seeds
    assert "nan" not in out.lower()
    table = results_table(pl.load_runs(paths))
    assert "seed 1 diverged in epoch 1" in table and "nan" not in table.lower()
    csv = runs_table(pl.load_runs(paths))  # reproduce's table.csv
    assert csv["diverged_epoch"].tolist() == [-1, 1] and csv["test_acc"].isna().tolist() == [
        False, True]


def test_summary_table_never_shows_a_diverged_runs_last_value():
    """A run that diverged in epoch 3 keeps finite values up to epoch 2 (61.6 %): they are not
    its result. A single run's std is blank, not NaN."""
    from pepita_lab.analysis import format_table, summary_table

    acc = np.array([[0.1, 0.5, 0.616, np.nan, np.nan], [0.1, 0.6, 0.7, 0.8, 0.85],
                    [0.1, 0.5, 0.6, 0.7, 0.8]])
    ds = xr.Dataset({"test_acc": (("run", "epoch"), acc)},
                    coords={"run": [0, 1, 2], "epoch": np.arange(5),
                            "lr": ("run", [0.5, 0.1, 0.1]), "seed": ("run", [0, 0, 1]),
                            "status": ("run", ["diverged", "completed", "completed"])})
    table = summary_table(ds, by="lr")
    text = format_table(table)
    assert "61.6" not in text and "diverged in epoch 3" in text
    row = next(line for line in text.splitlines() if line.startswith("| 0.5 "))
    assert [c.strip() for c in row.split("|")[1:-1]] == ["0.5", "—", "0", "0",
                                                         "diverged in epoch 3"]
    assert "82.50 ± 3.54" in text and "nan" not in text.lower()
    one = format_table(summary_table(ds.isel(run=[1]), by="lr"))
    assert "| 85.00 | 1 | 0 | completed |" in one
