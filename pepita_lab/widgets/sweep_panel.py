"""The sweep panel: a small F scale x lr sweep launched from widgets (in the background,
in-process or on a local Dask cluster) and its stability map; thin over `sweep.run_sweep` and
`plots.accuracy_map`.
"""

from __future__ import annotations

import html
import threading

import altair as alt
import ipywidgets as W
import xarray as xr

from .. import plots
from ..config import ConfigError, RunConfig
from ..rules import validate
from .charts import _placeholder
from .controls import CONTROL_WIDTH, STYLE


class SweepPanel:
    """Widgets to launch a small F scale x lr sweep (in the background, in-process or on a
    local Dask cluster) and see its stability map; a thin layer over `sweep.run_sweep`."""

    def __init__(self, base: RunConfig | None = None, *, out: str = "../runs/sweep"):
        alt.JupyterChart.enable_offline()
        self.base = validate(base or RunConfig(dataset="mnist", epochs=1))
        # labels whole ("Dask workers" was cut at ipywidgets' default) and the out path wide
        styled = dict(style=STYLE, layout=W.Layout(width=CONTROL_WIDTH))
        self.f_scales = W.Text("0.01, 0.05, 0.3, 1", description="F scales", **styled)
        self.lrs = W.Text("0.01, 0.1", description="lrs", **styled)
        self.seeds = W.IntSlider(value=1, min=1, max=5, description="seeds", **styled)
        self.epochs = W.IntSlider(value=self.base.epochs, min=1, max=100, description="epochs",
                                  **styled)
        self.workers = W.IntSlider(value=0, min=0, max=8, description="Dask workers", **styled)
        self.out = W.Text(out, description="out", style=STYLE,
                          layout=W.Layout(width=f"max({CONTROL_WIDTH}, {len(out) + 18}ch)"))
        self.run_button = W.Button(description="Run sweep", button_style="success", icon="play")
        self.run_button.on_click(lambda _: self.start())
        self.status = W.HTML("ready")
        self.chart = alt.JupyterChart(_placeholder("final accuracy", "no sweep yet"),
                                      embed_options=plots.EMBED_OPTIONS)
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.result: xr.Dataset | None = None
        self.widget = W.VBox([W.HBox([W.VBox([self.f_scales, self.lrs, self.out]),
                                      W.VBox([self.seeds, self.epochs, self.workers])]),
                              W.HBox([self.run_button, self.status]), self.chart])

    def spec(self):
        from ..sweep import SweepSpec

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
        from ..sweep import flatten, run_sweep

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
