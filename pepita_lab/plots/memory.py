"""The cost of a step against depth and batch size (`memory_chart`), from
`bench.memory_table.memory_table`'s frame (no torch here)."""

from __future__ import annotations

import altair as alt
import pandas as pd

from .common import RULE_COLORS, coinciding_note, run_colors


def memory_chart(df: pd.DataFrame, *, width: int = 170, height: int = 170):
    """Measured peak step memory (MiB, log) against batch size (log), a panel per net (1-3
    hidden layers of 1024, the conv net), a line per step (rule); beside it the same for
    the ratio to BP's peak (log: BP by autograd's weight-sized gradients dwarf the rest at
    batch 1). Steps whose lines coincide (one drawn under another) are named under the
    title."""
    data = df.assign(peak_mib=df["peak_bytes_measured"] / 2**20)
    steps = list(dict.fromkeys(data["step"]))
    colors = run_colors(steps, {k: v for k, v in RULE_COLORS.items() if k in steps})
    base = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("batch_size:Q", scale=alt.Scale(type="log"), title="batch size"),
        color=alt.Color("step:N", title="step", scale=alt.Scale(
            domain=steps, range=[colors[s] for s in steps])),
        tooltip=["net", "batch_size", "step", alt.Tooltip("peak_mib:Q", format=".3f"),
                 alt.Tooltip("peak_vs_bp:Q", format=".2f"), "macs_counted"],
    ).properties(width=width, height=height)
    nets = list(dict.fromkeys(data["net"]))
    peak = base.encode(y=alt.Y("peak_mib:Q", scale=alt.Scale(type="log"),
                               title="peak step memory (MiB, measured)")).facet(
        column=alt.Column("net:N", sort=nets, title="net"))
    ratio = base.encode(y=alt.Y("peak_vs_bp:Q", scale=alt.Scale(type="log"),
                                title="peak / BP's peak (log)")).facet(
        column=alt.Column("net:N", sort=nets, title=None))
    under = coinciding_note(None, data, "peak_mib", "step", ["batch_size"], facet="net", log=True)
    return alt.vconcat(peak, ratio).properties(title=alt.TitleParams(
        "Memory of one training step above the net, feedback and momentum (CPU, profiler)",
        subtitle=f"lines drawn one under another: {under}" if under else alt.Undefined))


__all__ = ["memory_chart"]
