"""Reproduce the paper's Table 1: every rule over seeds with the paper's settings, a table of
mean +- std test accuracy beside the paper's numbers, and the figures. Resumable: a run folder
whose history says "completed" is loaded, not trained again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import xarray as xr
from tqdm.auto import tqdm

from ..api import load_run, load_runs, train
from ..config import ConfigError, RunConfig, preset
from ..rules.validation import resolve  # a plan's runs as pl.train resolves them

# Test accuracy (%) of PEPITA in the paper (docs/pepita.md; one hidden layer of 1024).
PAPER_TEST_ACC = {"mnist": {"pepita": 98.0}, "cifar10": {"pepita": 52.6},
                  "cifar100": {"pepita": 24.9}}
PRESET_OF = {"mnist": "paper-mnist", "fashion-mnist": "paper-fashion-mnist",
             "cifar10": "paper-cifar10", "cifar100": "paper-cifar100",
             "synthetic": "paper-mnist"}  # synthetic: the MNIST settings, for quick checks
MODELS = ("fc", "conv")


def table1_rules(model: str) -> list:
    """The registered rules whose Table 1 reproduction includes `model` (`Rule.table1_models`;
    settings that differ from the paper's in `Rule.paper_overrides`)."""
    from ..rules import get_rule, rule_names

    return [get_rule(name) for name in rule_names() if model in get_rule(name).table1_models]


@dataclass
class Plan:
    """The runs of one reproduction: (name, config) pairs, in the order they are trained."""

    out: Path
    runs: list[tuple[str, RunConfig]]


def table1_plan(dataset: str, *, seeds: int = 3, baseline_seeds: int | None = None,
                model: str = "fc", out: str | Path = "results/table1", **overrides) -> Plan:
    """The Table 1 rules of `model` (PEPITA and BP over `seeds` seeds, the baselines FA and
    DRTP over `baseline_seeds`, default the same), each with the paper's settings for `dataset`
    plus the rule's own `paper_overrides` plus `overrides` (epochs, subset, ...)."""
    if dataset not in PRESET_OF:
        raise ConfigError(f"dataset={dataset!r} is not allowed: expected one of "
                          f"{', '.join(PRESET_OF)}")
    if model not in MODELS:
        raise ConfigError(f"model={model!r} is not allowed: expected fc or conv")
    if seeds < 1 or (baseline_seeds is not None and baseline_seeds < 1):
        raise ConfigError(f"seeds={seeds!r} is not allowed: expected an integer >= 1")
    baseline_seeds = seeds if baseline_seeds is None else baseline_seeds
    overrides = {k: v for k, v in overrides.items() if v is not None}
    runs = []
    for rule in table1_rules(model):
        for seed in range(baseline_seeds if rule.baseline else seeds):
            name = PRESET_OF[dataset] + ("-conv" if model == "conv" else "")
            config = resolve(preset(name, dataset=dataset, rule=rule.name, seed=seed,
                                    **{**rule.paper_overrides, **overrides}))
            runs.append((f"{model}-{rule.name}-s{seed}", config))
    return Plan(Path(out), runs)


def is_complete(path: Path, config: RunConfig) -> bool:
    """True if `path` holds a finished run of exactly `config`: completed, or diverged (a
    deterministic outcome: training it again would diverge at the same step)."""
    try:
        run = load_run(path)
    except (OSError, ValueError, KeyError):
        return False
    return (run.status in ("completed", "diverged")
            and run.config.identity() == config.identity())


def run_plan(plan: Plan, *, progress: bool = True) -> list[Path]:
    """Train every run of `plan` not already finished under `plan.out / "runs"`; returns the
    run folders. The wall time of each run trained is logged to `plan.out / "log.jsonl"`."""
    plan.out.mkdir(parents=True, exist_ok=True)
    paths = []
    bar = tqdm(plan.runs, desc="reproduce", unit="run", disable=not progress)
    for name, config in bar:
        path = plan.out / "runs" / name
        paths.append(path)
        if is_complete(path, config):
            continue
        bar.set_postfix_str(name)
        start = time.perf_counter()  # an interrupted or different run starts again, locked
        run = train(config, out=path, progress=progress, overwrite=True)
        entry = {"run": name, "test_acc": run.test_acc, "status": run.status,
                 "wall_s": round(time.perf_counter() - start, 1)}
        with open(plan.out / "log.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
    return paths


def results_table(history: xr.Dataset) -> str:
    """Markdown: mean +- std test accuracy (%) per rule over the seeds that completed,
    beside the paper's, and every rule's status (a diverged run says in which epoch)."""
    from ..analysis import format_value, summary_table

    by = ("model", "rule", "dataset") if "model" in history.coords else ("rule", "dataset")
    table = summary_table(history, by=by)
    lines = ["| model | rule | dataset | test accuracy (%) | runs (seeds) | paper (%) | status |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for _, row in table.iterrows():
        value = format_value(row["mean"], row["std"])  # "—" where no run completed
        model = row.get("model", "fc")
        paper = (PAPER_TEST_ACC.get(row["dataset"], {}).get(row["rule"])
                 if model == "fc" else None)  # the paper's numbers are of the FC nets
        seeds = ", ".join(map(str, row["seeds"]))
        lines.append(f"| {model} | {row['rule']} | {row['dataset']} | {value} | "
                     f"{row['n']} ({seeds}) | "
                     f"{'' if paper is None else f'{paper:.1f}'} | {row['status']} |")
    return "\n".join(lines)


def runs_table(history: xr.Dataset):
    """One row per run for table.csv: its settings, `status`, `diverged_epoch` (-1 if it did
    not) and its final test accuracy, empty for a run that did not complete (a diverged run's
    last finite value is not a result)."""
    from ..analysis import final_values, run_outcomes

    runs, outcomes = final_values(history), run_outcomes(history)
    runs["status"], runs["diverged_epoch"] = outcomes["status"], outcomes["diverged_epoch"]
    runs.loc[runs["status"] != "completed", "test_acc"] = float("nan")
    return runs


def write_results(plan: Plan, paths: list[Path], *, figures: bool = True) -> list[Path]:
    """table.md, table.csv and the figures of the plan's runs, in `plan.out`."""
    history = load_runs(paths)
    md = results_table(history)
    (plan.out / "table.md").write_text(md + "\n")
    runs_table(history).to_csv(plan.out / "table.csv", index=False)
    written = [plan.out / "table.md", plan.out / "table.csv"]
    if figures:
        written += table1_figures(history, load_runs(paths, what="activations"),
                                  plan.out / "figures")
    return written


def table1_figures(history: xr.Dataset, activations: xr.Dataset | None, out: Path,
                   formats=("png",)) -> list[Path]:
    """Test curves of the rules, the F angle over training, the slowness of each rule and the
    activation-difference summaries."""
    from .. import plots
    from ..analysis import slowness

    charts = {"test_curves": plots.learning_curves(history, "test_acc", color="rule"),
              "f_angle": plots.f_alignment(history, color="rule"),
              "slowness": plots.slowness_chart(slowness(history)),
              "bp_alignment": plots.bp_alignment(history.sel(run=history.rule != "bp"))}
    if activations is not None:
        charts["activation_differences"] = plots.activation_summary(activations)
    return [plots.save_chart(c, Path(out) / f"{name}.{fmt}") for name, c in charts.items()
            for fmt in formats]


F_SCALES = (0.01, 0.02, 0.05, 0.1, 0.3, 1.0)


def f_scale_figure(dataset: str, out: str | Path, *, seeds: int = 1, progress: bool = True,
                   **overrides) -> list[Path]:
    """Final accuracy against F scale: PEPITA with the paper's settings at each of `F_SCALES`
    (x `seeds`), trained as populations, written to `out` (sweep.nc and the figure)."""
    from .. import plots
    from ..records import write_netcdf
    from ..sweep import flatten, grid as train_grid

    overrides = {k: v for k, v in overrides.items() if v is not None}
    base = preset(PRESET_OF[dataset], dataset=dataset, rule="pepita", **overrides)
    grid = flatten(train_grid(base, f_scale=list(F_SCALES), seeds=list(range(seeds)),
                              progress=progress))  # one run per point, as the figure reads
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_netcdf(grid, out / "f_scale_sweep.nc")
    return [plots.save_chart(plots.final_vs_setting(grid, "f_scale"),
                             out / "figures" / "final_accuracy_vs_f_scale.png")]


def memory_results(out: str | Path = "results/memory", *, command: str = "", log=None,
                   **table_options) -> list[Path]:
    """`pepita-lab reproduce memory`: every step's measured peak memory and counted MACs for
    1-3 hidden layers of 1024 and the paper's conv net at batch 1, 64 and 512
    (`bench.memory_table.memory_table`), written to `out` as table.md / table.csv, the chart
    (html, png, svg) and README.md with the command that made them."""
    from ..bench.memory_table import markdown_table, memory_table
    from ..plots.common import save_chart
    from ..plots.memory import memory_chart

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = memory_table(log=log, **table_options)
    (out / "table.md").write_text(markdown_table(df) + "\n")
    df.to_csv(out / "table.csv", index=False)
    chart = memory_chart(df)
    written = [out / "table.md", out / "table.csv"]
    written += [save_chart(chart, out / f"memory.{fmt}") for fmt in ("html", "png", "svg")]
    (out / "README.md").write_text(
        "# Measured step memory and multiply-adds of every rule\n\n"
        f"Made by `{command or 'pepita-lab reproduce memory'}` on {df['device'].iloc[0]} "
        f"(torch {__import__('torch').__version__}); see docs/memory.md for what is "
        "measured and how it compares with MEMPEPITA.\n\n"
        "- `table.md`, `table.csv`: one row per net, batch size and step\n"
        "- `memory.html|png|svg`: peak memory against batch size, a panel per net\n")
    return written + [out / "README.md"]
