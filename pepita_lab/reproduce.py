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

from .api import load_run, load_runs, train
from .config import ConfigError, RunConfig, preset
from .rules.validation import resolve  # a plan's runs as pl.train resolves them

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
    from .rules import get_rule, rule_names

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
    from .analysis import format_value, summary_table

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
    from .analysis import final_values, run_outcomes

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
    from . import plots
    from .analysis import slowness

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
    from . import plots
    from .records import write_netcdf
    from .sweep import flatten, grid as train_grid

    overrides = {k: v for k, v in overrides.items() if v is not None}
    base = preset(PRESET_OF[dataset], dataset=dataset, rule="pepita", **overrides)
    grid = flatten(train_grid(base, f_scale=list(F_SCALES), seeds=list(range(seeds)),
                              progress=progress))  # one run per point, as the figure reads
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_netcdf(grid, out / "f_scale_sweep.nc")
    return [plots.save_chart(plots.final_vs_setting(grid, "f_scale"),
                             out / "figures" / "final_accuracy_vs_f_scale.png")]


# ---------------------------------------------------------------- deeper nets (ICLR 2024)

# The variants of the deeper-net comparison: (rule, settings on top of the paper's preset and
# the rule's own `paper_overrides`). PEPITA as the paper (x + F e) and with the ICLR code's
# sign (x - F e); with the follow-up's weight decay + activation normalisation (which divides
# each hidden layer by its norm over the whole batch, shrinking the outputs by about
# sqrt(B n): it needs a far larger lr, 5, from a short sweep); and with weight mirroring of a
# factorised F. Mirroring turns F towards (W_L ... W_1)^T, which helps only with x - F e: with
# x + F e the implied feedback -W_l ... W_1 F then points against BP's (measured:
# docs/results/deeper/README.md), so the mirroring variant takes the ICLR sign, and
# "pepita-minus" is its control. No pre-mirroring epoch, so every variant trains as many
# epochs.
DEEPER_VARIANTS: dict[str, tuple[str, dict]] = {
    "pepita": ("pepita", {}),
    "pepita-minus": ("pepita", {"sign": -1.0}),
    "pepita+wd+norm": ("pepita", {"weight_decay": 1e-4, "normalize": True, "lr": 5.0}),
    "pepita+mirror": ("pepita", {"f_distribution": "factorised", "weight_mirroring": True,
                                 "premirror_epochs": 0, "sign": -1.0}),
    "bp": ("bp", {}),
    "fa": ("fa", {}),
    "ff": ("ff", {}),
}
DEEPER_DEPTHS = (1, 2, 3)


def scaled_milestones(epochs: int, milestones=(60, 90), of: int = 100) -> tuple[int, ...]:
    """The paper's lr milestones (60 and 90 of 100 epochs) at the same fractions of `epochs`."""
    return tuple(sorted({max(1, round(m * epochs / of)) for m in milestones}))


def deeper_plan(dataset: str = "mnist", *, depths=DEEPER_DEPTHS, width: int = 1024,
                seeds: int = 3, baseline_seeds: int | None = 1, variants=None,
                epochs: int | None = None, lr: float | None = None,
                out: str | Path = "results/deeper",
                variant_overrides: dict | None = None, **overrides) -> Plan:
    """Every variant of `DEEPER_VARIANTS` (or `variants`, names from it) on `depths` hidden
    layers of `width` units: the paper's settings for `dataset` with the rule's
    `paper_overrides`, the variant's settings, `variant_overrides[name]` and `overrides`.
    PEPITA's variants and BP over `seeds` seeds, the other baselines (FA, FF) over
    `baseline_seeds` (as Table 1). With `epochs` below the paper's 100 and no milestones
    given, the lr milestones move to the same fractions of the run (60 %, 90 %). `lr`
    replaces the paper's lr where neither the rule nor the variant sets its own (FF and the
    normalised variant keep theirs)."""
    from .rules import get_rule

    if dataset not in PRESET_OF:
        raise ConfigError(f"dataset={dataset!r} is not allowed: expected one of "
                          f"{', '.join(PRESET_OF)}")
    names = list(DEEPER_VARIANTS) if variants is None else list(variants)
    unknown = [n for n in names if n not in DEEPER_VARIANTS]
    if unknown:
        raise ConfigError(f"variants={unknown!r} are unknown; allowed: "
                          f"{', '.join(DEEPER_VARIANTS)}")
    if seeds < 1 or (baseline_seeds is not None and baseline_seeds < 1):
        raise ConfigError(f"seeds={seeds!r} is not allowed: expected an integer >= 1")
    baseline_seeds = seeds if baseline_seeds is None else baseline_seeds
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if epochs is not None:
        overrides["epochs"] = epochs
        overrides.setdefault("lr_milestones", scaled_milestones(epochs))
    runs = []
    for depth in depths:
        for name in names:
            rule_name, settings = DEEPER_VARIANTS[name]
            rule = get_rule(rule_name)
            main = rule.name == "pepita" or not rule.baseline
            for seed in range(seeds if main else baseline_seeds):
                config = resolve(preset(
                    PRESET_OF[dataset], dataset=dataset, rule=rule_name,
                    hidden=(width,) * depth, seed=seed,
                    **{**({} if lr is None else {"lr": lr}), **rule.paper_overrides, **settings,
                       **(variant_overrides or {}).get(name, {}), **overrides}))
                runs.append((f"h{depth}-{name}-s{seed}", config))
    return Plan(Path(out), runs)


