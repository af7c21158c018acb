"""Benchmarks on the current device: the matrix-product rate at the nets' shapes, each rule's
training step (time, samples/s, achieved FLOP rate from the cost model, fraction of peak), a
whole epoch with batching and evaluation, and peak memory.

Everything runs in one process on random data of the datasets' shapes, so no files are needed.
`run_bench` returns plain JSON-able results, `format_report` a readable table of them, and
`main` is the `pepita-lab bench` command (also `benchmarks/run.py`, `python -m
pepita_lab.bench`). Times are medians over blocks of calls (torch.utils.benchmark's
`blocked_autorange`), synchronised around each block, with warm-up calls excluded; the spread
is the interquartile range of the blocks (min and max are kept too).

The modules, measuring apart from reporting (every name is importable from here):
  settings.py  what is measured: shapes, rules, population sizes, learning rate, repeats
  timing.py    timers (`time_calls`), FLOP rates, peak memory, the matrix-product peak
  measure.py   random data, one training step, and the step / epoch / conv / population
               measurements
  report.py    the JSON schema, provenance (`_environment`), the text table (`format_report`)
  harness.py   `run_bench` (every measurement in order) and the command (`run_from_args`,
               `main`)
  args.py      the command's flags (`add_bench_arguments`; argparse and config only)

Names are imported on first use: the CLI imports `bench.args` to build its parser, and that
must load neither torch nor the measurements.
"""

_MODULES = {
    "settings": ("SHAPES", "QUICK_SHAPES", "HIDDEN", "AUTOGRAD_BP", "EPOCH_RULES", "CONV_SHAPE",
                 "POPULATION_SIZES", "BENCH_LR", "bench_rules", "conv_rules", "_settings",
                 "_min_run_time"),
    "timing": ("PEAK_DEFINITION", "MEMORY_KIND", "time_calls", "minor_page_faults",
               "peak_memory_bytes", "measure_peak", "_stats", "_own_usage", "_rates",
               "_reset_peak_memory", "_matmul_shapes"),
    "measure": ("random_data", "trainer_step", "bp_autograd_step", "measure_steps",
                "measure_epochs", "measure_conv", "measure_population", "_batches",
                "_autograd_step", "_finite", "_config"),
    "report": ("SCHEMA", "FAULTS_WORTH_SAYING", "format_report", "_faults_note",
               "_device_name", "_environment", "_mib", "_step_rows", "_shape_report",
               "_conv_report", "_population_report"),
    "harness": ("run_bench", "add_arguments", "build_parser", "run_from_args", "main"),
    "args": ("add_bench_arguments",),
}
_LAZY = {name: module for module, names in _MODULES.items() for name in names}

__all__ = ["run_bench", "format_report", "main", "add_arguments", "build_parser",
           "run_from_args", "time_calls", "measure_peak", "measure_steps", "measure_epochs",
           "measure_conv", "measure_population",
           "bp_autograd_step", "trainer_step", "random_data", "peak_memory_bytes", "SHAPES",
           "bench_rules", "conv_rules"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})
