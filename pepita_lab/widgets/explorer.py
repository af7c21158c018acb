"""The explorer: sliders for a run's settings, Run / Stop / Clear buttons, live charts.

A thin layer over the same API as the command line: the controls (`controls.py`) build a
`RunConfig` (resolved by `rules.resolve`), `pepita_lab.train` runs it in a background thread, and
the charts are `pepita_lab.plots` functions of the runs' history datasets, redrawn after every
epoch in an altair `JupyterChart` (updated in place). Every finished run is kept and overlaid.
"""

from __future__ import annotations

import dataclasses
import html
import math
import threading
import traceback
import warnings

import altair as alt
import ipywidgets as W
import numpy as np
import xarray as xr

from .. import plots
from ..advice import unlearnable
from ..api import Run, run_datasets, train
from ..config import ConfigError, RunConfig
from ..rules.defaults import settings_attrs, switched_settings
from ..rules.validation import resolve
from ..traces import Tracer
from .charts import (CHART_HEIGHT, CHART_WIDTH, EMBED_OPTIONS, SECOND_TITLES, _placeholder,
                     hidden_runs, run_kinds, second_chart_kind, shows)
from .controls import (MAX_DEPTH, OPTION_FIELDS, column_style, config_from_controls,
                       make_controls, read_by, show_widths)
from .labels import percent, plural, run_label

ADVICE = "try a smaller lr or F scale"
# pepita_lab.train's warnings on a diverged run or one that did not learn: the explorer says
# the same in its status line, so they are not repeated under the cell (its calls only)
warnings.filterwarnings("ignore", category=RuntimeWarning, module=__name__)


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
            if trainer.epoch == 0:  # until the first epoch's accuracy: where it is
                self.explorer.status.value = (
                    f"training epoch 1/{trainer.config.epochs}: step {trainer.step}/"
                    f"{trainer.steps_per_epoch}")

    def on_epoch_end(self, trainer) -> None:
        tracer = next((cb for cb in trainer.callbacks if isinstance(cb, Tracer)), None)
        history, _ = run_datasets(trainer, tracer, "running")
        self.explorer.progress.value = trainer.step
        self.explorer.status.value = (f"epoch {trainer.epoch}/{trainer.config.epochs}: test "
                                      f"accuracy {percent(trainer.history.last('test_acc'))}")
        self.explorer.redraw(self.explorer.label(history))


