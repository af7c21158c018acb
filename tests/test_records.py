"""Run records: traces checked against direct computations, datasets round-trip through netCDF,
runs concatenate along `run`, and writes are atomic."""

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import xarray as xr

import pepita_lab as pl
from pepita_lab import rules
from pepita_lab.nets import Net
from pepita_lab.traces import f_angle, feedback_angles, layer_traces

pytestmark = pytest.mark.numerics

TINY = dict(dataset="synthetic", hidden=(24, 16), epochs=3, batch_size=32, lr=0.05,
            device="cpu", subset=512)


@pytest.fixture(scope="module")
def pepita_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "pepita"
    return pl.train(pl.RunConfig(**TINY), out=out, progress=False, trace_every=4)


def test_round_trip_is_identical(pepita_run):
    loaded = pl.load_run(pepita_run.path)
    xr.testing.assert_identical(loaded.history, pepita_run.history)
    xr.testing.assert_identical(loaded.activations, pepita_run.activations)
    assert loaded.config == pepita_run.config
    for W_saved, W_live in zip(loaded.model.weights, pepita_run.net.weights):
        assert torch.equal(W_saved, W_live)


def test_history_has_named_dims_units_and_run_coords(pepita_run):
    h = pepita_run.history
    assert h.test_acc.dims == ("run", "epoch")
    assert h.bp_cosine.dims == ("run", "epoch", "layer")
    assert h.step_bp_cosine.dims == ("run", "step", "layer")
    assert list(h.epoch.values) == [0, 1, 2, 3] and list(h.layer.values) == [1, 2, 3]
    assert h.f_angle.attrs["units"] == "degree" and h.bp_cosine.attrs["description"]
    assert h.f_scale.dims == ("run",) and str(h.rule.values[0]) == "pepita"
    assert all(isinstance(v, (str, int, float)) for v in h.attrs.values())
    assert h.attrs["config"].startswith("{")
    a = pepita_run.activations
    assert a.h_diff_1.dims == ("run", "epoch", "sample", "unit_1")
    assert a.h_diff_2.sizes["unit_2"] == 16
    assert a.x_err.dims == ("run", "epoch", "sample", "height", "width", "channel")


def test_bp_alignment_with_itself_is_one(tmp_path):
    run = pl.train(pl.RunConfig(**{**TINY, "rule": "bp"}), progress=False)
    np.testing.assert_allclose(run.history.bp_cosine.values, 1.0, atol=1e-5)


def test_fa_with_true_weights_aligns_perfectly():
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(8, 6, generator=g), torch.randn(5, 8, generator=g),
               torch.randn(3, 5, generator=g)]
    net = Net(weights, None, torch.randn(6, 3, generator=g), [W.clone() for W in weights[1:]])
    x = torch.rand(20, 6, generator=g)
    target = torch.eye(3)[torch.randint(0, 3, (20,), generator=g)]
    t = layer_traces(net, rules.get_rule("fa"), pl.RunConfig(rule="fa"), x, target)
    np.testing.assert_allclose(t["bp_cosine"], 1.0, atol=1e-5)
    np.testing.assert_allclose(t["feedback_angle"][:2], 0.0, atol=0.05)


def cos(a, b):
    return float((a * b).sum() / (a.norm() * b.norm()))


def test_pepita_alignment_equals_direct_computation(pepita_run):
    """The last epoch's recorded cosine, recomputed from the saved checkpoint with the pure
    functions on the same probe batch."""
    from pepita_lab.data import load_data
    from pepita_lab.traces import PROBE_BATCH

    cfg = pepita_run.config
    data = load_data("synthetic", subset=cfg.subset)
    net = pl.load_run(pepita_run.path).net
    x = data.x_train[:PROBE_BATCH]
    target = torch.eye(data.n_classes)[data.y_train[:PROBE_BATCH]]
    dW = rules.pepita_updates(net.weights, x, target, net.F, sign=cfg.sign)
    grads = rules.bp_updates(net.weights, x, target)
    want = [cos(d, g) for d, g in zip(dW, grads)]
    got = pepita_run.history.bp_cosine.isel(run=0, epoch=-1).values
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert all(-1 < c < 1 for c in got[:-1])


