"""Analysis: the slowness fit recovers known curves, tables match numpy, MAC counts match
arithmetic done by hand, and the step timer runs."""

import ast
import inspect
import math

import numpy as np
import pytest
import xarray as xr

from pepita_lab import analysis
from pepita_lab.analysis import (cost_table, fit_slowness, format_table, measure_step_time,
                                 slowness, step_cost, summary_table, conv_step_cost)
from pepita_lab.config import RunConfig, preset


def curve(t, a_max, s):
    return a_max * t / (s + t)


def history(test_acc, epoch_lr=None, epochs=None, **run_coords):
    """A hand-built history dataset: variables over (run, epoch), settings along `run`."""
    test_acc = np.asarray(test_acc, dtype=float)  # (R, E)
    R, E = test_acc.shape
    epochs = np.arange(1, E + 1) if epochs is None else np.asarray(epochs)
    data = {"test_acc": (("run", "epoch"), test_acc)}
    if epoch_lr is not None:
        data["epoch_lr"] = (("run", "epoch"), np.asarray(epoch_lr, dtype=float))
    coords = {"run": ("run", [f"r{i}" for i in range(R)]), "epoch": ("epoch", epochs)}
    coords.update({k: ("run", list(v)) for k, v in run_coords.items()})
    return xr.Dataset(data, coords=coords)


# ---------------------------------------------------------------- slowness


@pytest.mark.parametrize("a_max,s", [(0.98, 0.5), (0.9, 3.0), (0.6, 20.0)])
def test_fit_recovers_noiseless_curve(a_max, s):
    t = np.arange(1, 61)
    fit = fit_slowness(t, curve(t, a_max, s))
    assert fit.n_points == 60
    assert fit.a_max == pytest.approx(a_max, rel=1e-3)
    assert fit.s == pytest.approx(s, rel=1e-3)
    assert fit.rmse < 1e-6


def test_fit_with_small_noise_is_close():
    rng = np.random.default_rng(0)
    t = np.arange(1, 61)
    fit = fit_slowness(t, curve(t, 0.9, 3.0) + rng.normal(0, 0.003, t.shape))
    assert fit.a_max == pytest.approx(0.9, rel=0.01)
    assert fit.s == pytest.approx(3.0, rel=0.1)
    assert 0.001 < fit.rmse < 0.006


def test_fit_skips_epoch_zero_nan_and_late_epochs():
    t = np.arange(0, 31)
    acc = curve(t, 0.8, 2.0)
    acc[0], acc[5] = 0.1, np.nan  # chance at t = 0 is not part of the model
    acc[21:] = 0.99  # after max_epoch: must be ignored
    fit = fit_slowness(t, acc, max_epoch=20)
    assert fit.n_points == 19
    assert (fit.a_max, fit.s) == (pytest.approx(0.8, rel=1e-3), pytest.approx(2.0, rel=1e-3))
    assert math.isnan(fit_slowness([1], [0.5]).s)


def test_slowness_fits_only_epochs_before_the_first_lr_decay():
    t = np.arange(0, 41)  # epoch 0: the initial net, no learning rate
    acc_a = curve(t, 0.9, 2.0)
    acc_a[25:] = 0.97  # jumps after the decay at epoch 25: would spoil the fit
    acc_b = curve(t, 0.7, 10.0)
    acc_a[0] = acc_b[0] = 0.1
    lr_a = np.where(t >= 25, 0.01, 0.1)
    lr_b = np.full(t.shape, 0.05)  # never decays: every epoch is used
    lr_a[0] = lr_b[0] = np.nan
    ds = history([acc_a, acc_b], [lr_a, lr_b], epochs=t, rule=["pepita", "bp"], seed=[0, 1])
    out = slowness(ds.isel(epoch=slice(None, None, -1)))  # order of epochs must not matter
    assert list(out["rule"].values) == ["pepita", "bp"]
    assert list(out["seed"].values) == [0, 1]
    assert list(out["slowness_n_points"].values) == [24, 40]
    np.testing.assert_allclose(out["slowness_s"].values, [2.0, 10.0], rtol=1e-3)
    np.testing.assert_allclose(out["slowness_a_max"].values, [0.9, 0.7], rtol=1e-3)
    assert (out["slowness_rmse"].values < 1e-6).all()


# ---------------------------------------------------------------- tables


