"""Analysis across runs: slowness fits, summary tables over seeds, and a cost model per step.

Sits above training and records: it reads history datasets (variables over (run, epoch), run
settings as coordinates along `run`) and never imports torch at module level; only
`measure_step_time` imports it, since it has to run steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from .config import IMAGE_SHAPES, INPUT_SIZES, N_CLASSES, RunConfig

# ---------------------------------------------------------------- slowness


@dataclass
class SlownessFit:
    """Least-squares fit of `acc(t) = a_max * t / (s + t)`; smaller `s` is faster convergence."""

    a_max: float
    s: float
    rmse: float
    n_points: int


_LOG_S_GRID = np.linspace(math.log(1e-3), math.log(1e4), 141)  # 10 points per decade
_GOLDEN = (math.sqrt(5) - 1) / 2


def _best_a_max(t: np.ndarray, y: np.ndarray, s: float) -> tuple[float, float]:
    """For fixed `s` the model is linear in a_max: return (a_max, sum of squared residuals)."""
    g = t / (s + t)
    a = float(g @ y / (g @ g))
    r = y - a * g
    return a, float(r @ r)


def fit_slowness(epochs, acc, *, max_epoch: float | None = None) -> SlownessFit:
    """Fit `acc(t) = a_max * t / (s + t)` to the points with `t >= 1` (and `t <= max_epoch`).

    No scipy: a_max is closed-form for each s, s is searched on a log grid over 1e-3..1e4 and
    then refined by golden-section search on log s around the best grid point. Non-finite
    accuracies are skipped; with fewer than two points every field but n_points is NaN.
    """
    t, y = np.asarray(epochs, dtype=float), np.asarray(acc, dtype=float)
    keep = np.isfinite(y) & (t >= 1) & (True if max_epoch is None else t <= max_epoch)
    t, y = t[keep], y[keep]
    if len(t) < 2:
        return SlownessFit(math.nan, math.nan, math.nan, len(t))
    sse = lambda log_s: _best_a_max(t, y, math.exp(log_s))[1]  # noqa: E731
    i = int(np.argmin([sse(v) for v in _LOG_S_GRID]))
    lo, hi = _LOG_S_GRID[max(i - 1, 0)], _LOG_S_GRID[min(i + 1, len(_LOG_S_GRID) - 1)]
    c, d = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    f_c, f_d = sse(c), sse(d)
    while hi - lo > 1e-10:
        if f_c < f_d:
            hi, d, f_d = d, c, f_c
            c = hi - _GOLDEN * (hi - lo)
            f_c = sse(c)
        else:
            lo, c, f_c = c, d, f_d
            d = lo + _GOLDEN * (hi - lo)
            f_d = sse(d)
    s = math.exp((lo + hi) / 2)
    a_max, sq = _best_a_max(t, y, s)
    return SlownessFit(a_max, s, math.sqrt(sq / len(t)), len(t))


def first_decay_epoch(epochs, epoch_lr) -> float:
    """The first epoch whose learning rate is below the first one (inf if it never drops)."""
    epochs, lr = np.asarray(epochs, dtype=float), np.asarray(epoch_lr, dtype=float)
    ok = np.isfinite(lr)  # epoch 0 (the initial net) has no learning rate
    epochs, lr = epochs[ok], lr[ok]
    dropped = np.nonzero(lr < lr[0])[0] if len(lr) else []
    return float(epochs[dropped[0]]) if len(dropped) else math.inf


def _run_coords(ds: xr.Dataset) -> dict:
    return {k: v for k, v in ds.coords.items() if v.dims == ("run",)}


def _per_run(history: xr.Dataset) -> xr.Dataset:
    """`history` with a `run` dimension, sorted by epoch."""
    if "run" not in history.dims:
        history = history.expand_dims("run")
    return history.sortby("epoch")


def slowness(history: xr.Dataset, metric: str = "test_acc") -> xr.Dataset:
    """Slowness fit of every run's `metric` curve before its first lr decay.

    The decay is read from the variable `epoch_lr` (the first epoch whose lr is below the
    first epoch's); without it, or if the lr never drops, every epoch >= 1 is used. Returns
    `slowness_s`, `slowness_a_max`, `slowness_rmse`, `slowness_n_points` over `run`, with the
    run coordinates of `history`.
    """
    history = _per_run(history)
    epochs = history["epoch"].values
    fits = []
    for r in range(history.sizes["run"]):
        run = history.isel(run=r)
        end = (first_decay_epoch(epochs, run["epoch_lr"].values)
               if "epoch_lr" in history else math.inf)
        fits.append(fit_slowness(epochs, run[metric].values, max_epoch=end - 0.5))
    out = {f"slowness_{k}": ("run", [getattr(f, k) for f in fits])
           for k in ("s", "a_max", "rmse", "n_points")}
    ds = xr.Dataset(out, coords=_run_coords(history))
    ds["slowness_s"].attrs["description"] = f"s of {metric}(t) = a_max t / (s + t), in epochs"
    return ds


# ---------------------------------------------------------------- tables across runs


def final_values(history: xr.Dataset, metric: str = "test_acc") -> pd.DataFrame:
    """One row per run: its run coordinates and `metric` at its last epoch where it is not NaN
    (runs of different lengths concatenate with NaN tails)."""
    history = _per_run(history)
    values = history[metric].transpose("run", "epoch").values  # (R, E)
    finite = np.isfinite(values)
    last = np.where(finite.any(1), values.shape[1] - 1 - np.argmax(finite[:, ::-1], 1), -1)
    final = [values[r, e] if e >= 0 else math.nan for r, e in enumerate(last)]
    rows = {k: v.values for k, v in _run_coords(history).items()}
    return pd.DataFrame({**rows, metric: final})


def run_outcomes(history: xr.Dataset, metric: str = "test_acc") -> pd.DataFrame:
    """One row per run: `status` ("completed", "diverged", "stopped"; "completed" where the
    history does not say) and `diverged_epoch` (the epoch it diverged in, -1 if it did not).
    The epoch is the `diverged_epoch` coordinate of grids and sweeps, else a single run's
    attribute, else read from the curve: a diverged run's history ends with its last
    complete epoch, so it diverged in the next."""
    history = _per_run(history)
    R = history.sizes["run"]
    status = (np.broadcast_to(np.asarray(history["status"].values).astype(str), (R,))
              if "status" in history.coords else
              np.full(R, str(history.attrs.get("status", "completed"))))
    if "diverged_epoch" in history.coords:
        epoch = np.broadcast_to(np.asarray(history["diverged_epoch"].values), (R,))
    elif R == 1 and "diverged_epoch" in history.attrs:
        epoch = np.array([history.attrs["diverged_epoch"]])
    else:
        values = history[metric].transpose("run", "epoch").values  # (R, E)
        finite = np.isfinite(values)
        last = values.shape[1] - 1 - np.argmax(finite[:, ::-1], 1)
        epoch = np.where(finite.any(1), history["epoch"].values[last] + 1, 1)
    epoch = np.where(status == "diverged", epoch, -1).astype(int)
    return pd.DataFrame({"status": list(status), "diverged_epoch": epoch})


def outcome_text(status: str, diverged_epoch: int, stopped_at_epoch: int = -1) -> str:
    """A run's status as a table says it: "completed", "diverged in epoch 3", "stopped by
    halving at epoch 1", "stopped"."""
    if status == "diverged":
        return f"diverged in epoch {diverged_epoch}" if diverged_epoch >= 0 else "diverged"
    if status == "completed" and stopped_at_epoch >= 0:
        return f"stopped by halving at epoch {stopped_at_epoch}"
    return status


def summary_table(history: xr.Dataset, by=("rule", "dataset"),
                  metric: str = "test_acc") -> pd.DataFrame:
    """Every group of runs (by the run coordinates in `by`), none left out: columns `by`,
    mean, std (ddof=1; NaN for a single run, which `format_table` leaves blank), n (runs with
    a result), seeds (sorted tuple, every run of the group) and status ("completed", or what
    happened to each run that did not complete: "diverged in epoch 3", per seed where the
    group has several runs). A result is the final `metric` of a run that completed all its
    epochs: a diverged, stopped or halved run counts in no mean, so a group of such runs has
    mean NaN (shown as "—")."""
    by = [by] if isinstance(by, str) else list(by)
    runs = final_values(history, metric)
    outcomes = run_outcomes(history, metric)
    runs["_status"], runs["_diverged"] = outcomes["status"].values, outcomes["diverged_epoch"].values
    runs["_halved"] = (runs["stopped_at_epoch"].fillna(-1).astype(int)
                       if "stopped_at_epoch" in runs else -1)
    if "seed" not in runs:
        runs["seed"] = -1
    rows = []
    for key, group in runs.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        ok = (group["_status"] == "completed") & (group["_halved"] < 0)
        vals = group.loc[ok & group[metric].notna(), metric].to_numpy(dtype=float)
        notes = [(f"seed {int(r['seed'])} " if len(group) > 1 and r["seed"] >= 0 else "")
                 + outcome_text(r["_status"], int(r["_diverged"]), int(r["_halved"]))
                 for _, r in group[~ok].iterrows()]
        status = ", ".join(([f"{int(ok.sum())} completed"] if notes and ok.any() else [])
                           + notes) or "completed"
        rows.append({**dict(zip(by, key)), "mean": vals.mean() if len(vals) else math.nan,
                     "std": vals.std(ddof=1) if len(vals) > 1 else math.nan, "n": len(vals),
                     "seeds": tuple(sorted(int(s) for s in group["seed"])), "status": status})
    table = pd.DataFrame(rows, columns=[*by, "mean", "std", "n", "seeds", "status"])
    table.attrs["metric"] = metric
    return table


def format_value(mean: float, std: float, digits: int = 2, scale: float = 100.0) -> str:
    """"mean ± std"; the mean alone for a single run (no std), "—" without a result."""
    if not np.isfinite(mean):
        return "—"
    return f"{mean * scale:.{digits}f}" + (f" ± {std * scale:.{digits}f}" if np.isfinite(std)
                                           else "")


def format_table(df: pd.DataFrame, digits: int = 2, percent: bool = True) -> str:
    """A markdown table of `summary_table`'s output: "mean ± std" (in percent by default; the
    mean alone for one run, "—" for a group without a result), n, seeds and status."""
    metric = df.attrs.get("metric", "value") + (" (%)" if percent else "")
    by = [c for c in df.columns if c not in ("mean", "std", "n", "seeds", "status")]
    scale = 100.0 if percent else 1.0
    values = [format_value(m, s, digits, scale) for m, s in zip(df["mean"], df["std"])]
    cells = df[by].astype(str).assign(**{metric: values, "n": df["n"].astype(str),
                                         "seeds": [", ".join(map(str, s)) for s in df["seeds"]]})
    if "status" in df:
        cells["status"] = df["status"].astype(str)
    # the cells as formatted here: no number parsing (it would drop "80.0"'s zero), no padding
    return cells.to_markdown(index=False, tablefmt="pipe", disable_numparse=True, stralign=None)


# ---------------------------------------------------------------- cost model


def step_cost(rule: str, sizes, batch_size: int, *,
              fused_first_layer: bool | str = "tracked", **options):
    """Multiply-accumulates and activation memory (`rules.Cost`) of one step of the rule named
    `rule` on a fully connected net of `sizes = [d, n_1, ..., C]` units, from the rule's own
    model (`Rule.step_cost`; PEPITA's `fused_first_layer` option says how its modulated first
    layer is computed).

    A model, not a measurement: only the matrix products count (elementwise work such as
    ReLU, softmax, dropout and the momentum update is ignored). W_l: (n_l, n_{l-1}),
    B = batch_size, P = sum_l n_l n_{l-1}, one forward pass = B P. The built-in rules:
      bp, fa:     B P (forward) + B P (weight grads) + B sum_{l>=2} n_l n_{l-1} (error sent down)
      dfa, drtp:  B P + B P + B C sum_{hidden l} n_l (direct projections of e or t)
      pepita:     B d C (e F^T) + B P (clean) + the modulated pass + B P (`Pepita.step_cost`)
    Activation floats kept during a step: B sum_{l>=1} n_l (every h_1..h_L; the batch is
    the loop's) + B max_{l>=1} n_l (one error layer); PEPITA keeps both passes (`streamed=True`:
    the streamed step, `rules.pepita.streamed.streamed_step_cost`). `options` go to the rule's model
    (PEPITA: streamed, output_error). `bench.memory` measures what the step really allocates
    beside these (docs/memory.md).
    """
    from .rules import get_rule  # torch: only when a cost is asked for

    return get_rule(rule).step_cost([int(n) for n in sizes], int(batch_size),
                                    fused_first_layer=fused_first_layer, **options)


def _conv_layers(image_shape, conv_channels, kernel_size: int, pool: int, hidden,
                 n_classes: int) -> tuple[list[int], list[int], list[int]]:
    """Per layer of a conv net (conv layers, then fully connected ones): multiply-adds per
    sample M_l, output units u_l (a conv layer's map before pooling) and weights."""
    c, H, W = (int(v) for v in image_shape)
    macs, units, weights = [], [], []
    for c_out in conv_channels:
        H_out, W_out = H - kernel_size + 1, W - kernel_size + 1
        if H_out < 1 or W_out < 1:
            raise ValueError(f"a {kernel_size}x{kernel_size} kernel does not fit {H}x{W} maps")
        weights.append(int(c_out) * c * kernel_size ** 2)
        macs.append(weights[-1] * H_out * W_out)
        units.append(int(c_out) * H_out * W_out)
        c, H, W = int(c_out), H_out // pool, W_out // pool
    n_prev = c * H * W
    for n in [*hidden, n_classes]:
        weights.append(n_prev * int(n))
        macs.append(weights[-1])
        units.append(int(n))
        n_prev = int(n)
    return macs, units, weights


def conv_step_cost(rule: str, image_shape, conv_channels, kernel_size: int, pool: int,
                   hidden, n_classes: int, batch_size: int, **options):
    """`step_cost` for a conv net (conv layers of `conv_channels` k x k filters, stride 1, no
    padding, each followed by a `pool` max-pool, then fully connected `hidden`, then the
    output), from the rule's `conv_step_cost`: multiply-accumulates of the convolutions and
    products only.

    Per sample, layer l costs M_l forward: c_out H' W' c_in k^2 for a conv layer, n_l n_{l-1}
    for a fully connected one. Its weight update costs M_l too (`conv2d_weight`), and so does
    sending an error down through it (`conv2d_input`). With P = sum_l M_l:
      bp, fa:     B (P + P + sum_{l>=2} M_l)
      dfa, drtp:  B (P + P + C sum_{hidden l} u_l), u_l the size of layer l's output map
      pepita:     B (d C + P + P + P) (e F^T, both passes, the updates; never fused)
    Activation floats: B (sum_l u_l + max_l u_l) for one pass and an error layer; PEPITA's
    two passes and x_err, B (d + 2 sum_l u_l). `options` as `step_cost`.
    """
    from .rules import get_rule

    d = math.prod(int(v) for v in image_shape)
    macs_per_layer, units, _ = _conv_layers(image_shape, conv_channels, kernel_size, pool,
                                            hidden, n_classes)
    return get_rule(rule).conv_step_cost(macs_per_layer, units, d, n_classes, int(batch_size),
                                         **options)


def cost_table(sizes, batch_size: int, rules=None, step_times: dict | None = None,
               *, fused_first_layer: bool | str = "tracked") -> pd.DataFrame:
    """`step_cost` of each rule (default: every registered one): rule, macs, mflop (2 macs /
    1e6), activation_kib; with
    `step_times` (rule -> seconds per step, e.g. from `measure_step_time`) also step_ms and
    the gflops achieved (NaN for a rule without a time)."""
    if rules is None:
        from .rules import rule_names

        rules = rule_names()
    rows = []
    for rule in rules:
        c = step_cost(rule, sizes, batch_size, fused_first_layer=fused_first_layer)
        row = {"rule": rule, "macs": c.macs, "mflop": 2 * c.macs / 1e6,
               "activation_kib": c.activation_bytes / 1024}
        if step_times is not None:
            sec = step_times.get(rule, math.nan)
            row.update(step_ms=1e3 * sec, gflops=2 * c.macs / sec / 1e9)
        rows.append(row)
    return pd.DataFrame(rows)



def measure_step_time(config: RunConfig, *, steps: int = 30, warmup: int = 5) -> float:
    """Median wall time in seconds of one training step of `config` (dropout masks, the rule's
    factors and the momentum update), on random data of the dataset's shape, so no files are
    needed. The device work is synchronised before and after each timed step."""
    import time

    import torch

    from .data import TensorData
    from .devices import synchronize
    from .training import Trainer

    B, d = config.batch_size, INPUT_SIZES[config.dataset]
    C = N_CLASSES[config.dataset]
    n = B * (steps + warmup)
    g = torch.Generator().manual_seed(config.seed)
    x, y = torch.rand(n, d, generator=g), torch.randint(0, C, (n,), generator=g)  # (n, d), (n,)
    data = TensorData(config.dataset, x, y, x[:B], y[:B], IMAGE_SHAPES[config.dataset], C)
    trainer = Trainer(config, data, progress=False)
    x, y = trainer.data.x_train, trainer.data.y_train
    times = []
    with torch.no_grad():
        for i in range(steps + warmup):
            xb, tb = x[i * B:(i + 1) * B], trainer.eye[y[i * B:(i + 1) * B]]  # (B, d), (B, C)
            synchronize(trainer.device)
            start = time.perf_counter()
            trainer.train_step(xb, tb, config.lr)
            synchronize(trainer.device)
            times.append(time.perf_counter() - start)
    return float(np.median(times[warmup:]))


__all__ = ["SlownessFit", "fit_slowness", "first_decay_epoch", "slowness", "final_values",
           "run_outcomes", "outcome_text", "summary_table", "format_value", "format_table", "step_cost", "conv_step_cost", "cost_table",
           "measure_step_time"]
