"""The explorer driven from Python as a user drives it with the mouse, and the layering rule
that keeps the training core free of widgets and charts."""

import re
import subprocess
import sys
import time

import pytest

from pepita_lab import plots
from pepita_lab.config import RunConfig
from pepita_lab.widgets import CHART_WIDTH, Explorer


def wait_for(predicate, timeout=60.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def chart_rows(jchart) -> int:
    spec = jchart.chart.to_dict()
    return sum(len(rows) for rows in spec.get("datasets", {}).values())


@pytest.fixture
def explorer():
    ex = Explorer(RunConfig(dataset="synthetic", epochs=2, hidden=(32,), device="cpu"))
    yield ex
    ex.stop()
    ex.wait(30)


def test_run_uses_exactly_the_settings_shown(explorer):
    c = explorer.controls
    c["f_scale"].value = 0.2
    c["lr"].value = 0.03
    c["depth"].value = 2
    c["width_1"].value = 64
    c["width_2"].value = 16
    c["epochs"].value = 400  # long enough to press Stop while it runs
    c["sign"].value = -1.0
    c["seed"].value = 3
    c["subset"].value = 2000
    shown = explorer.config()
    explorer.run_button.click()
    assert explorer.running and explorer.run_button.disabled
    wait_for(lambda: explorer.progress.value > 0 and chart_rows(explorer.curves) > 2)
    explorer.stop_button.click()
    explorer.wait(30)
    assert not explorer.running
    run = explorer.runs[-1]
    assert run.status == "stopped"
    assert run.config == shown == explorer.started_config
    assert (run.config.f_scale, run.config.lr, run.config.hidden) == (0.2, 0.03, (64, 16))
    assert (run.config.sign, run.config.seed, run.config.subset) == (-1.0, 3, 2000)
    assert 1 <= int(run.history.epoch[-1]) < 400
    assert "stopped" in explorer.status.value


def test_finished_runs_are_overlaid_and_cleared(explorer):
    for f_scale in (0.05, 0.5):
        explorer.controls["f_scale"].value = f_scale
        explorer.run_button.click()
        explorer.wait(60)
    assert [r.config.f_scale for r in explorer.runs] == [0.05, 0.5]
    assert explorer.progress.value == explorer.progress.max
    assert explorer.progress.bar_style == "success"
    spec = explorer.curves.chart.to_dict()
    runs = {row["run"] for rows in spec["datasets"].values() for row in rows if "run" in row}
    assert len(runs) == 2
    # two charts of this size, legends below, wrapping when the panel is narrow: never cut off
    for chart in (explorer.curves, explorer.alignment):
        spec = chart.chart.to_dict()
        width = spec.get("width") or spec["layer"][0]["width"]
        assert width == CHART_WIDTH and spec["config"]["legend"]["orient"] == "bottom"
    assert explorer.widget.children[-1].layout.flex_flow == "row wrap"
    explorer.clear_button.click()
    assert explorer.runs == [] and chart_rows(explorer.curves) <= 1


def test_a_bad_setting_is_shown_in_the_widget(explorer):
    explorer.controls["subset"].value = -5
    explorer.run_button.click()
    assert not explorer.running
    assert "subset" in explorer.error and "-5" in explorer.error
    assert "error" in explorer.status.value


def test_a_fixed_setting_clears_its_error(explorer):
    explorer.controls["subset"].value = -5
    explorer.run_button.click()
    assert "subset=-5" in explorer.error
    explorer.controls["subset"].value = -7  # still wrong: the message follows the setting
    assert "subset=-7" in explorer.error and "subset=-7" in explorer.status.value
    explorer.controls["subset"].value = 100
    assert explorer.error is None and "error" not in explorer.status.value
    assert explorer.status.value == "ready: the settings are valid"


def test_a_diverged_run_says_where_and_why(explorer):
    explorer.controls["lr"].value = 1.0
    explorer.controls["f_scale"].value = 10.0
    explorer.run_button.click()
    explorer.wait(60)
    run = explorer.runs[-1]
    assert run.status == "diverged"
    step = run.history.attrs["diverged_step"]
    assert re.match(rf"<b[^>]*>diverged in epoch 1, step {step}: mean batch loss \S+ nats "
                    r"\(limit 20\); try a smaller lr or F scale</b>", explorer.status.value)
    assert explorer.progress.value == explorer.progress.max
    assert explorer.progress.bar_style == "danger"
    for chart in (explorer.curves, explorer.alignment):  # drawn up to the divergence
        spec = chart.chart.to_dict()
        (marks,) = [rows for rows in spec["datasets"].values() if "x_end" in rows[0]]
        assert marks[0]["x_end"] == pytest.approx(step / explorer.steps_per_epoch)
        assert marks[0]["epoch"] == 0 and "'diverged'" in str(spec)
    explorer.controls["lr"].value = 0.01  # a settings change does not hide what happened
    assert "diverged in epoch 1" in explorer.status.value


def test_an_error_inside_the_training_thread_is_shown(explorer, tmp_path, monkeypatch):
    monkeypatch.setenv("PEPITA_LAB_DATA", str(tmp_path))
    explorer.base = explorer.base.replace(download=False)
    explorer.controls["dataset"].value = "mnist"
    explorer.run_button.click()
    explorer.wait(60)
    assert "DataNotFoundError" in explorer.error and str(tmp_path) in explorer.error
    assert not explorer.run_button.disabled  # ready for the next try
    explorer.controls["seed"].value = 5  # not a fix: the error stays until the next Run
    assert "DataNotFoundError" in explorer.status.value


def test_training_core_imports_no_widgets_or_charts():
    code = ("import sys, pepita_lab, pepita_lab.training, pepita_lab.api, pepita_lab.cli, "
            "pepita_lab.analysis, pepita_lab.traces, pepita_lab.records; "
            "bad = [m for m in ('ipywidgets', 'altair', 'anywidget') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_sweep_panel_runs_a_small_sweep_and_draws_its_map(tmp_path):
    from pepita_lab.widgets import SweepPanel

    panel = SweepPanel(RunConfig(dataset="synthetic", hidden=(8,), epochs=1, device="cpu",
                                 subset=256), out=str(tmp_path / "S"))
    panel.f_scales.value, panel.lrs.value = "0.01, 0.1", "0.05"
    panel.run_button.click()
    panel.wait(120)
    assert panel.error is None, panel.error
    assert panel.result.sizes["f_scale"] == 2 and (tmp_path / "S" / "sweep.nc").is_file()
    assert chart_rows(panel.chart) == 2  # two cells in the stability map
    panel.lrs.value = "fast"
    panel.run_button.click()
    assert "expected numbers" in panel.error


def test_sweep_panel_shows_bad_f_scales_instead_of_raising(tmp_path):
    from pepita_lab.widgets import SweepPanel

    panel = SweepPanel(RunConfig(dataset="synthetic", hidden=(8,), epochs=1, device="cpu"),
                       out=str(tmp_path / "S"))
    panel.f_scales.value = "-0.5, <b>0.1</b>"
    panel.start()  # no exception out of start()
    assert "expected numbers" in panel.error and "<b>0.1</b>" not in panel.status.value
    panel.f_scales.value = "-0.5, 0.1"
    panel.start()
    assert "f_scale=-0.5" in panel.error and panel.thread is None
    assert not (tmp_path / "S").exists()


def test_explorer_keeps_every_layer_of_a_deeper_base_config():
    deep = RunConfig(dataset="synthetic", hidden=(16, 15, 14, 13, 12, 11), epochs=1,
                     device="cpu")
    ex = Explorer(deep)
    assert ex.config().hidden == deep.hidden


def test_explorer_names_the_field_of_an_overflowing_seed_and_escapes_errors(explorer):
    explorer.controls["seed"].value = 2**64
    explorer.run_button.click()
    assert not explorer.running and "seed=" in explorer.error
    assert "<" not in explorer.error or "&lt;" in explorer.status.value


# ------------------------------------------------ the explorer follows the rule (issue 24)


def shown(ex, name) -> bool:
    return ex.controls[name].layout.display != "none"


def test_choosing_a_rule_moves_the_sliders_to_its_settings_and_back():
    ex = Explorer(RunConfig(dataset="synthetic", epochs=1, hidden=(32,), device="cpu"),
                  options=True)
    c = ex.controls
    c["rule"].value = "ff"
    assert (c["lr"].value, c["batch_size"].value, c["keep_prob"].value) == (0.001, 50, 1.0)
    assert c["weight_decay"].value == 3e-4
    config = ex.config()
    assert config.bias and config.lr_milestones == (60, 80)  # the settings without a control
    assert "ff's own settings: bias=True lr=0.001" in ex.notes.value
    # F's controls and PEPITA's options are hidden; FF's threshold shown
    assert not any(shown(ex, k) for k in ("f_scale", "sign", "output_error", "normalize",
                                          "weight_mirroring", "f_distribution"))
    assert shown(ex, "ff_threshold") and "FF's own loss" in str(ex.alignment.chart.to_dict())
    c["lr"].value = 0.003  # a value the user sets wins
    assert ex.config().lr == 0.003 and "lr=0.003 (ff&#x27;s: 0.001)" in ex.notes.value
    c["rule"].value = "pepita"
    config = ex.config()
    assert (config.lr, config.batch_size, config.keep_prob, config.bias) == (0.1, 64, 0.9,
                                                                            False)
    assert shown(ex, "f_scale") and not shown(ex, "ff_threshold") and ex.notes.value == ""


def test_ticking_mirroring_sets_a_factorised_f_and_x_minus_f_e_at_once():
    ex = Explorer(RunConfig(dataset="synthetic", epochs=3, hidden=(32,), device="cpu"),
                  options=True)
    c = ex.controls
    assert not shown(ex, "mirror_lr")
    c["weight_mirroring"].value = True
    assert (c["f_distribution"].value, c["sign"].value) == ("factorised", -1.0)  # before Run
    assert shown(ex, "mirror_lr") and shown(ex, "premirror_epochs")
    assert "Weight mirroring" in str(ex.alignment.chart.to_dict())
    c["weight_mirroring"].value = False
    assert (c["f_distribution"].value, c["sign"].value) == ("uniform", 1.0)
    assert "Weight mirroring" not in str(ex.alignment.chart.to_dict())


def test_the_explorer_says_unlearnable_settings_before_and_after_a_run():
    ex = Explorer(RunConfig(dataset="synthetic", epochs=1, hidden=(32,), device="cpu"),
                  options=True)
    c = ex.controls
    c["weight_mirroring"].value = True  # pre-mirroring 1 of 1 epochs: weights never train
    assert "unlikely to learn:</b> pre-mirroring takes 1 of the 1 epochs" in ex.notes.value
    ex.run_button.click()
    ex.wait(120)
    assert ex.runs[-1].status == "completed" and ex.progress.bar_style == "warning"
    assert "completed but did not learn: ended at" in ex.status.value
    assert "likely cause: pre-mirroring takes 1 of the 1 epochs" in ex.status.value
    assert "diverged" not in ex.status.value
    c["epochs"].value = 2
    assert "unlikely" not in ex.notes.value


def test_legends_name_what_differs_between_overlaid_runs(explorer):
    c = explorer.controls
    for sign in (1.0, -1.0):
        c["sign"].value = sign
        explorer.run_button.click()
        explorer.wait(60)
    c["rule"].value = "ff"
    explorer.run_button.click()
    explorer.wait(60)
    names = [str(h.run.item()) for h in explorer.histories]
    assert "x+Fe F=0.05" in names[0] and "x-Fe F=0.05" in names[1]
    assert names[2].startswith("#3 ff lr=0.001") and "F=" not in names[2]
    assert "2 pepita runs not shown" in str(explorer.alignment.chart.to_dict())


def run_colors(spec) -> dict[str, str]:
    """Each value's colour in a chart's spec, from every colour encoding in it; fails where a
    colour encoding leaves its colours to vega (no explicit domain and range)."""
    found: dict[str, str] = {}

    def walk(node):
        if isinstance(node, dict):
            color = node.get("encoding", {}).get("color")
            if isinstance(color, dict) and "field" in color:
                scale = color.get("scale", {})
                assert "domain" in scale and "range" in scale, color
                for value, colour in zip(scale["domain"], scale["range"]):
                    assert found.setdefault(value, colour) == colour, (value, found)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(spec)
    return found


def test_a_run_keeps_its_colour_in_both_charts_and_hidden_runs_are_named():
    ex = Explorer(RunConfig(dataset="synthetic", epochs=1, hidden=(32,), device="cpu"))
    c = ex.controls
    for rule, mirroring in (("pepita", False), ("ff", False), ("pepita", True)):
        c["rule"].value = rule
        c["weight_mirroring"].value = mirroring
        ex.run_button.click()
        ex.wait(120)
        left, right = (run_colors(chart.chart.to_dict()) for chart in (ex.curves, ex.alignment))
        assert set(right) <= set(left)  # the second chart shows the runs of its kind only
        assert {run: left[run] for run in right} == right, (left, right)
        assert re.search(r"test accuracy \d+\.\d\d % after 1 epoch\b", ex.status.value)
    assert len(set(left.values())) == 3  # three runs, three colours
    # the run order sets the colours: #1 keeps the palette's first, whatever a chart shows
    assert [left[str(h.run.item())] for h in ex.histories] == list(plots.PALETTE[:3])
    spec = ex.alignment.chart.to_dict()
    assert "1 pepita run without mirroring and 1 ff run not shown" in str(spec)
    assert "of other rules" not in str(spec)
    (dash,) = [layer["encoding"]["strokeDash"] for layer in spec["layer"][0]["layer"]
               if "strokeDash" in layer["encoding"]]
    assert dash["legend"]["symbolType"] == "stroke"
    assert dash["legend"]["symbolStrokeColor"] not in ("transparent", None)
    # the epoch axes of the pair start at the same epoch
    assert (spec["layer"][0]["layer"][0]["encoding"]["x"]["scale"]["domain"][0]
            == ex.curves.chart.to_dict()["encoding"]["x"]["scale"]["domain"][0] == 0)
