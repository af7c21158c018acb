"""Plain-text summaries of runs for the command line (`inspect`, `compare`, `cost`)."""

from __future__ import annotations

import math

import pandas as pd
import xarray as xr

from .analysis import (cost_table, format_table, outcome_text, run_outcomes, slowness,
                       summary_table)


def _fmt(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _coord(value):
    """A setting as a record's coordinate holds it (booleans as 0 / 1)."""
    return int(value) if isinstance(value, bool) else value


def describe_run(history: xr.Dataset, status: str = "") -> str:
    """A readable summary of one run's history: settings, final accuracies, alignment,
    F angle, slowness and timing."""
    h = history.isel(run=0) if "run" in history.dims else history
    settings = ("rule", "dataset", "model", "hidden", "lr", "batch_size", "f_scale", "sign",
                "output_error", "keep_prob", "seed", "epochs")
    # the options added after 0.2.2 (ICLR 2024 PEPITA, FF), where a run sets them
    from .config import RunConfig, field_default

    added = ["f_distribution"] + [
        f.name for f in RunConfig.__dataclass_fields__.values() if f.metadata["added"]
        and f.name in h.coords and f.name not in ("precision", "compile")]
    shown = [k for k in settings if k in h.coords] + [
        k for k in added if _fmt(h[k].item()) != _fmt(_coord(field_default(k)))]
    lines = [f"run {h.run.item()}  status={status or history.attrs.get('status', '?')}",
             "settings: " + " ".join(f"{k}={_fmt(h[k].item())}" for k in shown)]
    if "diverged_epoch" in history.attrs:
        a = history.attrs
        lines.append(f"diverged in epoch {a['diverged_epoch']} at step {a['diverged_step']}: "
                     f"{a['diverged_reason']} (the last good checkpoint is kept)")
    last = int(h.epoch[-1])
    best = int(h.test_acc.argmax("epoch"))
    finished = (status or history.attrs.get("status")) == "completed"
    end = "final" if finished else "last complete epoch"  # a diverged run has no final value
    lines.append(f"{end} (epoch {last}): test_acc={float(h.test_acc[-1]):.4f} "
                 f"test_loss={float(h.test_loss[-1]):.4f} train_acc={float(h.train_acc[-1]):.4f}; "
                 f"best test_acc={float(h.test_acc[best]):.4f} at epoch {int(h.epoch[best])}")
    if "bp_cosine" in h:
        cos = h.bp_cosine.isel(epoch=-1).values
        ang = h.bp_angle.isel(epoch=-1).values
        lines.append("alignment with BP (last epoch): " + ", ".join(
            f"layer {l + 1}: cos {c:+.3f} ({a:.1f} deg)" for l, (c, a) in enumerate(zip(cos, ang))))
    if not _reads_F(str(h.rule.item()) if "rule" in h.coords else ""):
        pass  # a rule without F (BP, FA, DFA, ...): no F angle to report
    elif "f_angle" in h and bool(h.f_angle.isnull().all()):
        lines.append("F angle: n/a (a conv net has no end-to-end matrix to compare F with)")
    elif "f_angle" in h:
        lines.append(f"F angle: {float(h.f_angle[0]):.1f} deg at epoch {int(h.epoch[0])} -> "
                     f"{float(h.f_angle[-1]):.1f} deg at epoch {last}")
    for name, what in (("feedback_angle", "feedback angle"),
                       ("mirror_angle", "mirroring: angle(B_l, W_l^T)"),
                       ("implied_angle", "implied feedback vs BP's")):
        if name in h and not bool(h[name].isnull().all()):
            values = h[name].isel(epoch=-1).values
            lines.append(f"{what} (last epoch): " + ", ".join(
                f"layer {l + 1}: {a:.1f} deg" for l, a in enumerate(values)
                if not math.isnan(a)))
    fit = slowness(history).isel(run=0)
    if int(fit.slowness_n_points) >= 2:
        lines.append(f"slowness: s={float(fit.slowness_s):.3g} epochs, "
                     f"a_max={float(fit.slowness_a_max):.4f} "
                     f"(fit on {int(fit.slowness_n_points)} epochs before the first lr decay)")
    times = h.epoch_time.sel(epoch=h.epoch > 0)
    if times.size:
        lines.append(f"time: {float(times.sum()):.1f} s for {times.size} epochs "
                     f"({float(times.mean()):.2f} s per epoch)")
    return "\n".join(lines)


def _reads_F(rule: str) -> bool:
    """Whether the registered rule `rule` uses the fixed matrix F (PEPITA); False for a rule
    that is not registered here (nothing is said of what it has)."""
    from .rules import get_rule, rule_names

    return rule in rule_names() and get_rule(rule).reads_F


def compare_runs(history: xr.Dataset, by=("rule", "dataset")) -> str:
    """One line per run with its status (a run that did not complete shows no accuracy:
    "—", and says why: "diverged in epoch 3"), then mean +- std over seeds grouped by `by`
    (every group listed, with the status of its runs)."""
    from .analysis import final_values

    runs = final_values(history)
    cols = [c for c in ("rule", "dataset", "model", "hidden", "f_scale", "lr", "sign", "seed")
            if c in runs]
    cells = pd.DataFrame({c: runs[c].map(_fmt) for c in ["run", *cols]})
    outcomes = run_outcomes(history)
    done = outcomes["status"].to_numpy() == "completed"
    cells["test_acc (%)"] = [f"{100 * v:.2f}" if ok and math.isfinite(v) else "—"
                             for v, ok in zip(runs["test_acc"], done)]
    cells["status"] = [outcome_text(s, int(e)) for s, e in zip(outcomes["status"],
                                                               outcomes["diverged_epoch"])]
    # the cells as formatted here: no number parsing, no padding (as format_table)
    lines = [cells.to_markdown(index=False, tablefmt="pipe", disable_numparse=True,
                               stralign=None), "", format_table(summary_table(history, by=by))]
    return "\n".join(lines)


def cost_report(sizes, batch_size: int, step_times: dict | None = None) -> str:
    """The cost model of each rule, with measured step times when given."""
    df = cost_table(sizes, batch_size, step_times=step_times)
    head = f"net {'-'.join(map(str, sizes))}, batch {batch_size}"
    return head + "\n" + df.to_string(index=False, float_format=lambda v: f"{v:.3g}")