def test_f_angle_equals_direct_computation():
    g = torch.Generator().manual_seed(1)
    W1, W2 = torch.randn(4, 5, generator=g), torch.randn(3, 4, generator=g)
    F = torch.randn(5, 3, generator=g)
    net = Net([W1, W2], None, F, [])
    M = (W2 @ W1).T.numpy().ravel()  # vec((W_2 W_1)^T)
    want = math.degrees(math.acos(M @ F.numpy().ravel()
                                  / np.linalg.norm(M) / np.linalg.norm(F.numpy())))
    assert f_angle(net) == pytest.approx(want, abs=1e-4)
    B = [torch.randn(3, 4, generator=g)]
    dfa_angle = feedback_angles(Net([W1, W2], None, F, B), rules.get_rule("dfa"))[0]
    want_dfa = math.degrees(math.acos(cos(W2, B[0])))
    assert dfa_angle == pytest.approx(want_dfa, abs=1e-4)


def test_f_angle_moves_past_90_degrees_with_the_sign_on_real_mnist(data_dir):
    angles = {}
    for sign in (1.0, -1.0):
        cfg = pl.preset("paper-mnist", epochs=2, subset=3000, sign=sign, device="cpu",
                        data_dir=str(data_dir))
        run = pl.train(cfg, progress=False)
        angles[sign] = run.history.f_angle.isel(run=0).values
    assert angles[1.0][0] == pytest.approx(angles[-1.0][0])  # same start
    assert angles[1.0][-1] > 90 > angles[-1.0][-1], angles


def test_activation_differences_equal_recomputation_from_checkpoint(pepita_run):
    from pepita_lab.data import load_data

    cfg = pepita_run.config
    data = load_data("synthetic", subset=cfg.subset)
    net = pl.load_run(pepita_run.path).net
    acts = pepita_run.activations
    n = acts.sizes["sample"]
    x = data.x_test[:n]
    target = torch.eye(data.n_classes)[data.y_test[:n]]
    assert list(acts.label.values) == data.y_test[:n].tolist()
    hs = rules.forward(net.weights, x)
    e = hs[-1] - target
    hs_err = rules.forward(net.weights, x + cfg.sign * e @ net.F.T)
    last = acts.sel(epoch=cfg.epochs)
    for l in (1, 2):
        np.testing.assert_allclose(last[f"h_diff_{l}"].isel(run=0).values,
                                   (hs[l] - hs_err[l]).numpy(), rtol=1e-5, atol=1e-6)
    x_err = (x + cfg.sign * e @ net.F.T).numpy().reshape(n, 1, 1, -1)  # (n, H, W, C)
    np.testing.assert_allclose(last.x_err.isel(run=0).values,
                               np.moveaxis(x_err, 1, -1), rtol=1e-5, atol=1e-6)


def test_three_runs_concatenate_along_run(tmp_path):
    paths = []
    for seed, f_scale in ((0, 0.05), (1, 0.05), (0, 0.2)):
        cfg = pl.RunConfig(**{**TINY, "epochs": 1, "seed": seed, "f_scale": f_scale})
        paths.append(tmp_path / f"r{seed}-{f_scale}")
        pl.train(cfg, out=paths[-1], progress=False)
    ds = pl.load_runs(paths)
    assert ds.sizes["run"] == 3
    assert list(ds.seed.values) == [0, 1, 0] and list(ds.f_scale.values) == [0.05, 0.05, 0.2]
    assert ds.test_acc.dims == ("run", "epoch")
    assert ds.groupby("f_scale").mean().sizes["f_scale"] == 2


def test_runs_written_before_the_status_coordinate_concatenate_with_new_ones(tmp_path):
    """A history file without the `status` run coordinate (as written before it existed) loads
    with its status taken from the attributes, and concatenates with a current one."""
    paths = [tmp_path / "old", tmp_path / "new"]
    for seed, path in enumerate(paths):
        pl.train(pl.RunConfig(**{**TINY, "epochs": 1, "seed": seed}), out=path, progress=False)
    file = paths[0] / "history.nc"
    old = xr.load_dataset(file).drop_vars("status")
    assert old.attrs["status"] == "completed"
    old.to_netcdf(file)
    ds = pl.load_runs(paths)
    assert list(ds.status.values) == ["completed", "completed"] and ds.sizes["run"] == 2


WRITER = """
import sys, numpy as np, xarray as xr
from pepita_lab.records import write_netcdf
path, i = sys.argv[1], 0
while True:
    i += 1
    ds = xr.Dataset({"v": (("a", "b"), np.full((400, 1000), float(i)))}, attrs={"i": i})
    write_netcdf(ds, path)
    print(i, flush=True)
"""


@pytest.mark.parametrize("delay", [0.3, 0.7, 1.1])
def test_write_is_atomic_when_the_writer_is_killed(tmp_path, delay):
    path = tmp_path / "history.nc"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline()  # at least one complete write
    time.sleep(delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with xr.open_dataset(path) as ds:  # never truncated: one complete version
        i = ds.attrs["i"]
        assert (ds.v.values == float(i)).all()
