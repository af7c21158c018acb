"""What the notebooks share: the quick-mode switch, where runs go, charts as widgets.

Every notebook's first code cell calls `start()`, which says what it loads while it loads it,
where the data come from, and shows the **quick-mode switch**. In quick mode `pick(full,
smoke)` returns its second value, so the notebook runs top to bottom in seconds on tiny
settings. The switch starts on when `PEPITA_LAB_SMOKE=1` is set (the test suite sets it),
else off; flipping it applies to the cells run after it. Quick and full runs go to different
folders (`runs_dir()`), and `train_once` never overwrites a finished run.

This module imports nothing heavy at the top, so `start()` can speak before torch loads.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_QUICK = {"on": os.environ.get("PEPITA_LAB_SMOKE", "").strip() not in ("", "0", "false",
                                                                       "False")}
_SWITCH = None  # the one switch widget, shown again (same state) when the first cell reruns


def quick() -> bool:
    """Whether quick mode is on (the switch, or PEPITA_LAB_SMOKE=1 before it is touched)."""
    return _QUICK["on"]


def set_quick(on: bool) -> None:
    """Turn quick mode on or off (as the switch does)."""
    _QUICK["on"] = bool(on)
    if _SWITCH is not None and _SWITCH.children[0].value != bool(on):
        _SWITCH.children[0].value = bool(on)


def pick(full, smoke):
    """`smoke` in quick mode, else `full`."""
    return smoke if quick() else full


def runs_dir() -> Path:
    """Where notebooks keep their run folders: `$PEPITA_LAB_RUNS` (else ../runs, the
    repository's runs/ when JupyterLab serves notebooks/), then `quick` or `full`, so a quick
    run never lands beside (or on) a full one."""
    return Path(os.environ.get("PEPITA_LAB_RUNS", "../runs")) / ("quick" if quick() else "full")


def _mode_text() -> str:
    if quick():
        what = ("<b>quick run</b>: tiny settings (a subset of the data, one or two epochs) "
                "so every cell runs in seconds; the numbers say little")
    else:
        what = "<b>full settings</b>: the times the notebook's introduction gives"
    return (f"{what}. Runs go to <code>{runs_dir()}</code>. The switch applies to the cells "
            "run after it (Run All: to the whole notebook).")


def quick_switch():
    """The quick-mode switch (an ipywidgets ToggleButtons with a line saying what it does)."""
    global _SWITCH
    if _SWITCH is None:
        import ipywidgets as W

        toggle = W.ToggleButtons(options=[("full settings", False), ("quick run", True)],
                                 value=quick(), description="mode",
                                 tooltips=["the notebook's real settings",
                                           "tiny settings: the whole notebook in seconds"])
        toggle.add_class("widget-inline-hbox")  # the label beside the buttons
        info = W.HTML(_mode_text())

        def flipped(change):
            _QUICK["on"] = bool(change["new"])
            info.value = _mode_text()

        toggle.observe(flipped, names="value")
        _SWITCH = W.VBox([toggle, info])
    return _SWITCH


def start() -> None:
    """The first cell of a notebook: load the lab (saying so while it loads), set charts up
    to render offline, say where the data come from, and show the quick-mode switch."""
    from IPython.display import display

    t0 = time.perf_counter()
    print("Loading pepita_lab: torch, xarray and altair (a few seconds the first time) ...",
          flush=True)
    import torch

    from . import __version__, api  # noqa: F401  (api: the training side, loaded now)
    from .data import available_datasets, resolve_data_dir
    from .devices import resolve_device

    setup_charts()
    data = resolve_data_dir()
    found = available_datasets(data)
    print(f"Loaded in {time.perf_counter() - t0:.1f} s: pepita_lab {__version__}, torch "
          f"{torch.__version__}, training on {resolve_device('auto')}.")
    print(f"Datasets from {data}: {', '.join(found) if found else 'none yet'}"
          + ("" if found else " (run `make data`, or set PEPITA_LAB_DATA)") + "; synthetic "
          "needs no files.")
    display(quick_switch())


def train_once(config, name: str, **kwargs):
    """Train `config` into the run folder `runs_dir() / name`, or load the run there if it
    finished with the same settings. A folder holding anything else (other settings, an
    unfinished run) is never overwritten: the run goes to `name-2`, `name-3`, ... Says which
    in one line. `kwargs` are `pepita_lab.train`'s."""
    from .api import train
    from .rules import validate
    from .store import load_run

    config = validate(config)
    base = runs_dir() / name
    path, n = base, 1
    while path.exists() and any(path.iterdir()):
        try:
            run = load_run(path)
        except Exception:  # noqa: BLE001  (unfinished or damaged: not ours to reuse)
            run = None
        if (run is not None and run.status == "completed"
                and run.config.identity() == config.identity()):
            print(f"{name}: loaded the finished run in {path} (same settings; delete the "
                  "folder to train it again)")
            return run
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    note = f" ({base} holds another run, kept)" if n > 1 else ""
    print(f"{name}: training into {path}{note}", flush=True)
    return train(config, out=path, **kwargs)


def plural(n: int, word: str) -> str:
    """`n` and `word`, with an s unless `n` is 1: "1 epoch", "2 epochs"."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def outcome_line(run, label: str | None = None) -> str:
    """One line on a finished run: its final test accuracy in %, after how many epochs, and,
    when it diverged or did not learn, that and why (the run's record says)."""
    h = run.history
    line = (f"{label or run.config.rule}: test accuracy {100 * run.test_acc:.2f} % after "
            f"{plural(int(h.epoch[-1]), 'epoch')}")
    if run.status == "diverged":
        return line + f"; diverged: {h.attrs.get('diverged_reason', '?')}"
    if "not_learned" in h.attrs:
        return line + f"; {h.attrs['not_learned']}"
    return line


def setup_charts() -> None:
    """Show altair charts as widgets with vega bundled in (no internet needed, and fast: the
    default renderer loads vega from a CDN; the plain offline one re-validates every spec),
    drawn on a canvas (`plots.EMBED_OPTIONS` says why)."""
    import altair as alt
    from IPython import get_ipython

    from .plots import EMBED_OPTIONS

    alt.JupyterChart.enable_offline()
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.mimebundle_formatter.for_type(
            alt.TopLevelMixin,
            lambda chart: alt.JupyterChart(chart, embed_options=EMBED_OPTIONS)
            ._repr_mimebundle_())
