"""The benchmark: a quick CPU run has every field with consistent arithmetic, the report names
every rule, the command writes JSON that parses, and the autograd BP it times takes the same
step as BP by hand (so the two BP rows compare like with like)."""

import json
import math

import pytest
import torch

import pepita_lab as pl
from pepita_lab import bench
from pepita_lab.analysis import step_cost
from pepita_lab.config import ConfigError, preset
from pepita_lab.training import Trainer

STATS = ("median_s", "q1_s", "q3_s", "iqr_s", "min_s", "max_s", "blocks_s")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tests check fields, not speed: one thread keeps them quick on a CPU shared with
    other work, where multi-threaded ops wait for descheduled threads (benchmarks/README.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def results():
    return bench.run_bench(quick=True, device="cpu")


def check_stats(t, n_blocks):
    assert set(STATS) <= set(t)
    assert len(t["blocks_s"]) == n_blocks
    assert 0 < t["min_s"] <= t["q1_s"] <= t["median_s"] <= t["q3_s"] <= t["max_s"]
    assert t["iqr_s"] == pytest.approx(t["q3_s"] - t["q1_s"])


def check_timed(t, settings):
    """A `time_calls` result: blocks of `calls_per_block` calls (blocked_autorange picks how
    many), timed for repeats x block_seconds at least."""
    check_stats(t, len(t["blocks_s"]))
    timed = t["calls_per_block"] * sum(t["blocks_s"])
    assert timed >= settings["repeats"] * settings["block_seconds"] * (1 - 1e-9)


def test_results_are_strict_json_with_provenance(results):
    assert json.loads(json.dumps(results, allow_nan=False)) == results
    env = results["environment"]
    for key in ("device", "device_name", "torch", "threads", "date"):
        assert env[key] not in (None, "")
    assert env["device"] == "cpu" and env["torch"] == torch.__version__
    assert env["pepita_lab"] == pl.__version__ and env["git_revision"]
    assert env["freed_memory_kept"] == pl.devices.keep_freed_memory()
    assert results["settings"]["quick"] is True


def test_peak_entries(results):
    peak = results["peak"]
    names = [e["name"] for e in peak["matmuls"]]
    assert names == ["mnist-64 forward", "mnist-64 weight gradient", "square 1024"]
    for e in peak["matmuls"]:
        check_timed(e["time"], results["settings"])
        assert e["flops"] == 2 * e["m"] * e["k"] * e["n"]
        assert e["gflops"] == pytest.approx(e["flops"] / e["time"]["median_s"] / 1e9)
    assert peak["gflops"] == max(e["gflops"] for e in peak["matmuls"])
    assert "highest" in peak["definition"]


def test_every_rule_has_every_field(results):
    shape = results["shapes"][0]
    assert shape["name"] == "mnist-64" and shape["available"]
    assert list(shape["rules"]) == list(bench.bench_rules())
    B, sizes = shape["batch_size"], shape["sizes"]
    assert (B, sizes) == (64, [784, 1024, 10])
    for key, r in shape["rules"].items():
        check_timed(r["step"], results["settings"])
        median = r["step"]["median_s"]
        assert r["flops_per_step"] == 2 * step_cost(bench.bench_rules()[key][1], sizes, B).macs
        assert r["samples_per_s"] == pytest.approx(B / median)
        assert r["gflops"] == pytest.approx(r["flops_per_step"] / median / 1e9)
        assert r["fraction_of_peak"] == pytest.approx(r["gflops"] / results["peak"]["gflops"])
        assert r["peak_memory_bytes"] > 0 and r["activation_bytes_model"] > 0
        assert r["weights_finite"]


def test_ratios(results):
    rules = results["shapes"][0]["rules"]
    for bp in ("bp_autograd", "bp"):
        q = results["shapes"][0]["ratios"][f"pepita_over_{bp}"]
        assert q["time_ratio"] == pytest.approx(rules["pepita"]["step"]["median_s"]
                                                / rules[bp]["step"]["median_s"])
        assert q["flop_ratio"] == rules["pepita"]["flops_per_step"] / rules[bp]["flops_per_step"]


def test_epochs_and_memory(results):
    epoch = results["shapes"][0]["epoch"]
    assert list(epoch["rules"]) == list(bench.EPOCH_RULES)
    n_train = epoch["train_samples"]
    for r in epoch["rules"].values():
        check_stats(r["epoch"], results["settings"]["epoch_repeats"])
        assert r["status"] == ["ok"] * results["settings"]["epoch_repeats"]
        assert r["steps_per_epoch"] == math.ceil(n_train / 64)
        assert r["evaluation"]["median_s"] > 0 and r["weights_finite"]
        assert r["other_s"] == pytest.approx(
            r["epoch"]["median_s"] - r["steps_alone_s"] - r["evaluation"]["median_s"])
    assert results["memory"]["process_peak_bytes"] > 0
    assert "process" in results["memory"]["kind"]


def test_conv_net_is_timed_with_its_flop_count(results):
    from pepita_lab.analysis import conv_step_cost
    conv = results["conv"]
    assert conv["available"] and conv["batch_size"] == 50
    assert list(conv["rules"]) == bench.conv_rules()
    for rule, r in conv["rules"].items():
        check_timed(r["step"], results["settings"])
        assert r["flops_per_step"] == 2 * conv_step_cost(rule, (1, 28, 28), (32,), 5, 2, (), 10,
                                                         50).macs
        assert r["gflops"] == pytest.approx(r["flops_per_step"] / r["step"]["median_s"] / 1e9)
        assert r["weights_finite"]
    for op in conv["conv_ops"].values():
        assert op["flops"] == 2 * 50 * 32 * 24 * 24 * 25
    fc = results["shapes"][0]["rules"]["pepita"]["gflops"]
    assert conv["gflops_relative_to_fc_pepita"] == pytest.approx(
        conv["rules"]["pepita"]["gflops"] / fc)


def test_population_throughput(results):
    pop = results["population"]
    assert [e["K"] for e in pop["sizes"]] == [1, 4]
    one = pop["sizes"][0]
    for e in pop["sizes"]:
        check_timed(e["step"], results["settings"])
        assert e["flops_per_step"] == e["K"] * 2 * step_cost("pepita", [784, 1024, 10], 64).macs
        assert e["member_samples_per_s"] == pytest.approx(e["K"] * 64 / e["step"]["median_s"])
        assert e["throughput_over_K1"] == pytest.approx(
            e["member_samples_per_s"] / one["member_samples_per_s"])
        assert e["weights_finite"]


def test_speed_settings_reach_every_step():
    s = bench._settings(True, torch.device("cpu"), None, "bf16", "off")
    config = bench._config("mnist", "pepita", 64, torch.device("cpu"), s)
    assert config.precision == "bf16" and config.compile == "off"
    with pytest.raises(ConfigError, match="precision"):
        bench.run_bench(quick=True, device="cpu", precision="fp8")


def test_report_names_every_rule(results):
    report = bench.format_report(results)
    for label, _ in bench.bench_rules().values():
        assert label in report
    assert "PEPITA / BP (autograd)" in report and "PEPITA / BP" in report
    assert "mnist-conv-50: the paper's conv net" in report and "population: K PEPITA" in report
    assert "peak" in report and "whole epoch" in report


def test_main_writes_json(tmp_path, capsys):
    out = tmp_path / "sub" / "bench.json"
    assert bench.main(["--quick", "--json", str(out), "--repeats", "1"]) == 0
    data = json.loads(out.read_text())
    assert data["schema"] == bench.SCHEMA and data["settings"]["repeats"] == 1
    assert "BP (autograd)" in capsys.readouterr().out


def test_refused_settings():
    with pytest.raises(ConfigError, match="repeats"):
        bench.run_bench(quick=True, device="cpu", repeats=0)
    with pytest.raises(SystemExit):
        bench.main(["--repeats", "0"])
    if not torch.cuda.is_available():
        assert bench.main(["--quick", "--device", "cuda"]) == 2


def test_time_calls_counts_warmup_and_blocks():
    calls = []
    t = bench.time_calls(lambda: calls.append(1), torch.device("cpu"), min_run_time=0.0,
                         warmup=2)
    check_stats(t, len(t["blocks_s"]))
    timed = t["calls_per_block"] * len(t["blocks_s"])
    assert t["calls_per_block"] == 1 and len(calls) > 2 + timed  # warm-up, calibration, blocks


@pytest.mark.skipif(bench.minor_page_faults() is None, reason="no resource module")
def test_time_calls_counts_page_faults_of_fresh_memory():
    import mmap

    pages = 256

    def touch_fresh_pages():  # an anonymous mapping is faulted in page by page on first write
        with mmap.mmap(-1, pages * mmap.PAGESIZE) as m:
            for i in range(pages):
                m[i * mmap.PAGESIZE] = 1

    fresh = bench.time_calls(touch_fresh_pages, torch.device("cpu"), min_run_time=0.0,
                             warmup=1)
    assert fresh["page_faults_per_call"] >= pages
    assert bench._faults_note(fresh) == f"  {fresh['page_faults_per_call']:.0f} page faults/call"
    reused = bytearray(pages * mmap.PAGESIZE)

    def touch_same_pages():
        for i in range(pages):
            reused[i * mmap.PAGESIZE] = 1

    same = bench.time_calls(touch_same_pages, torch.device("cpu"), min_run_time=0.03,
                            warmup=1)
    assert same["page_faults_per_call"] < 1 and bench._faults_note(same) == ""


def test_autograd_bp_takes_the_same_step_as_bp_by_hand():
    data = bench.random_data("mnist", 64, 64, torch.device("cpu"))
    trainer = Trainer(preset("paper-mnist", rule="bp", device="cpu"), data, progress=False)
    # the run's net and momentum as one net's (the loop's tensors carry a leading K = 1)
    weights = [W.clone().requires_grad_() for W in trainer.members[0].net.weights]
    g = torch.Generator().manual_seed(0)
    velocity = [1e-3 * torch.randn(W.shape, generator=g) for W in weights]  # momentum matters
    trainer.velocity = [v.clone()[None] for v in velocity]
    x, y = data.x_train, data.y_train
    masks = trainer.dropout_masks(64)
    trainer.apply(trainer.factors(x, trainer.eye[y], masks), 0.1)
    bench.bp_autograd_step(weights, velocity, x, y, [m[0] for m in masks], 0.1, 0.9)
    for W, W_hand, v, v_hand in zip(weights, trainer.members[0].net.weights, velocity,
                                    [v[0] for v in trainer.velocity]):
        torch.testing.assert_close(W.detach(), W_hand, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(v, v_hand, rtol=1e-5, atol=1e-7)
        assert W.grad is None


def test_flags_fit_a_subparser():
    import argparse

    sub = argparse.ArgumentParser(prog="pepita-lab").add_subparsers(dest="command")
    args = bench.add_arguments(sub.add_parser("bench")).parse_args(["--quick", "--repeats", "2"])
    assert (args.quick, args.repeats, args.device, args.json) == (True, 2, "auto", None)


def test_report_warns_when_other_work_shares_the_cores(results):
    busy = {**results, "environment": {**results["environment"], "device": "cpu",
                                       "cpu_count": 2, "threads": 2,
                                       "load_average_start": [3.0, 3.0, 3.0]}}
    idle = {**busy, "environment": {**busy["environment"], "load_average_start": [0.2] * 3}}
    assert "warning: other work competes" in bench.format_report(busy)
    assert "warning" not in bench.format_report(idle)
