"""The memory answer as a table: every step's measured peak memory and counted multiply-adds
(`bench.memory.cost_rows`) over nets and batch sizes, with ratios to BP (the loop's, by hand),
and the text `pepita-lab cost` prints. The chart and the files are `reproduce.memory_results`.
"""

from __future__ import annotations

import pandas as pd

from .memory import cost_rows

DEPTHS, WIDTH, BATCHES = (1, 2, 3), 1024, (1, 64, 512)


def memory_table(*, depths=DEPTHS, width: int = WIDTH, batch_sizes=BATCHES,
                 conv: bool = True, dataset: str = "mnist", device: str = "cpu",
                 log=None) -> pd.DataFrame:
    """`cost_rows` for `depths` hidden layers of `width` (and the paper's conv net) at each
    batch size: one row per (net, batch, step), with `net` ("3x1024", "conv"), KiB columns
    and ratios of measured peak and counted MACs to BP's on the same net and batch."""
    nets = [("fc", (width,) * d) for d in depths] + ([("conv", ())] if conv else [])
    rows = []
    for model, hidden in nets:
        for B in batch_sizes:
            if log:
                log(f"{model} {hidden} batch {B}")
            rows += cost_rows(model=model, dataset=dataset, hidden=hidden or (width,),
                              batch_size=B, device=device)
    df = pd.DataFrame(rows)
    df["net"] = [f"{len(h.split('x'))}x{h.split('x')[0]}" if m == "fc" else "conv"
                 for m, h in zip(df["model"], df["hidden"])]
    df["peak_kib_measured"] = df["peak_bytes_measured"] / 1024
    df["kib_model"] = df["bytes_model"] / 1024
    bp = df[df["step"] == "bp"].set_index(["net", "batch_size"])
    key = list(zip(df["net"], df["batch_size"]))
    df["peak_vs_bp"] = df["peak_bytes_measured"].values / bp.loc[key, "peak_bytes_measured"].values
    df["macs_vs_bp"] = df["macs_counted"].values / bp.loc[key, "macs_counted"].values
    return df


def format_cost(df: pd.DataFrame) -> str:
    """The `pepita-lab cost` table: each step's modelled and counted MACs, modelled and
    measured memory (and step time when the frame has step_ms), saying which is which."""
    cols = {"step": "step", "macs_model": "MACs (model)",
            "macs_counted": "MACs (counted: FlopCounterMode)",
            "kib_model": "activations KiB (model)",
            "peak_kib_measured": "peak KiB (measured: profiler)",
            "peak_vs_bp": "peak / BP", "step_ms": "step ms (measured)"}
    shown = df[[c for c in cols if c in df]].rename(columns=cols)
    return shown.to_string(index=False, float_format=lambda v: f"{v:,.3g}" if v < 100
                           else f"{v:,.0f}")


def markdown_table(df: pd.DataFrame) -> str:
    """`memory_table` as a markdown table (one row per net, batch and step)."""
    out = pd.DataFrame({
        "net": df["net"], "batch": df["batch_size"], "step": df["step"],
        "peak KiB (measured)": [f"{v:,.1f}" for v in df["peak_kib_measured"]],
        "x BP": [f"{v:.2f}" for v in df["peak_vs_bp"]],
        "MACs (counted)": [f"{v:,}" for v in df["macs_counted"]],
        "MACs x BP": [f"{v:.2f}" for v in df["macs_vs_bp"]],
        "KiB (model)": [f"{v:,.1f}" for v in df["kib_model"]],
    })
    return out.to_markdown(index=False, tablefmt="pipe", disable_numparse=True, stralign=None)


__all__ = ["memory_table", "format_cost", "markdown_table", "DEPTHS", "WIDTH", "BATCHES"]
