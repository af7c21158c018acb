"""The deeper-net comparison (ICLR 2024 follow-up) at fixed settings: PEPITA's variants beside
BP, FA and FF at 1-3 hidden layers; one plan, one table, the figures. The searched version
(each cell at its own settings, trained long) is `reproduce.searched`."""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr

from ..api import load_runs
from ..config import ConfigError, preset
from ..rules.validation import resolve
from .table1 import PRESET_OF, Plan, runs_table

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
    from ..rules import get_rule

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
    from ..analysis import run_outcomes

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
    from .. import plots

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
