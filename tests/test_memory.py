"""Measured step memory (`bench.memory`): the measurement on allocations known exactly, the
streamed PEPITA step below the plain one, and every step measured for fc and conv nets."""

import pytest
import torch

from pepita_lab.bench.memory import (cost_rows, peak_bytes, prepared_step, step_config,
                                     step_names)
from pepita_lab.nets import forward_output as clean_output

F32 = 4  # bytes


def test_peak_of_allocations_known_exactly():
    def step():
        a = torch.empty(1000)  # 4000 B
        b = torch.empty(500)  # 6000 B alive: the peak
        del a
        c = torch.empty(250)  # 3000 B alive
        return b, c  # alive at the end: counted, and below the peak

    assert peak_bytes(step) == 6000
    assert peak_bytes(lambda: torch.empty(3, 7, dtype=torch.float64)) == 3 * 7 * 8
    assert peak_bytes(lambda: None) == 0


def test_peak_of_a_forward_pass_known_exactly():
    """`clean_output` without dropout: layer l allocates h_l (B n_l) while h_{l-1} is alive,
    then h_{l-1} is freed; the output allocates the logits and their softmax (B C each) while
    h_{L-1} is alive. The input is the caller's."""
    B, sizes = 16, [20, 48, 32, 10]
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(b, a, generator=g) for a, b in zip(sizes, sizes[1:])]
    x = torch.rand(B, sizes[0], generator=g)
    expected = F32 * B * max(sizes[1], sizes[1] + sizes[2], sizes[2] + 2 * sizes[3])
    assert peak_bytes(lambda: clean_output(weights, x)) == expected


def test_streamed_step_peak_below_the_plain_step_on_three_hidden_layers():
    peaks = {}
    for step in ("pepita", "pepita-streamed"):
        trainer, one_step = prepared_step(step, step_config(step, hidden=(512, 512, 512),
                                                            batch_size=64))
        one_step()
        peaks[step] = peak_bytes(one_step)
    # both passes kept (about 2 x 3 layers) against about 5 layers' worth at the widest
    assert peaks["pepita-streamed"] < 0.75 * peaks["pepita"], peaks


@pytest.mark.parametrize("model", ["fc", "conv"])
def test_every_step_is_measured(model):
    kw = dict(hidden=(64, 32), batch_size=8) if model == "fc" else dict(batch_size=4)
    rows = cost_rows(model=model, **kw)
    assert [r["step"] for r in rows] == step_names(model)
    assert ("ff" in step_names(model)) == (model == "fc")  # FF takes no conv nets
    for r in rows:
        assert r["peak_bytes_measured"] > 0 and r["bytes_model"] > 0, r
        assert r["macs_counted"] == r["macs_model"], r


def test_reproduce_memory_writes_the_table_chart_and_command(tmp_path):
    from pepita_lab.reproduce import memory_results

    written = memory_results(tmp_path / "memory", depths=(1, 2), width=32, batch_sizes=(2, 4),
                             conv=False, command="pepita-lab reproduce memory --test")
    names = {p.name for p in written}
    assert names == {"table.md", "table.csv", "memory.html", "memory.png", "memory.svg",
                     "README.md"}
    table = (tmp_path / "memory" / "table.md").read_text()
    assert "pepita-streamed" in table and "2x32" in table and "| 1.00 |" in table  # BP / BP
    assert "pepita-lab reproduce memory --test" in (tmp_path / "memory" / "README.md").read_text()


def test_memory_chart_has_a_panel_per_net_and_a_line_per_step():
    import pandas as pd

    from pepita_lab.plots.memory import memory_chart

    df = pd.DataFrame({"net": ["1x8", "1x8", "conv", "conv"], "batch_size": [1, 1, 1, 1],
                       "step": ["bp", "pepita"] * 2, "peak_bytes_measured": [10, 20, 30, 30],
                       "peak_vs_bp": [1.0, 2.0, 1.0, 1.0], "macs_counted": [1, 2, 3, 4]})
    spec = memory_chart(df).to_dict()
    assert len(spec["vconcat"]) == 2
    assert spec["vconcat"][0]["facet"]["column"]["field"] == "net"
    assert spec["vconcat"][0]["spec"]["encoding"]["color"]["field"] == "step"


# ------------------------------------------------------------------ what people see of it


def test_the_profiler_says_nothing_but_real_errors_reach_stderr(capfd):
    """The profiler's own lines (USDT trace points, stages; on a CUDA build of torch without a
    GPU, its failed GPU probe) are dropped; anything else written to fd 2 meanwhile is kept."""
    import os

    from pepita_lab.bench.memory import profiler_log_filtered

    def step():
        os.write(2, b"a real error from C++\n")
        return torch.empty(100)

    assert peak_bytes(step) == 400
    err = capfd.readouterr().err
    assert err.strip() == "a real error from C++"
    with profiler_log_filtered():
        os.write(2, b"USDT:2026-12-07 21:07:37 5493:5493 SyncActivityProfilerHandler.cpp:39] "
                    b"profiler_start\nkept\n[W1207 21:13:40.444660822 CPUAllocator.cpp:245] Memory "
                    b"block of unknown size was allocated before the profiling started, ...\n")
    assert capfd.readouterr().err.strip() == "kept"


def test_the_cost_table_has_units_grouped_digits_and_ratios():
    from pepita_lab.bench.memory_table import cost_notes, cost_table

    rows = cost_rows(hidden=(64, 32), batch_size=8, timed=True,
                     steps=["bp", "bp-autograd", "pepita"])
    table = cost_table(rows)
    assert list(table.columns) == [
        "step", "MACs per step (model)", "MACs per step (counted)", "MACs / BP",
        "activations (KiB, model)", "peak memory (KiB, measured)", "measured / model",
        "peak / BP", "step time (ms)"]
    bp = table.set_index("step").loc["bp"]
    assert bp["MACs / BP"] == "1.00x" and bp["peak / BP"] == "1.00x"
    assert bp["MACs per step (model)"] == f"{rows[0]['macs_model']:,}" and "," in bp[
        "MACs per step (model)"]
    for cell in table["measured / model"]:
        assert cell.endswith("x") and float(cell[:-1]) > 0
    for cell in table["step time (ms)"]:  # every step timed, BP by autograd too
        assert float(cell.replace(",", "")) > 0
    for cell in table["peak memory (KiB, measured)"]:  # rounded: no 6-decimal floats
        assert len(cell.split(".")[-1]) <= 2 or "." not in cell
    assert "measured / model is above 1" in cost_notes(rows)
    model_only = cost_table([{"step": "bp", "macs_model": 1234567, "bytes_model": 2048}])
    assert list(model_only.columns) == ["step", "MACs per step (model)",
                                        "activations (KiB, model)"]
    assert model_only.iloc[0].tolist() == ["bp", "1,234,567", "2.00"]


def test_the_cost_command_writes_nothing_to_stderr():
    """`pepita-lab cost` in a fresh process (where the profiler and the GPU probe would speak
    first): its table on stdout, nothing on stderr."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "pepita_lab.cli", "cost", "--dataset", "mnist", "--hidden",
           "256", "256", "256", "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "mnist, 784-256-256-256-10, batch 64, cpu"
    assert "nan" not in done.stdout.lower()
    autograd = next(line for line in lines if line.split()[0] == "bp-autograd").split()
    assert float(autograd[-1]) > 0  # its step time, measured
