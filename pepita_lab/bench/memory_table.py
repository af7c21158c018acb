"""The memory answer as a table: every step's measured peak memory and counted multiply-adds
(`bench.memory.cost_rows`) over nets and batch sizes, with ratios to BP (the loop's, by hand),
and the one table people read of one net's steps (`cost_table`: `pepita-lab cost` and
notebook 08). The chart and the files are `reproduce.memory_results`.
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


def _grouped(v: float) -> str:
    """A quantity with digit groups: whole above 100, else three significant digits."""
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:#.3g}"


def _ratio(v: float) -> str:
    return f"{v:.2f}x"


def cost_table(rows) -> pd.DataFrame:
    """The table people read of `cost_rows` (a list of its dicts or a frame; `pepita-lab
    cost` and notebook 08 show it): one row per step, every cell formatted (digit groups,
    three significant digits, ratios as "1.70x"), units in the column names. Columns that
    need a measurement are left out when the rows hold none (`--no-measure`); the step time
    when the rows were not `timed`."""
    df = pd.DataFrame(rows)
    out = pd.DataFrame({"step": df["step"],
                        "MACs per step (model)": [f"{int(v):,}" for v in df["macs_model"]]})
    if "macs_counted" in df:
        out["MACs per step (counted)"] = [f"{int(v):,}" for v in df["macs_counted"]]
        bp = df.set_index("step").loc["bp"]
        out["MACs / BP"] = [_ratio(v / bp["macs_counted"]) for v in df["macs_counted"]]
    out["activations (KiB, model)"] = [_grouped(v / 1024) for v in df["bytes_model"]]
    if "peak_bytes_measured" in df:
        peak = df["peak_bytes_measured"]
        out["peak memory (KiB, measured)"] = [_grouped(v / 1024) for v in peak]
        out["measured / model"] = [_ratio(v) for v in peak / df["bytes_model"]]
        out["peak / BP"] = [_ratio(v / bp["peak_bytes_measured"]) for v in peak]
    if "step_s" in df:
        out["step time (ms)"] = [_grouped(1e3 * v) for v in df["step_s"]]
    return out


MODEL_BELOW_MEASURED = (
    "Why measured / model is above 1: the model counts only the activations a rule must "
    "keep (analysis.step_cost; docs/memory.md), while the step also allocates what the "
    "implementation makes around them (the pre-activation beside its masked copy, relu' as a "
    "float tensor, the scaled delta the momentum update multiplies, PEPITA's W_1 F update "
    "temporaries, on conv nets the unpooled error map): 1.2x to 2.3x on fully connected nets "
    "and 1.0x to 2.1x on the paper's conv net at batch 64, more on small nets and at batch 1, "
    "where temporaries of the weights' size dominate. On fully connected nets BP by autograd "
    "sits near 1x: its gradients, one float per weight and in its model too, outweigh the "
    "rest.")


def cost_notes(rows) -> str:
    """What `cost_table`'s columns are and where they come from, and why the measured peak
    is above the model: the caption shown under the table."""
    df = pd.DataFrame(rows)
    if "peak_bytes_measured" not in df:
        return ("Model only (analysis.step_cost: the products and the activations the rule "
                "keeps); nothing measured.")
    where = ("the CUDA allocator's peak" if (df.get("device") == "cuda").any()
             else "torch.profiler's memory events")
    text = ("MACs: the model (analysis.step_cost) and the count of "
            "torch.utils.flop_counter.FlopCounterMode on one step. Peak memory: the bytes "
            "allocated during one step above the net, its feedback and momentum "
            f"({where}). " + MODEL_BELOW_MEASURED)
    if "step_s" in df:
        text += " Step time: the median of 30 steps after 5 warm-up steps, on random data."
    return text


def styled_cost_table(rows, title: str | None = None):
    """`cost_table` for a notebook: a pandas Styler without the index, with `title` (default:
    the net, batch and device of `rows`) and `cost_notes` as its caption."""
    if title is None:
        r = pd.DataFrame(rows).iloc[0]
        net = ("the paper's conv net" if r.get("model") == "conv"
               else f"hidden layers {r.get('hidden')}")
        title = f"One training step: {net}, batch {r.get('batch_size')}, {r.get('device')}"
    caption = f"<b>{title}</b><br>" + cost_notes(rows)
    return cost_table(rows).style.hide(axis="index").set_caption(caption).set_table_styles(
        [{"selector": "caption", "props": "caption-side: bottom; text-align: left; "
                                          "max-width: 60em"}])


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


__all__ = ["memory_table", "cost_table", "cost_notes", "styled_cost_table",
           "markdown_table", "DEPTHS", "WIDTH", "BATCHES"]
