"""Measured step memory (`bench.memory`): the measurement on allocations known exactly, the
streamed PEPITA step below the plain one, and every step measured for fc and conv nets."""

import pytest
import torch

from pepita_lab.bench.memory import (cost_rows, peak_bytes, prepared_step, step_config,
                                     step_names)
from pepita_lab.rules.pepita_streamed import clean_output

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
