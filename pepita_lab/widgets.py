"""The explorer: sliders for a run's settings, Run / Stop / Clear buttons, live charts.

A thin layer over the same API as the command line: the controls build a `RunConfig`
(validated in `config.py`), `pepita_lab.train` runs it in a background thread, and the charts
are `pepita_lab.plots` functions of the runs' history datasets, redrawn after every epoch in
an altair `JupyterChart` (updated in place). Every finished run is kept and overlaid.
"""

from __future__ import annotations

import dataclasses
import html
import math
import threading
import traceback

import altair as alt
import ipywidgets as W
import numpy as np
import pandas as pd
import xarray as xr

from . import plots
from .api import Run, run_datasets, train
from .config import (DATASETS, F_DISTRIBUTIONS, INITS, MOMENTUM_STYLES, PEPITA_VARIANTS,
                     ConfigError, RunConfig, validate)
from .rules import rule_names
from .traces import Tracer

WIDTHS = [8, 16, 32, 64, 128, 256, 512, 1024, 2048]
MAX_DEPTH = 4
# Room for the longest control label ("subset (0 = all)"): ipywidgets' default cuts it.
STYLE = {"description_width": "110px"}
CONTROL_WIDTH = "340px"  # two columns of controls fit a notebook panel of about 800 px
# Two charts of this size side by side, legends below them, fit a notebook panel of about
# 1000 px; a narrower panel wraps the second chart below the first (never cut off).
CHART_WIDTH, CHART_HEIGHT = 300, 200
# SVG, not canvas: these charts have no gradient legends (whose ids clash between SVG charts
# on one page, see plots.EMBED_OPTIONS), and their points can be counted in the page.
EMBED_OPTIONS = {"renderer": "svg", "actions": False}
ADVICE = "try a smaller lr or F scale"
# The follow-up's options (ICLR 2024 PEPITA) and Forward-Forward's: a third column of
# controls with `Explorer(options=True)`.
OPTION_FIELDS = ("weight_decay", "momentum_style", "normalize", "init", "pepita_variant",
                 "f_distribution", "weight_mirroring", "mirror_lr", "premirror_epochs",
                 "ff_threshold")


def _placeholder(title: str) -> alt.Chart:
    return alt.Chart(pd.DataFrame({"epoch": [0], "value": [0.0]})).mark_point(opacity=0).encode(
        x="epoch:Q", y="value:Q").properties(title=title, width=CHART_WIDTH,
                                             height=CHART_HEIGHT)


def _fit(chart):
    """`chart` with its legend below it, so two charts fit side by side."""
    return chart.configure_legend(orient="bottom", direction="vertical")


def divergence_message(history: xr.Dataset) -> str:
    """What a diverged run's history says about where and why, in words."""
    a = history.attrs
    return (f"diverged in epoch {a.get('diverged_epoch', '?')}, step "
            f"{a.get('diverged_step', '?')}: {a.get('diverged_reason', 'loss not finite')}; "
            f"{ADVICE}")


