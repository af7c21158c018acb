"""Sweeps: the same results in-process and on a real Dask LocalCluster, surviving a killed
worker, resumable, with successive halving recorded."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import xarray as xr

import pepita_lab as pl
from pepita_lab.config import ConfigError
from pepita_lab.sweep import Engine, SweepSpec, load_spec_file, run_sweep

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
    with pytest.raises(ConfigError, match="sweep field 'colour'"):
        SweepSpec(base=BASE, grid={"colour": [1]})
