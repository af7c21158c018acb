"""The explorer: sliders for a run's settings, Run / Stop / Clear buttons, live charts.

A thin layer over the same API as the command line: the controls (`controls.py`) build a
`RunConfig` (validated by `rules.validate`), `pepita_lab.train` runs it in a background thread, and
the charts are `pepita_lab.plots` functions of the runs' history datasets, redrawn after every
epoch in an altair `JupyterChart` (updated in place). Every finished run is kept and overlaid.
"""

from __future__ import annotations

import html
import math
import threading
import traceback

import altair as alt
import ipywidgets as W
import numpy as np
import xarray as xr

from .. import plots
from ..api import Run, run_datasets, train
from ..config import ConfigError, RunConfig
from ..rules import validate
from ..traces import Tracer
from .charts import CHART_HEIGHT, CHART_WIDTH, EMBED_OPTIONS, _placeholder
from .controls import (MAX_DEPTH, OPTION_FIELDS, config_from_controls, make_controls,
                       show_widths)

ADVICE = "try a smaller lr or F scale"


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
        c = make_controls(base, self.max_depth)
        c["depth"].observe(lambda _: self._show_widths(), names="value")
        return c

    def _show_widths(self) -> None:
        show_widths(self.controls, self.max_depth)

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
        return config_from_controls(self.controls, self.base)

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