class _Live:
    """Training callback: moves the progress bar and redraws the charts after each epoch."""

    def __init__(self, explorer: "Explorer"):
        self.explorer = explorer

    def on_train_start(self, trainer) -> None:
        self.explorer.steps_per_epoch = trainer.steps_per_epoch
        self.explorer.progress.max = trainer.config.epochs * trainer.steps_per_epoch
        self.every = max(1, self.explorer.progress.max // 100)

    def on_step_end(self, trainer, factors) -> None:
        if trainer.step % self.every == 0:
            self.explorer.progress.value = trainer.step

    def on_epoch_end(self, trainer) -> None:
        tracer = next((cb for cb in trainer.callbacks if isinstance(cb, Tracer)), None)
        history, _ = run_datasets(trainer, tracer, "running")
        self.explorer.progress.value = trainer.step
        self.explorer.status.value = (f"epoch {trainer.epoch}/{trainer.config.epochs}: "
                                      f"test_acc={trainer.history.last('test_acc'):.4f}")
        self.explorer.redraw(self.explorer.label(history))


class Explorer:
    """Widgets to set up a run, train it in the background and watch it live.

    Driven from Python as from the mouse: set `explorer.controls[name].value`, call
    `explorer.run_button.click()`, `explorer.wait()`, `explorer.stop_button.click()`.
    """

    def __init__(self, base: RunConfig | None = None, *, color: str = "label",
                 options: bool = False):
        alt.JupyterChart.enable_offline()  # vega bundled in: live charts need no internet
        base = validate(base or RunConfig(dataset="mnist", epochs=3))
        self.base, self.color, self.show_options = base, color, options
        self.runs: list[Run] = []
        self.histories: list[xr.Dataset] = []
        self.thread: threading.Thread | None = None
        self.stop_event = threading.Event()
        self.started_config: RunConfig | None = None
        self.error: str | None = None
        self._setting_error = False  # whether `error` is about the settings (fixing clears it)
        self.steps_per_epoch = 1
        # a deeper base config keeps all its layers (no slider range cuts them)
        self.max_depth = max(MAX_DEPTH, len(base.hidden))
        self.controls = self._make_controls(base)
        for control in self.controls.values():  # a fixed setting clears its error at once
            control.observe(lambda _: self._recheck(), names="value")
        self.run_button = W.Button(description="Run", button_style="success", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="warning", icon="stop",
                                    disabled=True)
        self.clear_button = W.Button(description="Clear runs", icon="trash")
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.clear_button.on_click(lambda _: self.clear())
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress")
        self.status = W.HTML("ready")
        self.curves = alt.JupyterChart(_placeholder("test accuracy"), embed_options=EMBED_OPTIONS)
        self.alignment = alt.JupyterChart(_placeholder("F angle"), embed_options=EMBED_OPTIONS)
        self.widget = self._layout()

    # ---------------------------------------------------------------- controls

    def _make_controls(self, base: RunConfig) -> dict[str, W.Widget]:
        log = dict(base=10, step=0.05, continuous_update=False, readout_format=".3g",
                   style=STYLE)
        styled = dict(style=STYLE)
        c = {
            "rule": W.Dropdown(options=rule_names(), value=base.rule, description="rule",
                               **styled),
            "dataset": W.Dropdown(options=DATASETS, value=base.dataset, description="dataset",
                                  **styled),
            "f_scale": W.FloatLogSlider(value=base.f_scale, min=-3, max=1,
                                        description="F scale", **log),
            "lr": W.FloatLogSlider(value=base.lr, min=-4, max=0, description="lr", **log),
            "depth": W.IntSlider(value=len(base.hidden), min=1, max=self.max_depth,
                                 description="depth", continuous_update=False, **styled),
            "batch_size": W.Dropdown(options=sorted({16, 32, 50, 64, 128, 256, 512,
                                                      base.batch_size}),
                                     value=base.batch_size, description="batch", **styled),
            "epochs": W.IntSlider(value=base.epochs, min=1, max=100, description="epochs",
                                  continuous_update=False, **styled),
            "seed": W.IntText(value=base.seed, description="seed", **styled),
            "sign": W.ToggleButtons(options=[("x + F e", 1.0), ("x - F e", -1.0)],
                                    value=base.sign, description="modulation",
                                    style={**STYLE, "button_width": "100px"}),
            "output_error": W.ToggleButtons(options=["modulated", "clean"],
                                            value=base.output_error, description="last layer",
                                            style={**STYLE, "button_width": "100px"}),
            "keep_prob": W.FloatSlider(value=base.keep_prob, min=0.5, max=1.0, step=0.05,
                                       description="keep prob", continuous_update=False,
                                       **styled),
            "subset": W.IntText(value=base.subset or 0, description="subset (0 = all)",
                                **styled),
        }
        c.update(self._option_controls(base))
        for l in range(self.max_depth):
            width = base.hidden[l] if l < len(base.hidden) else base.hidden[-1]
            options = sorted(set(WIDTHS) | {width})
            c[f"width_{l + 1}"] = W.SelectionSlider(options=options, value=width,
                                                    description=f"width {l + 1}",
                                                    continuous_update=False, **styled)
        for control in c.values():
            control.layout.width = CONTROL_WIDTH
        for name in ("sign", "output_error"):  # label beside the buttons, like the others
            c[name].add_class("widget-inline-hbox")
        c["depth"].observe(lambda _: self._show_widths(), names="value")
        return c

    @staticmethod
    def _option_controls(base: RunConfig) -> dict[str, W.Widget]:
        """The ICLR 2024 PEPITA options and FF's threshold (shown with `options=True`)."""
        styled = dict(style=STYLE)
        decays = sorted({0.0, 1e-5, 1e-4, 1e-3, 1e-2, base.weight_decay})
        return {
            "weight_decay": W.Dropdown(options=[(f"{v:g}", v) for v in decays],
                                       value=base.weight_decay, description="weight decay",
                                       **styled),
            "momentum_style": W.Dropdown(options=MOMENTUM_STYLES, value=base.momentum_style,
                                         description="momentum", **styled),
            "normalize": W.Checkbox(value=base.normalize, description="normalise activations",
                                    indent=False),
            "init": W.Dropdown(options=INITS, value=base.init, description="init", **styled),
            "pepita_variant": W.Dropdown(options=PEPITA_VARIANTS, value=base.pepita_variant,
                                         description="PEPITA update", **styled),
            "f_distribution": W.Dropdown(options=F_DISTRIBUTIONS, value=base.f_distribution,
                                         description="F", **styled),
            "weight_mirroring": W.Checkbox(value=base.weight_mirroring,
                                           description="weight mirroring (factorised F)",
                                           indent=False),
            "mirror_lr": W.FloatLogSlider(value=base.mirror_lr, min=-3, max=0, step=0.25,
                                          description="mirror lr", continuous_update=False,
                                          readout_format=".3g", **styled),
            "premirror_epochs": W.IntSlider(value=base.premirror_epochs, min=0, max=5,
                                            description="pre-mirroring", continuous_update=False,
                                            **styled),
            "ff_threshold": W.FloatSlider(value=base.ff_threshold, min=0.1, max=4.0, step=0.1,
                                          description="FF threshold", continuous_update=False,
                                          **styled),
        }

    def _show_widths(self) -> None:
        for l in range(self.max_depth):
            shown = l < self.controls["depth"].value
            self.controls[f"width_{l + 1}"].layout.display = None if shown else "none"

    def _layout(self) -> W.Widget:
        c = self.controls
        self._show_widths()
        left = W.VBox([c[k] for k in ("rule", "dataset", "f_scale", "lr", "sign",
                                      "output_error", "keep_prob")])
        right = W.VBox([c["depth"]] + [c[f"width_{l + 1}"] for l in range(self.max_depth)]
                       + [c[k] for k in ("batch_size", "epochs", "seed", "subset")])
        buttons = W.HBox([self.run_button, self.stop_button, self.clear_button, self.progress])
        # a wrapping row: side by side when the panel is wide enough, else one below the other
        charts = W.Box([self.curves, self.alignment],
                       layout=W.Layout(display="flex", flex_flow="row wrap", width="100%"))
        columns = [left, right]
        if self.show_options:
            columns.append(W.VBox([W.HTML("<b>after the paper</b> (ICLR 2024 PEPITA, FF)")]
                                  + [c[k] for k in OPTION_FIELDS]))
        controls = W.Box(columns, layout=W.Layout(display="flex", flex_flow="row wrap"))
        return W.VBox([controls, buttons, self.status, charts],
                      layout=W.Layout(max_width="100%"))

    def config(self) -> RunConfig:
        """The config the controls show (raises ConfigError for a bad combination)."""
        c = self.controls
        depth = c["depth"].value
        values = {k: c[k].value for k in ("rule", "dataset", "f_scale", "lr", "batch_size",
                                          "epochs", "seed", "sign", "output_error",
                                          "keep_prob")}
        values["hidden"] = tuple(c[f"width_{l + 1}"].value for l in range(depth))
        values["subset"] = c["subset"].value or None
        values.update({k: c[k].value for k in OPTION_FIELDS})
        if values["weight_mirroring"] and values["f_distribution"] != "factorised":
            values["f_distribution"] = "factorised"  # the checkbox says so: it needs one
            c["f_distribution"].value = "factorised"
        return validate(dataclasses.replace(self.base, **values))

    # ---------------------------------------------------------------- running

    def start(self) -> None:
        """Start a run of the shown settings in a background thread (no-op while one runs)."""
        if self.running:
            return
        try:
            config = self.config()
        except ConfigError as err:
            self._show_error(str(err), setting=True)
            return
        self.error = None
        self.started_config = config
        self.stop_event.clear()
        self.progress.value, self.progress.bar_style = 0, ""
        self.status.value = f"starting {config.rule} on {config.dataset} ..."
        self.run_button.disabled, self.stop_button.disabled = True, False
        self.thread = threading.Thread(target=self._train, args=(config,), daemon=True)
        self.thread.start()

    def _train(self, config: RunConfig) -> None:
        try:
            run = train(config, progress=False, callbacks=(_Live(self),),
                        should_stop=self.stop_event.is_set)
            self.runs.append(run)
            history = self.label(run.history)
            epochs = int(run.history.epoch[-1])
            if run.status == "diverged":
                step = run.history.attrs.get("diverged_step", math.nan)
                history = history.assign_coords(
                    diverged_at=("run", [float(step) / self.steps_per_epoch]))
                self.progress.value, self.progress.bar_style = self.progress.max, "danger"
                self.status.value = ("<b style='color:#b00'>" + html.escape(
                    divergence_message(run.history)) + "</b>"
                    f" (the charts show it up to there; {epochs} complete epochs)")
            else:
                if run.status == "completed":
                    self.progress.value, self.progress.bar_style = self.progress.max, "success"
                self.status.value = (f"{run.status}: {config.rule} test_acc={run.test_acc:.4f} "
                                     f"after {epochs} epochs")
            self.histories.append(history)
            self.redraw()
        except Exception as err:  # shown in the widget: a thread's errors are otherwise lost
            self._show_error(f"{type(err).__name__}: {err}", traceback.format_exc())
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True

    def _show_error(self, message: str, details: str = "", *, setting: bool = False) -> None:
        self.error, self._setting_error = message, setting
        self.status.value = f"<b style='color:#b00'>error:</b> {html.escape(message)}"
        if details:
            self.status.value += f"<details><pre>{html.escape(details)}</pre></details>"

    def _recheck(self) -> None:
        """After a control changed: a settings error that is fixed now goes away (and a new
        one replaces it); errors from a run stay until the next Run."""
        if self.error is None or not self._setting_error or self.running:
            return
        try:
            self.config()
        except ConfigError as err:
            self._show_error(str(err), setting=True)
            return
        self.error = None
        self.status.value = "ready: the settings are valid"

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self) -> None:
        """Ask the running run to stop after its current step (its complete epochs are kept)."""
        self.stop_event.set()

    def wait(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def clear(self) -> None:
        """Forget the finished runs (a running one continues)."""
        self.runs.clear()
        self.histories.clear()
        self.redraw()

    # ---------------------------------------------------------------- charts

    def label(self, history: xr.Dataset) -> xr.Dataset:
        """A run's history with a unique, readable `run` name and a `label` coordinate."""
        h = history.isel(run=0)
        name = (f"#{len(self.histories) + 1} {h.rule.item()} F={h.f_scale.item():.3g} "
                f"lr={h.lr.item():.3g} h={h.hidden.item()}")
        return history.assign_coords(run=[name], label=("run", [name]),
                                     diverged_at=("run", [math.nan]))

    def redraw(self, live: xr.Dataset | None = None) -> None:
        shown = self.histories + ([live] if live is not None else [])
        if not shown:
            self.curves.chart = _placeholder("test accuracy")
            self.alignment.chart = _placeholder("F angle")
            return
        ds = xr.concat(shown, dim="run", join="outer", combine_attrs="drop_conflicts")
        size = dict(width=CHART_WIDTH, height=CHART_HEIGHT)
        self.curves.chart = _fit(plots.learning_curves(ds, metric="test_acc", color=self.color,
                                                       **size))
        mirrored = "mirror_angle" in ds and bool(np.isfinite(ds.mirror_angle.values).any())
        self.alignment.chart = _fit(
            plots.mirror_angle_curves(ds, color=self.color, **size) if mirrored
            else plots.f_alignment(ds, color=self.color, **size))

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def explorer(*, options: bool = False, **base) -> Explorer:
    """An `Explorer` starting from `RunConfig(**base)` (with `options`, the ICLR 2024 PEPITA
    and Forward-Forward controls too); display it as a notebook cell's value."""
    return Explorer(RunConfig(**base) if base else None, options=options)


class SweepPanel:
    """Widgets to launch a small F scale x lr sweep (in the background, in-process or on a
    local Dask cluster) and see its stability map; a thin layer over `sweep.run_sweep`."""

    def __init__(self, base: RunConfig | None = None, *, out: str = "../runs/sweep"):
        alt.JupyterChart.enable_offline()
        self.base = validate(base or RunConfig(dataset="mnist", epochs=1))
        self.f_scales = W.Text("0.01, 0.05, 0.3, 1", description="F scales")
        self.lrs = W.Text("0.01, 0.1", description="lrs")
        self.seeds = W.IntSlider(value=1, min=1, max=5, description="seeds")
        self.epochs = W.IntSlider(value=self.base.epochs, min=1, max=100, description="epochs")
        self.workers = W.IntSlider(value=0, min=0, max=8, description="Dask workers")
        self.out = W.Text(out, description="out")
        self.run_button = W.Button(description="Run sweep", button_style="success", icon="play")
        self.run_button.on_click(lambda _: self.start())
        self.status = W.HTML("ready")
        self.chart = alt.JupyterChart(_placeholder("final accuracy"),
                                      embed_options=plots.EMBED_OPTIONS)
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.result: xr.Dataset | None = None
        self.widget = W.VBox([W.HBox([W.VBox([self.f_scales, self.lrs, self.out]),
                                      W.VBox([self.seeds, self.epochs, self.workers])]),
                              W.HBox([self.run_button, self.status]), self.chart])

    def spec(self):
        from .sweep import SweepSpec

        try:
            grid = {"f_scale": [float(v) for v in self.f_scales.value.split(",") if v.strip()],
                    "lr": [float(v) for v in self.lrs.value.split(",") if v.strip()]}
        except ValueError:
            raise ConfigError(f"F scales={self.f_scales.value!r} / lrs={self.lrs.value!r}: "
                              "expected numbers separated by commas") from None
        return SweepSpec(base=self.base.replace(epochs=self.epochs.value), grid=grid,
                         seeds=list(range(self.seeds.value)))

    def start(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        try:
            spec = self.spec()
            n_points = len(spec.points())  # every point validated (an F scale < 0 ...)
        except ConfigError as err:
            self.error = str(err)
            self.status.value = f"<b style='color:#b00'>error:</b> {html.escape(str(err))}"
            return
        self.error = None
        self.run_button.disabled = True
        self.status.value = f"running {n_points} points ..."
        self.thread = threading.Thread(target=self._run, args=(spec,), daemon=True)
        self.thread.start()

    def _run(self, spec) -> None:
        from .sweep import flatten, run_sweep

        try:
            self.result = run_sweep(spec, self.out.value, workers=self.workers.value,
                                    progress=False)
            self.chart.chart = plots.accuracy_map(flatten(self.result))
            self.status.value = f"done: {self.out.value}/sweep.nc"
        except Exception as err:  # shown in the widget, not lost in the thread
            self.error = f"{type(err).__name__}: {err}"
            self.status.value = (f"<b style='color:#b00'>error:</b> "
                                 f"{html.escape(self.error)}")
        finally:
            self.run_button.disabled = False

    def wait(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
