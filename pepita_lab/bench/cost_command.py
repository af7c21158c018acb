"""`pepita-lab cost`: each step's cost as modelled (`analysis.step_cost`) beside what is
counted and measured on this machine: multiply-adds by FlopCounterMode, peak step memory by
the profiler's memory events (the CUDA allocator's peak on a GPU), and the median step time
(BP by autograd included). The table is `memory_table.cost_table`'s, as in notebook 08.
"""

from __future__ import annotations

import textwrap

from ..config import INPUT_SIZES, N_CLASSES, RunConfig
from .memory import cost_rows, model_cost, step_config, step_names
from .memory_table import cost_notes, cost_table


def run_cost(args) -> int:
    """The command: the table for --dataset, --hidden (or the conv net), --batch-size."""
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
                         "bytes_model": cost.activation_bytes})
    else:
        rows = cost_rows(**kw, timed=True)
    net = ("the paper's conv net" if model == "conv" else
           "-".join(map(str, [INPUT_SIZES[args.dataset], *args.hidden,
                              N_CLASSES[args.dataset]])))
    print(f"{args.dataset}, {net}, batch {args.batch_size}, {device}")
    print(cost_table(rows).to_string(index=False))
    print(textwrap.fill(cost_notes(rows), width=100))
    return 0
