"""Population training: K nets at once equal K separate runs (float tolerance)."""

import json

import numpy as np
import pytest
import torch
import xarray as xr

import pepita_lab as pl
from pepita_lab.cli import main
from pepita_lab.config import ConfigError
from pepita_lab.rules import get_rule, rule_names

pytestmark = pytest.mark.numerics

BASE = pl.RunConfig(dataset="synthetic", hidden=(32, 16), epochs=3, batch_size=32,
                    device="cpu", subset=512)
COMPARED = ("test_acc", "test_loss", "train_loss", "train_acc", "bp_cosine", "f_angle",
            "weight_norm", "step_bp_cosine")


def assert_equal_to_separate(run, separate):
    for var in COMPARED:
        if var not in separate.history:  # step traces only where asked for
            assert var not in run.history
            continue
        # Batched products round differently; over epochs the difference grows to ~1e-5
        # absolute, which is large relative to a cosine near 0, so cosines get atol 1e-4.
        atol = 1e-4 if "cosine" in var else 1e-5
        np.testing.assert_allclose(run.history[var].values, separate.history[var].values,
                                   rtol=1e-4, atol=atol, err_msg=var)
    for a, b in zip(run.net.weights, separate.net.weights):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(run.activations.h_diff_1.values,
                               separate.activations.h_diff_1.values, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("rule", [n for n in rule_names() if get_rule(n).populations])
def test_members_equal_separate_runs(rule):
    """Members differing in every kind of member field (seed, F, feedback scale, lr schedule,
    sign) equal their separate runs, for every registered rule."""
    base = BASE.replace(rule=rule)
    configs = [base.replace(seed=0, f_scale=0.05, lr=0.05),
               base.replace(seed=1, f_scale=0.1, lr=0.02, feedback_scale=0.5),
               base.replace(seed=2, sign=-1.0, lr=0.1, lr_milestones=(2,), lr_gamma=0.5)]
    runs = pl.train_population(configs, progress=False, trace_every=5)
    for config, run in zip(configs, runs):
        assert run.config == pl.resolve(config)  # as pl.train resolves it (drtp: its own)
        assert_equal_to_separate(run, pl.train(config, progress=False, trace_every=5))


def test_shared_data_order_members_equal_separate_runs():
    configs = [BASE.replace(f_scale=f, lr=lr) for f in (0.02, 0.2) for lr in (0.01, 0.1)]
    runs = pl.train_population(configs, progress=False)
    for config, run in zip(configs, runs):
        assert_equal_to_separate(run, pl.train(config, progress=False))


def test_a_diverging_member_is_marked_and_the_others_carry_on():
    configs = [BASE.replace(lr=0.05), BASE.replace(f_scale=100.0, lr=1.0)]
    good, bad = pl.train_population(configs, progress=False)
    assert bad.status == "diverged" and "nats" in bad.history.attrs["diverged_reason"]
    assert good.status == "completed"
    assert_equal_to_separate(good, pl.train(configs[0], progress=False))


def test_a_diverged_members_folder_says_so_while_the_others_train(tmp_path):
    """A member's folder records its divergence after the epoch it diverged in, not when the
    population ends: a process killed in between leaves nothing to train again."""
    configs = [BASE.replace(lr=0.05), BASE.replace(f_scale=100.0, lr=1.0)]
    seen = []

    def should_stop():  # called every step: read the folders as another process would
        folders = {json.loads((p / "config.json").read_text())["config"]["f_scale"]: p
                   for p in tmp_path.iterdir() if (p / "history.nc").exists()}
        if 0.05 in folders and 100.0 in folders:
            good = xr.load_dataset(folders[0.05] / "history.nc")
            if good.sizes["epoch"] >= 3:  # epochs 0, 1 and 2 recorded: in the third
                seen.append(xr.load_dataset(folders[100.0] / "history.nc").attrs["status"])
        return False

    good, bad = pl.train_population(configs, out=tmp_path, progress=False,
                                    should_stop=should_stop)
    assert bad.status == "diverged" and bad.history.attrs["diverged_epoch"] == 1
    assert good.status == "completed"
    assert seen and set(seen) == {"diverged"}, seen


def test_members_must_share_the_architecture():
    with pytest.raises(ConfigError, match="hidden"):
        pl.train_population([BASE, BASE.replace(hidden=(8,))], progress=False)


def test_member_folders_load_and_resume_like_runs(tmp_path):
    configs = [BASE.replace(seed=s, epochs=2) for s in (0, 1)]
    runs = pl.train_population(configs, out=tmp_path, progress=False)
    for run in runs:
        loaded = pl.load_run(run.path)
        assert loaded.status == "completed" and loaded.config == run.config
        longer = pl.resume(run.path, epochs=3, progress=False)
        assert list(longer.history.epoch.values) == [0, 1, 2, 3]


def test_cli_several_values_train_one_population(tmp_path, capsys):
    out = tmp_path / "grid"
    assert main(["train", "--dataset", "synthetic", "--hidden", "16", "--epochs", "1",
                 "--f-scale", "0.01", "0.1", "--lr", "0.01", "0.1", "--quiet", "--device",
                 "cpu", "--out", str(out)]) == 0
    assert len(list(out.iterdir())) == 4
    text = capsys.readouterr().out
    assert text.count("test_acc=") == 4 and "wrote 4 run folders" in text
    ds = pl.load_runs(sorted(out.iterdir()))
    assert sorted(set(ds.f_scale.values)) == [0.01, 0.1] and sorted(set(ds.lr.values)) == [0.01, 0.1]


def test_train_grid_passes_traces_and_snapshots_to_every_point(tmp_path):
    ds = pl.train_grid(BASE.replace(epochs=2), lr=[0.01, 0.1], out=tmp_path, progress=False,
                       trace_every=4, snapshot_epochs=(2,))
    assert "step_bp_cosine" in ds and ds.sizes["run"] == 2
    for run_dir in sorted(tmp_path.iterdir()):
        run = pl.load_run(run_dir)
        assert "step_bp_cosine" in run.history
        assert list(run.activations.epoch.values) == [2]
    with pytest.raises(ConfigError, match="trace_every"):
        pl.train_grid(BASE, lr=[0.1], trace_every=0, progress=False)


def test_train_grid_keeps_grid_order_across_populations():
    ds = pl.train_grid(BASE.replace(epochs=1), hidden=[(8,), (16,)], lr=[0.01, 0.1],
                       progress=False)
    assert list(ds.hidden.values) == ["8", "8", "16", "16"]
    assert list(ds.lr.values) == [0.01, 0.1, 0.01, 0.1]