def variant_of(run_name: str) -> str:
    """The variant of a deeper-plan run name `h<depth>-<variant>-s<seed>`."""
    return run_name.split("-", 1)[1].rsplit("-s", 1)[0]


def deeper_table(history: xr.Dataset, names: list[str], wall: dict[str, float] | None = None
                 ) -> str:
    """Markdown: final test accuracy (%) per variant (rows) and depth (columns), mean ± std
    over the seeds that completed with their number; diverged runs are named in the cell with
    the epoch they diverged in, and count in no mean."""
    import numpy as np

    acc = [row[np.isfinite(row)][-1] if np.isfinite(row).any() else np.nan
           for row in history.test_acc.values]  # each run's last epoch
    depth = history.depth.values
    from .analysis import run_outcomes

    outcomes = run_outcomes(history)
    status, diverged_in = outcomes["status"].to_numpy(), outcomes["diverged_epoch"].to_numpy()
    depths = sorted({int(d) for d in depth})
    variants = list(dict.fromkeys(variant_of(n) for n in names))
    lines = ["| variant | " + " | ".join(f"{d} hidden" for d in depths) + " |",
             "| --- |" + " --- |" * len(depths)]
    for v in variants:
        cells = []
        for d in depths:
            idx = [i for i, n in enumerate(names) if variant_of(n) == v and depth[i] == d]
            vals = np.array([acc[i] for i in idx if status[i] == "completed"], dtype=float)
            diverged = [int(diverged_in[i]) for i in idx if status[i] == "diverged"]
            if not idx:
                cells.append("")
                continue
            text = f"{100 * vals.mean():.2f}" if len(vals) else "—"
            if len(vals) > 1:
                text += f" ± {100 * vals.std(ddof=1):.2f}"
            text += f" ({len(vals)})"
            if diverged:  # when, not only how many
                text += (f", diverged in epoch {diverged[0]}" if len(diverged) == 1 else
                         f", {len(diverged)} diverged (in epochs "
                         f"{', '.join(map(str, sorted(diverged)))})")
            cells.append(text)
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    if wall:
        lines += ["", "Wall time per run (minutes; the mean over the variant's seeds at each "
                  "depth):", "",
                  "| variant | " + " | ".join(f"{d} hidden" for d in depths) + " |",
                  "| --- |" + " --- |" * len(depths)]
        for v in variants:
            cells = []
            for d in depths:
                secs = [wall[n] for n in names if n in wall and variant_of(n) == v
                        and n.startswith(f"h{d}-")]
                cells.append(f"{sum(secs) / len(secs) / 60:.1f} min" if secs else "")
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_deeper_results(plan: Plan, paths: list[Path], *, figures: bool = True) -> list[Path]:
    """table.md (accuracy per variant and depth, then mean wall time per run), table.csv and
    the figures: test curves per depth, the mirroring angles B_l vs W_l^T, PEPITA's implied
    feedback angle, and each rule's update angle with BP, per layer."""
    from . import plots

    names = [name for name, _ in plan.runs]
    history = load_runs(paths)
    history = history.assign_coords(variant=("run", [variant_of(n) for n in names]))
    wall = {}
    log = plan.out / "log.jsonl"
    if log.exists():
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            wall[entry["run"]] = entry["wall_s"]
    md = deeper_table(history, names, wall)
    (plan.out / "table.md").write_text(md + "\n")
    runs_table(history).assign(variant=[variant_of(n) for n in names]).to_csv(
        plan.out / "table.csv", index=False)
    written = [plan.out / "table.md", plan.out / "table.csv"]
    if figures:
        out = plan.out / "figures"
        charts = {"test_curves": plots.depth_curves(history, "test_acc"),
                  "mirror_angles": plots.layer_angles(
                      history.sel(run=history.weight_mirroring == 1), "mirror_angle"),
                  "implied_feedback": plots.layer_angles(
                      history.sel(run=history.rule == "pepita"), "implied_angle"),
                  "bp_alignment": plots.layer_angles(
                      history.sel(run=history.rule != "bp"), "bp_angle")}
        written += [plots.save_chart(c, out / f"{name}.png") for name, c in charts.items()
                    if c is not None]
    return written


def memory_results(out: str | Path = "results/memory", *, command: str = "", log=None,
                   **table_options) -> list[Path]:
    """`pepita-lab reproduce memory`: every step's measured peak memory and counted MACs for
    1-3 hidden layers of 1024 and the paper's conv net at batch 1, 64 and 512
    (`bench.memory_table.memory_table`), written to `out` as table.md / table.csv, the chart
    (html, png, svg) and README.md with the command that made them."""
    from .bench.memory_table import markdown_table, memory_table
    from .plots.common import save_chart
    from .plots.memory import memory_chart

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