def test_summary_table_matches_numpy_and_handles_nan_tails():
    rng = np.random.default_rng(1)
    acc = rng.uniform(0.5, 0.99, size=(6, 5))
    acc[1, 3:] = np.nan  # a shorter run, concatenated with a NaN tail
    acc[4, 4] = np.nan
    ds = history(acc, rule=["pepita"] * 3 + ["bp"] * 3, dataset=["mnist"] * 6,
                 seed=[0, 1, 2] * 2)
    table = summary_table(ds)
    assert list(table.columns) == ["rule", "dataset", "mean", "std", "n", "seeds", "status"]
    final = {"pepita": [acc[0, 4], acc[1, 2], acc[2, 4]], "bp": [acc[3, 4], acc[4, 3], acc[5, 4]]}
    for rule, vals in final.items():
        row = table[table["rule"] == rule].iloc[0]
        assert row["mean"] == pytest.approx(np.mean(vals))
        assert row["std"] == pytest.approx(np.std(vals, ddof=1))
        assert row["n"] == 3 and row["seeds"] == (0, 1, 2)
    text = format_table(table)
    assert "±" in text and "| pepita | mnist |" in text
    assert f"{100 * np.mean(final['bp']):.2f} ± {100 * np.std(final['bp'], ddof=1):.2f}" in text


def test_summary_table_of_concatenated_runs_single_seed_std_nan():
    runs = [history([[0.5, 0.6]], rule=["pepita"], seed=[s]) for s in (0, 1)]
    runs.append(history([[0.4, 0.7, 0.8]], rule=["bp"], seed=[0]))
    ds = xr.concat(runs, dim="run", join="outer")  # different lengths: NaN tails
    table = summary_table(ds, by="rule")
    bp = table[table["rule"] == "bp"].iloc[0]
    assert bp["mean"] == pytest.approx(0.8) and bp["n"] == 1 and math.isnan(bp["std"])
    assert table[table["rule"] == "pepita"].iloc[0]["mean"] == pytest.approx(0.6)
    assert "80.0 |" in format_table(table, digits=1)


# ---------------------------------------------------------------- cost model

SIZES, B = [784, 1024, 10], 64
FORWARD = 64 * (784 * 1024 + 1024 * 10)  # 52_035_584


def test_mac_counts_by_hand():
    assert FORWARD == 52_035_584
    # BP: forward + weight grads + error through W_2 (64 x 10 times 10 x 1024)
    assert step_cost("bp", SIZES, B).macs == 52_035_584 * 2 + 64 * 10 * 1024 == 104_726_528
    assert step_cost("fa", SIZES, B).macs == step_cost("bp", SIZES, B).macs
    # DFA / DRTP: the direct projection e B_1 is (64 x 10) times (10 x 1024)
    assert step_cost("dfa", SIZES, B).macs == 104_726_528
    assert step_cost("drtp", SIZES, B).macs == 104_726_528
    # PEPITA unfused: e F^T (64 x 10 x 784) + two forward passes + weight grads
    unfused = step_cost("pepita", SIZES, B, fused_first_layer=False).macs
    assert unfused == 64 * 10 * 784 + 3 * 52_035_584 == 156_608_512
    # fused: the modulated first layer is F^T W_1^T (10 x 784 x 1024) + e times it (64 x 10 x 1024)
    fused = step_cost("pepita", SIZES, B, fused_first_layer="auto").macs
    assert fused == 156_608_512 - 64 * 784 * 1024 + 10 * 784 * 1024 + 64 * 10 * 1024
    assert fused == 113_911_808 < unfused
    # tracked (training): e (W_1 F)^T (64 x 10 x 1024), then x_err F (64 x 784 x 10) and
    # delta^T (x_err F) (1024 x 64 x 10) to keep W_1 F current
    tracked = step_cost("pepita", SIZES, B).macs
    assert tracked == 156_608_512 - 64 * 784 * 1024 + 2 * 64 * 10 * 1024 + 64 * 784 * 10
    assert tracked == 107_040_768 < fused
    # many classes next to the widths: tracking would cost more, so the loop does not track
    assert (step_cost("pepita", [20, 16, 10], B).macs
            == step_cost("pepita", [20, 16, 10], B, fused_first_layer=False).macs)


def test_conv_mac_counts_by_hand():
    # the paper's MNIST conv net at batch 50: conv 32 x 24 x 24 x 1 x 25, then 32 x 12 x 12 -> 10
    conv, fc = 32 * 24 * 24 * 25, 32 * 12 * 12 * 10
    args = ((1, 28, 28), (32,), 5, 2, (), 10, 50)
    assert conv_step_cost("pepita", *args).macs == 50 * (784 * 10 + 3 * (conv + fc))
    assert conv_step_cost("bp", *args).macs == 50 * (2 * (conv + fc) + fc) == 52_992_000
    assert conv_step_cost("drtp", *args).macs == 50 * (2 * (conv + fc) + 10 * 32 * 24 * 24)


