"""`pepita-lab cost`: each step's cost as modelled (`analysis.step_cost`) beside what is
counted and measured on this machine: multiply-adds by FlopCounterMode, peak step memory by
the profiler's memory events (the CUDA allocator's peak on a GPU), and the median step time.
"""

from __future__ import annotations

import math

import pandas as pd

from ..config import INPUT_SIZES, N_CLASSES, RunConfig
from .memory import cost_rows, model_cost, step_config, step_names
from .memory_table import format_cost

NOTE = ("model: analysis.step_cost (products and the activations the rule keeps; "
        "docs/memory.md); counted: torch.utils.flop_counter.FlopCounterMode on one step; "
        "measured: peak bytes allocated during one step above the net, feedback and momentum "
        "(torch.profiler memory events on the CPU, torch.cuda.max_memory_allocated on a GPU) "
        "and the median step time")


def run_cost(args) -> int:
    """The command: the table for --dataset, --hidden (or the conv net), --batch-size."""
    from ..analysis import measure_step_time
    from ..devices import resolve_device

    RunConfig(dataset=args.dataset, hidden=tuple(args.hidden),
              batch_size=args.batch_size).replace()  # refuses bad widths, batch sizes
    model = getattr(args, "model", "fc")
    device = resolve_device(args.device).type
    kw = dict(model=model, dataset=args.dataset, hidden=tuple(args.hidden),
              batch_size=args.batch_size, device=device)
    if args.no_measure:
        rows = []
        for step in step_names(model):
            cost = model_cost(step, step_config(step, **kw))
            rows.append({"step": step, "macs_model": cost.macs,
                         "kib_model": cost.activation_bytes / 1024})
        df = pd.DataFrame(rows)
    else:
        df = pd.DataFrame(cost_rows(**kw))
        df["kib_model"] = df["bytes_model"] / 1024
        df["peak_kib_measured"] = df["peak_bytes_measured"] / 1024
        bp = df.set_index("step").loc["bp", "peak_bytes_measured"]
        df["peak_vs_bp"] = df["peak_bytes_measured"] / bp
        df["step_ms"] = [1e3 * measure_step_time(step_config(s, **kw)) if s != "bp-autograd"
                         else math.nan for s in df["step"]]
    net = ("the paper's conv net" if model == "conv" else
           "-".join(map(str, [INPUT_SIZES[args.dataset], *args.hidden,
                              N_CLASSES[args.dataset]])))
    print(f"{args.dataset}, {net}, batch {args.batch_size}, {device}")
    print(format_cost(df))
    print(NOTE if not args.no_measure else "model only (analysis.step_cost); no measurement")
    return 0
