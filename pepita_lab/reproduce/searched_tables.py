"""What the searched deeper-net reproduction writes, from what is finished: the table of final
test accuracy per variant and depth (`table.md`, `table.csv` one row per long run), the
searched settings (`settings.md`, `settings.csv`), every search candidate (`search.csv`), the
measured cost (`cost.md`) and the figures (the stability region over lr and depth from the
search, the long runs' test curves). Rewritten from the files alone: the same files give the
same tables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..records import read_netcdf, run_id, with_run_coords
from .state import depth_of, variant_of_cell


def write_searched(spec, out: Path, cells: dict, *, figures: bool = True) -> list[Path]:
    """Every file above, in `out`; returns their paths."""
    from .state import long_configs, run_state, search_result

    search_rows, settings_rows, run_rows, histories = [], [], [], []
    for cell, config in cells.items():
        variant, depth = variant_of_cell(cell), depth_of(cell)
        result = search_result(out, cell)
        where = {"cell": cell, "variant": variant, "depth": depth}
        if result is None:
            settings_rows.append({**where, "status": "not searched yet"})
            continue
        for rung in result["rungs"]:
            search_rows += [{**where, "rung_epochs": rung["epochs"], **row}
                            for row in rung["candidates"]]
        settings = result["settings"]
        settings_rows.append({**where, "status": "searched" if settings else
                              "no stable candidate", **(settings or {}),
                              "val_acc": result["val_acc"]})
        if settings is None:
            continue
        for c in long_configs(spec, config, settings):
            path = out / "runs" / cell / run_id(c)
            row = {**where, "seed": c.seed, **settings, "status": "not finished",
                   "epochs": 0, "diverged_epoch": -1, "test_acc": math.nan}
            if run_state(path, c) == "done":
                h = with_run_coords(read_netcdf(path / "history.nc"), c)
                row.update(_outcome(h))
                histories.append(h.assign_coords(variant=variant))
            run_rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    runs = pd.DataFrame(run_rows)
    written = {}
    written["table.md"] = _text(out / "table.md", accuracy_table(runs, cells, settings_rows))
    written["settings.md"] = _text(out / "settings.md", settings_table(settings_rows))
    written["cost.md"] = _text(out / "cost.md", cost_table(out))
    for name, rows in (("table.csv", run_rows), ("settings.csv", settings_rows),
                       ("search.csv", search_rows)):
        pd.DataFrame(rows).to_csv(out / name, index=False)
        written[name] = out / name
    if figures:
        written.update(_figures(out, pd.DataFrame(search_rows), histories))
    return list(written.values())


def _outcome(h) -> dict:
    acc = h.test_acc.values.reshape(-1)
    finite = acc[np.isfinite(acc)]
    status = str(h.attrs.get("status", "completed"))
    epochs = int(h.sizes.get("epoch", 1)) - 1
    diverged = int(h.attrs.get("diverged_epoch", epochs + 1)) if status == "diverged" else -1
    return {"status": status, "epochs": epochs, "diverged_epoch": diverged,
            "test_acc": float(finite[-1]) if status == "completed" and len(finite) else math.nan}


def _text(path: Path, text: str) -> Path:
    path.write_text(text.rstrip() + "\n")
    return path


def accuracy_table(runs: pd.DataFrame, cells: dict, settings_rows: list[dict]) -> str:
    """Markdown: final test accuracy (%) per variant (rows) and depth (columns), mean ± std over
    the seeds that completed (their number of the planned); diverged runs with their epoch;
    what is not finished said as such."""
    depths = sorted({depth_of(c) for c in cells})
    variants = list(dict.fromkeys(variant_of_cell(c) for c in cells))
    status = {r["cell"]: r["status"] for r in settings_rows}
    lines = ["| variant | " + " | ".join(f"{d} hidden" for d in depths) + " |",
             "| --- |" + " --- |" * len(depths)]
    for v in variants:
        cells_text = []
        for d in depths:
            cell = f"h{d}-{v}"
            if cell not in cells:
                cells_text.append("")
                continue
            if status.get(cell) != "searched":
                cells_text.append(status.get(cell, ""))
                continue
            mine = runs[runs["cell"] == cell]
            cells_text.append(_cell_text(mine))
        lines.append(f"| {v} | " + " | ".join(cells_text) + " |")
    return "\n".join(lines)


def _cell_text(mine: pd.DataFrame) -> str:
    done = mine[mine["status"] == "completed"]
    vals = 100 * done["test_acc"].to_numpy(dtype=float)
    diverged = sorted(mine.loc[mine["status"] == "diverged", "diverged_epoch"].astype(int))
    left = int((mine["status"] == "not finished").sum())
    parts = []
    if len(vals):
        text = f"{vals.mean():.2f}" + (f" ± {vals.std(ddof=1):.2f}" if len(vals) > 1 else "")
        parts.append(f"{text} ({len(vals)})")
    if diverged:
        parts.append(f"{len(diverged)} diverged (epoch {', '.join(map(str, diverged))})")
    if left:
        parts.append(f"{left} of {len(mine)} not finished")
    return ", ".join(parts)


def settings_table(rows: list[dict]) -> str:
    """Markdown: each cell's searched settings and their validation accuracy."""
    lines = ["| cell | lr | mirror lr | mirror decay | validation acc (%) | status |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        acc = r.get("val_acc")
        lines.append(f"| {r['cell']} | {_g(r.get('lr'))} | {_g(r.get('mirror_lr'))} | "
                     f"{_g(r.get('mirror_decay'))} | "
                     f"{'' if acc is None or not np.isfinite(acc) else f'{100 * acc:.2f}'} | "
                     f"{r['status']} |")
    return "\n".join(lines)


def _g(value) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.4g}"