@pytest.mark.parametrize("rule", ["pepita", "bp", "fa", "dfa", "drtp"])
def test_conv_cost_of_1x1_kernels_on_1x1_images_is_the_fc_cost(rule):
    conv = conv_step_cost(rule, (7, 1, 1), (5, 4), 1, 1, (6,), 3, 8)
    fc = step_cost(rule, [7, 5, 4, 6, 3], 8, fused_first_layer=False)
    assert conv.macs == fc.macs


def test_mac_counts_two_hidden_layers():
    sizes, b = [10, 8, 6, 3], 2
    P = 10 * 8 + 8 * 6 + 6 * 3  # 146
    assert step_cost("bp", sizes, b).macs == b * (P + P + 8 * 6 + 6 * 3) == 716
    assert step_cost("dfa", sizes, b).macs == b * (P + P + 3 * (8 + 6)) == 668
    assert step_cost("pepita", sizes, b, fused_first_layer=False).macs == b * (10 * 3 + 3 * P)


def test_activation_memory():
    """The step's own activations (the batch is the loop's; bench.memory measures them)."""
    bp = step_cost("bp", SIZES, B)
    assert bp.activation_floats == 64 * (1024 + 10) + 64 * 1024
    assert bp.activation_bytes == 4 * bp.activation_floats
    # the plain PEPITA step keeps both passes whole: x_err, h_l and h_l^err
    assert step_cost("pepita", SIZES, B).activation_floats == 64 * (784 + 2 * (1024 + 10))
    assert step_cost("pepita", [4, 8, 6, 3], 2).activation_floats == 2 * (4 + 2 * (8 + 6 + 3))
    # streamed: the widest layer's modulated input, h_l, h_l^err and delta_l
    assert step_cost("pepita", [4, 8, 6, 3], 2, streamed=True).activation_floats == \
        2 * max(4 + 3 * 8, 8 + 3 * 6, 6 + 2 * 3)
    assert step_cost("dfa", [10, 8, 6, 3], 2).activation_floats == 2 * (8 + 6 + 3) + 2 * 8
    with pytest.raises(ValueError, match="rule='sgd'"):
        step_cost("sgd", SIZES, B)


def test_cost_table_columns_and_gflops():
    table = cost_table(SIZES, B, rules=("pepita", "bp"), step_times={"bp": 0.001})
    assert list(table.columns) == ["rule", "macs", "mflop", "activation_kib", "step_ms", "gflops"]
    bp = table.set_index("rule").loc["bp"]
    assert bp["mflop"] == pytest.approx(2 * 104_726_528 / 1e6)
    assert bp["gflops"] == pytest.approx(2 * 104_726_528 / 0.001 / 1e9)
    assert bp["step_ms"] == pytest.approx(1.0)
    assert math.isnan(table.set_index("rule").loc["pepita", "gflops"])
    assert "step_ms" not in cost_table(SIZES, B).columns


@pytest.mark.parametrize("rule", ["pepita", "bp"])
def test_measure_step_time_is_positive(rule):
    cfg = RunConfig(rule=rule, dataset="synthetic", hidden=(32,), batch_size=16, device="cpu")
    sec = measure_step_time(cfg, steps=5, warmup=2)
    assert isinstance(sec, float) and 0 < sec < 1


def test_no_torch_import_at_module_level():
    """Analysis sits above training: torch is imported only inside measure_step_time."""
    tree = ast.parse(inspect.getsource(analysis))
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names |= {(node.module or "").split(".")[0]} | {a.name for a in node.names}
    assert not names & {"torch", "train", "data", "devices", "nets", "rules"}


def test_memory_estimate_counts_conv_layers_and_maps():
    """The paper's conv net, by hand: weights 32 x 1 x 5 x 5 + 4608 x 10 (each with momentum
    and a feedback-sized copy) plus F (784 x 10); a PEPITA step keeps x_err and both passes'
    maps (784 + 2 (32 x 24 x 24 + 10) per sample), doubled for temporaries; evaluation chunks
    likewise, without the factor of two passes."""
    from pepita_lab.preflight import memory_estimate

    config = preset("paper-mnist-conv")
    m = memory_estimate(config)
    assert m["weights"] == 4 * (3 * (32 * 25 + 4608 * 10) + 784 * 10)
    assert m["step"] == 2 * 4 * 50 * (784 + 2 * (32 * 24 * 24 + 10))
    assert m["evaluation"] == 4 * 2 * config.eval_batch_size * (784 + 32 * 24 * 24 + 10)
    fc = memory_estimate(preset("paper-mnist"))
    assert m["data"] == fc["data"]
    assert fc["weights"] == 4 * (3 * (784 * 1024 + 1024 * 10) + 784 * 10)


def test_measure_step_time_on_a_conv_net():
    from pepita_lab.analysis import measure_step_time

    assert 0 < measure_step_time(preset("paper-mnist-conv").replace(batch_size=8), steps=2,
                                 warmup=1) < 10