class Explorer:
    """Widgets to set up a run, train it in the background and watch it live.

    Driven from Python as from the mouse: set `explorer.controls[name].value`, call
    `explorer.run_button.click()`, `explorer.wait()`, `explorer.stop_button.click()`.
    """

    def __init__(self, base: RunConfig | None = None, *, color: str = "label",
                 options: bool = False):
        alt.JupyterChart.enable_offline()  # vega bundled in: live charts need no internet
        base = resolve(base or RunConfig(dataset="mnist", epochs=3))
        self.base, self.color, self.show_options = base, color, options
        self.rule_base = base  # the base with the chosen rule's settings that have no control
        self._drawn_kind = None  # the second chart's kind on screen
        self._before_mirroring = (base.f_distribution, base.sign)
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
            control.observe(lambda _: self._changed(), names="value")
        self.run_button = W.Button(description="Run", button_style="success", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="warning", icon="stop",
                                    disabled=True)
        self.clear_button = W.Button(description="Clear runs", icon="trash")
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.clear_button.on_click(lambda _: self.clear())
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress")
        self.status = W.HTML("ready").add_class("pepita-status")
        # the rule's own settings; settings that cannot learn
        self.notes = W.HTML("").add_class("pepita-notes")
        self.curves = alt.JupyterChart(_placeholder("test accuracy"), embed_options=EMBED_OPTIONS)
        self.alignment = alt.JupyterChart(_placeholder(SECOND_TITLES[self._kind()]),
                                          embed_options=EMBED_OPTIONS)
        self.widget = self._layout()
        self._changed()

    # ---------------------------------------------------------------- controls

    def _make_controls(self, base: RunConfig) -> dict[str, W.Widget]:
        c = make_controls(base, self.max_depth)
        c["depth"].observe(lambda _: self._show_widths(), names="value")
        c["rule"].observe(self._on_rule, names="value")  # before the others: moves sliders
        c["weight_mirroring"].observe(self._on_mirroring, names="value")
        return c

    def _show_widths(self) -> None:
        show_widths(self.controls, self.max_depth)

    def _on_rule(self, change) -> None:
        """A rule chosen: the sliders move to its settings (`rules.defaults`), the settings
        without a control (biases, lr schedule) go with the config it builds."""
        values = switched_settings(change["new"], self.base)
        self.rule_base = dataclasses.replace(self.base, rule=change["new"], **{
            k: v for k, v in values.items() if k not in self.controls})
        for k, v in values.items():
            if k in self.controls:
                self.controls[k].value = v

    def _on_mirroring(self, change) -> None:
        """Mirroring needs a factorised F and x - F e: ticking it sets both at once (where
        they are seen); unticking gives back what they were."""
        c = self.controls
        if change["new"]:
            self._before_mirroring = (c["f_distribution"].value, c["sign"].value)
            c["f_distribution"].value, c["sign"].value = "factorised", -1.0
        else:
            c["f_distribution"].value, c["sign"].value = self._before_mirroring

    def _changed(self) -> None:
        """After any control changed: show the controls the rule reads, clear a fixed
        error, say what the settings mean (the rule's own, or why they cannot learn), and
        give the second chart its rule's kind."""
        rule, mirroring = self.controls["rule"].value, self.controls["weight_mirroring"].value
        for name, control in self.controls.items():
            if not name.startswith("width_") and name != "depth":
                control.layout.display = None if read_by(rule, name, mirroring) else "none"
        self._recheck()
        self._update_notes()
        if not self.running and self._kind() != self._drawn_kind:
            self.redraw()

    def _update_notes(self) -> None:
        try:
            config = self.config()
        except ConfigError:
            self.notes.value = ""
            return
        self.notes.value = "<br>".join(notes_html(config))

    def _kind(self) -> str:
        """The second chart's kind: of the run in progress, else of the controls."""
        if self.running and self.started_config is not None:
            return second_chart_kind(self.started_config.rule,
                                     self.started_config.weight_mirroring)
        if not hasattr(self, "controls"):
            return second_chart_kind(self.base.rule, self.base.weight_mirroring)
        return second_chart_kind(self.controls["rule"].value,
                                 self.controls["weight_mirroring"].value)

    def _layout(self) -> W.Widget:
        c = self.controls
        self._show_widths()
        left = W.VBox(column_style(c, ("rule", "dataset", "f_scale", "lr", "sign",
                                       "output_error", "keep_prob"), "left"))
        right = W.VBox(column_style(c, ["depth"] + [f"width_{l + 1}"
                                                    for l in range(self.max_depth)]
                                    + ["batch_size", "epochs", "seed", "subset"], "right"))
        buttons = W.HBox([self.run_button, self.stop_button, self.clear_button, self.progress])
        # a wrapping row: side by side when the panel is wide enough, else one below the other
        charts = W.Box([self.curves, self.alignment],
                       layout=W.Layout(display="flex", flex_flow="row wrap", width="100%"))
        columns = [left, right]
        if self.show_options:
            columns.append(W.VBox([W.HTML("<b>after the paper</b> (ICLR 2024 PEPITA, FF)")]
                                  + column_style(c, OPTION_FIELDS, "options")))
        controls = W.Box(columns, layout=W.Layout(display="flex", flex_flow="row wrap"))
        return W.VBox([controls, buttons, self.status, self.notes, charts],
                      layout=W.Layout(max_width="100%"))

    def config(self) -> RunConfig:
        """The config the controls show (raises ConfigError for a bad combination)."""
        return config_from_controls(self.controls, self.rule_base)

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
                    f" (the charts show it up to there; {plural(epochs, 'complete epoch')})")
            elif "not_learned" in run.history.attrs:  # completed, at chance: not "success"
                self.progress.value, self.progress.bar_style = self.progress.max, "warning"
                self.status.value = (
                    "<b style='color:#b45f06'>completed but " + html.escape(
                        run.history.attrs["not_learned"]) + "</b>"
                    f" ({config.rule}: test accuracy {percent(run.test_acc)} after "
                    f"{plural(epochs, 'epoch')})")
            else:
                if run.status == "completed":
                    self.progress.value, self.progress.bar_style = self.progress.max, "success"
                self.status.value = (f"{run.status}: {config.rule}, test accuracy "
                                     f"{percent(run.test_acc)} after {plural(epochs, 'epoch')}")
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
        """A run's history with a unique name that says its rule, sign and options (what
        differs between overlaid runs) and a `label` coordinate."""
        name = run_label(history, len(self.histories) + 1)
        return history.assign_coords(run=[name], label=("run", [name]),
                                     diverged_at=("run", [math.nan]))

    def redraw(self, live: xr.Dataset | None = None) -> None:
        shown = self.histories + ([live] if live is not None else [])
        kind = self._drawn_kind = self._kind()
        if not shown:
            self.curves.chart = _placeholder("test accuracy")
            self.alignment.chart = _placeholder(SECOND_TITLES[kind])
            return
        ds = xr.concat(shown, dim="run", join="outer", combine_attrs="drop_conflicts")
        # each run's colour picked once, from all runs, for both charts (each chart shows
        # its own subset: left to vega, a run's colour would follow its place in each)
        size = dict(width=CHART_WIDTH, height=CHART_HEIGHT,
                    colors=plots.run_colors(np.ravel(ds[self.color].values)))
        self.curves.chart = _fit(plots.learning_curves(ds, metric="test_acc", color=self.color,
                                                       **size))
        self.alignment.chart = _fit(self._second_chart(ds, kind, size))

    def _second_chart(self, ds: xr.Dataset, kind: str, size: dict):
        """The chart that means something for the rule being set up (`charts.SECOND_CHARTS`)
        over the runs it applies to; the others are said in the subtitle."""
        kinds = run_kinds(ds)
        keep = np.flatnonzero([shows(kind, k) for k in kinds])
        if not len(keep):
            return _placeholder(SECOND_TITLES[kind], "no run of this kind yet")
        sub = ds.isel(run=keep)
        note = hidden_runs([str(r) for r in ds["rule"].values], kinds, kind)
        if kind == "f_angle":
            return plots.f_alignment(sub, color=self.color, subtitle=note, **size)
        if kind in ("mirror_angle", "bp_angle"):
            return plots.per_layer_curves(sub, kind, SECOND_TITLES[kind], color=self.color,
                                          subtitle=note, **size)
        # a loss over epochs
        return plots.learning_curves(sub, metric=kind, color=self.color, subtitle=note,
                                     title=SECOND_TITLES[kind], **size)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


def explorer(*, options: bool = False, **base) -> Explorer:
    """An `Explorer` starting from `RunConfig(**base)` with its rule's own settings where
    `base` does not set them (with `options`, the ICLR 2024 PEPITA and Forward-Forward
    controls too); display it as a notebook cell's value."""
    config = resolve(RunConfig(**base)) if base else None
    return Explorer(config, options=options)


def notes_html(config: RunConfig) -> list[str]:
    """What the explorer says under its status before a run: the rule's own settings in use
    (and those changed), and why the settings are unlikely to learn (`advice.unlearnable`)."""
    said = settings_attrs(config)
    lines = []
    if "rule_settings" in said:
        lines.append(f"{config.rule}'s own settings: {html.escape(said['rule_settings'])}")
    if "rule_settings_overridden" in said:
        lines.append(f"changed from {config.rule}'s own: "
                     f"{html.escape(said['rule_settings_overridden'])}")
    lines += ["<b style='color:#b45f06'>unlikely to learn:</b> " + html.escape(reason)
              for reason in unlearnable(config)]
    return lines