def cost_table(out: Path) -> str:
    """Markdown: every item's wall time from `log.jsonl` and its seconds per epoch of 60000
    images (one thread), wall and CPU (the CPU time of the process: what it costs where other
    work shares the cores): a long run's per run-epoch, a search's per candidate-epoch (a
    population's members counted each)."""
    log = out / "log.jsonl"
    entries = [json.loads(line) for line in (log.read_text().splitlines()
                                             if log.exists() else [])]
    lines = ["| item | depth | wall (min) | epochs of 60000 images | wall s per epoch | "
             "CPU s per epoch |", "| --- | --- | --- | --- | --- | --- |"]
    for e in entries:  # a search's epochs: its candidates' samples over 60000
        epochs = e.get("run_epochs") or e.get("sample_epochs", 0) / 60000
        per = f"{e['wall_s'] / epochs:.1f}" if epochs else ""
        cpu = f"{e['cpu_s'] / epochs:.1f}" if epochs and "cpu_s" in e else ""
        lines.append(f"| {e['item']} | {e['depth']} | {e['wall_s'] / 60:.1f} | "
                     f"{epochs:.3g} | {per} | {cpu} |")
    return "\n".join(lines)


def _figures(out: Path, search_rows: pd.DataFrame, histories: list) -> dict:
    from .. import plots

    written = {}
    if len(search_rows):
        chart = stability_chart(search_rows)
        written["stability.png"] = plots.save_chart(chart, out / "figures" / "stability.png")
    if histories:
        import xarray as xr

        history = xr.concat(histories, dim="run", join="outer", coords="all",
                            combine_attrs="drop_conflicts")
        written["test_curves.png"] = plots.save_chart(plots.depth_curves(history, "test_acc"),
                                                      out / "figures" / "test_curves.png")
    return written


def stability_chart(search_rows: pd.DataFrame):
    """The search's first rung (every candidate, one short run each) as the stability region:
    validation accuracy over lr (and mirroring speed) and depth, a panel per variant; a
    diverged candidate is an empty cell marked "div"."""
    import altair as alt

    first = search_rows[search_rows["rung_epochs"] == search_rows["rung_epochs"].min()].copy()
    first["setting"] = [f"{lr:.3g}" + (f" m{m:g}" if "mirror_lr" in first and
                                         isinstance(m, float) and np.isfinite(m) else "")
                        for lr, m in zip(first["lr"], first.get("mirror_lr", first["lr"]))]
    first["val_acc_pct"] = 100 * first["val_acc"].astype(float)
    first["label"] = ["div" if s == "diverged" else f"{a:.0f}"
                      for s, a in zip(first["status"], first["val_acc_pct"])]
    first = first[["variant", "depth", "setting", "lr", "val_acc_pct", "label"]]
    base = alt.Chart().encode(
        x=alt.X("setting:N", sort=alt.SortField("lr"), title="lr (m: mirror lr)"),
        y=alt.Y("depth:O", title="hidden layers"))
    rect = base.mark_rect().encode(color=alt.Color(
        "val_acc_pct:Q", title="validation acc (%)", scale=alt.Scale(domain=[0, 100])))
    text = base.mark_text(fontSize=9).encode(text="label:N")
    return alt.layer(rect, text, data=first).facet(
        facet=alt.Facet("variant:N", title=None), columns=4).resolve_scale(x="independent")
