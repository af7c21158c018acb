"""Charts: every function's spec validates (altair validates in `to_dict`), keeps each inline
dataset under altair's 5000-row limit, and renders through vl-convert; the package needs no torch.

Histories come from real tiny trainings (synthetic data); image-shaped activations (MNIST- and
CIFAR-sized, 1024 units) are built by hand in the layout `records.activations_dataset` writes.
"""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import pepita_lab as pl
from pepita_lab import plots

PLOTS_FILES = sorted(Path(plots.__file__).parent.glob("*.py"))  # the package's modules
TINY = dict(dataset="synthetic", hidden=(32, 16), epochs=2, batch_size=32, lr=0.05,
            device="cpu", subset=512)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Stored tiny runs: a 2x2 F-scale x lr sweep (F scale 5 with lr 5 diverges), an x - F e
    run, a BP run and a one-hidden-layer run (different widths: padded when concatenated)."""
    root = tmp_path_factory.mktemp("runs")
    configs = [dict(f_scale=f, lr=lr) for f in (0.05, 5.0) for lr in (0.05, 5.0)]
    configs += [dict(sign=-1.0), dict(rule="bp"), dict(hidden=(24,), seed=1)]
    paths = []
    for i, c in enumerate(configs):
        pl.train(pl.RunConfig(**{**TINY, **c}), out=root / str(i), progress=False, trace_every=8)
        paths.append(root / str(i))
    return paths


@pytest.fixture(scope="module")
def history(runs):
    return pl.load_runs(runs)


@pytest.fixture(scope="module")
def activations(runs):
    # As `load_runs(runs, what="activations")`, but with coords="all", data_vars="all": with
    # xarray's defaults, concatenating runs of different depths fails (unit_2 is missing from
    # the one-layer run), and so does one of runs with different probe labels (seed 1).
    return xr.concat([pl.load_run(p).activations for p in runs], dim="run", join="outer",
                     coords="all", data_vars="all", combine_attrs="drop_conflicts")


@pytest.fixture(scope="module")
def one_run(runs):
    return pl.load_run(runs[0])


def image_activations(height, width, channels, units=1024, samples=16, epochs=(0, 1, 5)):
    """Activations of one run of an image dataset, in the layout of `activations_dataset`."""
    rng = np.random.default_rng(0)
    E, S = len(epochs), samples
    x = rng.random((1, S, height, width, channels), dtype=np.float32)
    h_diff = rng.normal(0, 0.05, (1, E, S, units)).astype(np.float32)
    h_diff[rng.random(h_diff.shape) < 0.5] = 0.0  # units off in both passes
    return xr.Dataset(
        {"x": (("run", "sample", "height", "width", "channel"), x),
         "x_err": (("run", "epoch", "sample", "height", "width", "channel"),
                   x[:, None] + rng.normal(0, 0.01, (1, E, S, height, width, channels))),
         "error": (("run", "epoch", "sample", "class"), rng.normal(0, 0.1, (1, E, S, 10))),
         "h_1": (("run", "epoch", "sample", "unit_1"), np.maximum(h_diff, 0)),
         "h_diff_1": (("run", "epoch", "sample", "unit_1"), h_diff)},
        coords={"run": ["pepita-image"], "rule": ("run", ["pepita"]),
                "dataset": ("run", ["mnist" if channels == 1 else "cifar10"]),
                "epoch": list(epochs), "sample": np.arange(S),
                "label": ("sample", rng.integers(0, 10, S)), "unit_1": np.arange(units)})


def dataset_rows(chart) -> list[int]:
    """Validate the spec and return the row count of every inline dataset in it."""
    spec = chart.to_dict()  # raises if the spec does not validate
    rows = [len(v) for v in spec.get("datasets", {}).values()]

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("values"), list) and "data" not in node:
                rows.append(len(node["values"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk({k: v for k, v in spec.items() if k != "datasets"})
    return rows


def assert_fits(chart, min_rows=1):
    rows = dataset_rows(chart)
    assert rows and max(rows) <= plots.MAX_ROWS and max(rows) >= min_rows, rows
    return rows


def subtitle(chart) -> str:
    t = chart.to_dict()["title"]
    return " | ".join(t.get("subtitle", [])) if isinstance(t, dict) else ""


# ------------------------------------------------------------------ frames and curves


def test_history_frame_is_tidy_with_run_settings(history):
    df = plots.history_frame(history, ["test_acc", "train_loss"])
    assert len(df) == history.sizes["run"] * history.sizes["epoch"]
    assert df["run"].nunique() == history.sizes["run"]  # the x - F e run shares its run id
    for col in ("run", "epoch", "test_acc", "train_loss", "rule", "f_scale", "lr", "hidden",
                "seed", "sign"):
        assert col in df.columns
    layered = plots.history_frame(history, "bp_cosine", dims=("epoch", "layer"))
    assert len(layered) == history.sizes["run"] * history.sizes["epoch"] * history.sizes["layer"]
    single = plots.history_frame(history.isel(run=0), "test_acc")  # run selected away
    assert single["rule"].tolist() == ["pepita"] * history.sizes["epoch"]
    with pytest.raises(ValueError, match="layer"):
        plots.history_frame(history, "bp_cosine")
    with pytest.raises(KeyError, match="nope"):
        plots.history_frame(history, "nope")


@pytest.mark.parametrize("kwargs", [
    {}, {"color": "lr"}, {"color": "f_scale"}, {"color": None},
    {"metric": ["test_acc", "test_loss", "train_loss"]}, {"metric": "step_probe_acc"}])
def test_learning_curves(history, kwargs):
    assert_fits(plots.learning_curves(history, **kwargs), min_rows=10)


def test_learning_curves_refuse_unknown_color(history):
    with pytest.raises(ValueError, match="learning_rate"):
        plots.learning_curves(history, color="learning_rate")


def test_long_sweeps_are_thinned_not_truncated():
    runs, epochs = 60, 101
    acc = np.random.default_rng(0).random((runs, epochs))
    h = xr.Dataset({"test_acc": (("run", "epoch"), acc)},
                   coords={"run": [f"r{i}" for i in range(runs)], "epoch": np.arange(epochs),
                           "rule": ("run", ["pepita"] * runs), "lr": ("run", np.arange(runs) / 10)})
    chart = plots.learning_curves(h, color="lr")
    (rows,) = assert_fits(chart, min_rows=2500)
    assert "one epoch in 2 shown" in subtitle(chart)
    df = plots.history_frame(h, "test_acc")
    assert rows < len(df)


def curves(acc, diverged_at=None) -> xr.Dataset:
    """A history of test accuracies, one row per run, epochs from 0 (NaN: not reached)."""
    acc = np.asarray(acc, dtype=float)
    coords = {"run": [f"r{i}" for i in range(len(acc))], "epoch": np.arange(acc.shape[1]),
              "rule": ("run", ["pepita"] * len(acc))}
    if diverged_at is not None:
        coords["diverged_at"] = ("run", np.asarray(diverged_at, dtype=float))
    return xr.Dataset({"test_acc": (("run", "epoch"), acc),
                       "f_angle": (("run", "epoch"), np.where(np.isnan(acc), np.nan, 95.0))},
                      coords=coords)


def y_scale(chart) -> dict:
    spec = chart.to_dict()
    return (spec["layer"][0] if "layer" in spec else spec)["encoding"]["y"].get("scale", {})


def drawn(chart) -> pd.DataFrame:
    (rows,) = [pd.DataFrame(v) for v in chart.to_dict()["datasets"].values()
               if "test_acc" in v[0] and "x_end" not in v[0]]
    return rows


def test_accuracy_axis_zooms_to_the_trained_epochs():
    # 96.5 % against 97.7 % after epoch 2, both near chance at epoch 0
    chart = plots.learning_curves(curves([[0.098, 0.95, 0.965], [0.11, 0.96, 0.977]]))
    lo, hi = y_scale(chart)["domain"]
    assert 0.9 < lo < 0.95 and 0.977 < hi <= 1.0 and hi - lo < 0.06  # the gap is 1/4 of it
    assert sorted(drawn(chart).epoch.unique()) == [1, 2]  # epoch 0 is below the axis
    assert "epoch 0 (9.8%-11.0%) below" in subtitle(chart)
    whole = plots.learning_curves(curves([[0.098, 0.95, 0.965]]), zoom=False)
    assert "domain" not in y_scale(whole) and len(drawn(whole)) == 3


def test_accuracy_axis_keeps_what_cannot_be_zoomed():
    one_epoch = plots.learning_curves(curves([[0.1, 0.85]]))  # nothing to zoom into yet
    assert y_scale(one_epoch)["domain"] == [0, 1] and len(drawn(one_epoch)) == 2
    # a run that diverged in its first epoch has only epoch 0: it stays on the chart
    mixed = plots.learning_curves(curves([[0.1, 0.85, 0.88], [0.07, np.nan, np.nan]]))
    assert set(drawn(mixed).run) == {"r0", "r1"} and y_scale(mixed)["domain"][0] <= 0.07


def test_a_run_ending_below_its_untrained_accuracy_fits_its_declared_size():
    # epoch 0 at 11.3 %, then 9.8 %-10.1 %: the axis zooms to the trained epochs and the point
    # above it is left out (it was drawn hundreds of px above a 200 px plot; issue 24)
    chart = plots.learning_curves(curves([[0.113, 0.098, 0.101]]), width=300, height=200)
    lo, hi = y_scale(chart)["domain"]
    spec = chart.to_dict()
    assert (spec["width"], spec["height"]) == (300, 200) and spec["mark"]["clip"] is True
    assert hi < 0.113 and all(lo <= v <= hi for v in drawn(chart).test_acc)
    assert sorted(drawn(chart).epoch.unique()) == [1, 2]
    assert "epoch 0 (11.3%) above, not drawn" in subtitle(chart)
    # below and above at once: a learned run's epoch 0 and a collapsed run's
    both = plots.learning_curves(curves([[0.09, 0.5, 0.6], [0.7, 0.45, 0.4]]))
    assert "epoch 0 (9.0%) below" in subtitle(both) and "epoch 0 (70.0%) above" in subtitle(both)


def test_a_diverged_run_is_marked_where_it_diverged():
    h = curves([[0.1, 0.85, 0.88], [0.1, 0.8, np.nan]], diverged_at=[np.nan, 1.3])
    for chart in (plots.learning_curves(h), plots.f_alignment(h)):
        spec = chart.to_dict()
        marks = [v for v in spec["datasets"].values() if "x_end" in v[0]]
        assert [(r["run"], r["epoch"], r["x_end"]) for r in marks[0]] == [("r1", 1, 1.3)]
        text = str(spec)
        assert "'diverged'" in text and "'shape': 'cross'" in text
    x = plots.learning_curves(h).to_dict()["layer"][0]["encoding"]["x"]
    assert x["scale"]["domain"] == [0.0, 2.0]
    # the mark is in view, inside the epoch it diverged in: the axis runs to that epoch's end
    # (a cross at step 4 of 16 sits a quarter in, not at the last tick; issue 24)
    x = plots.learning_curves(curves([[0.1, 0.85]], diverged_at=[1.7])).to_dict()[
        "layer"][0]["encoding"]["x"]
    assert x["scale"]["domain"] == [0.0, 2.0] and x["axis"]["values"] == [0, 1, 2]
    assert "x_end" not in str(plots.learning_curves(curves([[0.1, 0.85, 0.9]])).to_dict())


def test_legend_labels_are_not_cut():
    spec = plots.learning_curves(curves([[0.1, 0.9]] * 2), color="run").to_dict()
    assert spec["encoding"]["color"]["legend"]["labelLimit"] >= 300


def colour_of(chart) -> dict:
    """Value -> colour of a chart's colour encoding (explicit: never left to vega)."""
    spec = chart.to_dict()
    enc = (spec["layer"][0] if "layer" in spec else spec)["encoding"]["color"]
    return dict(zip(enc["scale"]["domain"], enc["scale"]["range"]))


def test_a_run_keeps_its_colour_whichever_runs_a_chart_shows():
    h = curves([[0.1, 0.5, 0.6], [0.1, 0.4, 0.7], [0.1, 0.3, 0.8]]).assign_coords(
        rule=("run", ["bp", "ff", "pepita"]))
    everything, some = colour_of(plots.learning_curves(h)), colour_of(
        plots.learning_curves(h.isel(run=[2, 1])))
    assert {k: everything[k] for k in some} == some  # by rule: each rule its own colour
    assert some["pepita"] == plots.RULE_COLORS["pepita"] and some["ff"] == plots.RULE_COLORS["ff"]
    # by run: the colours given for all runs, kept in a chart of some of them
    given = plots.run_colors(h["run"].values)
    assert list(given.values()) == list(plots.PALETTE[:3])
    sub = h.isel(run=[2])
    for chart in (plots.learning_curves(sub, color="run", colors=given),
                  plots.f_alignment(sub, color="run", colors=given)):
        assert colour_of(chart) == {"r2": given["r2"]}
    # left to the runs' order, the first run shown takes the first colour
    assert colour_of(plots.learning_curves(sub, color="run")) == {"r2": plots.PALETTE[0]}


def test_lines_drawn_under_another_are_named():
    acc = [[0.1, 0.5, 0.6], [0.1, 0.5, 0.6], [0.1, 0.4, 0.7]]
    h = curves(acc).assign_coords(f_scale=("run", [0.05, 0.3, 1.0]))
    said = subtitle(plots.learning_curves(h, color="f_scale"))
    assert "F scale 0.05 coincides with 0.3" in said and "1 " not in said
    apart = curves([[0.1, 0.5, 0.6], [0.1, 0.5, 0.62], [0.1, 0.4, 0.7]]).assign_coords(
        f_scale=("run", [0.05, 0.3, 1.0]))
    assert "coincide" not in subtitle(plots.learning_curves(apart, color="f_scale"))
    on_off = h.isel(run=[0, 1]).assign_coords(weight_mirroring=("run", [0, 1]))
    assert "weight mirroring off coincides with on" in subtitle(
        plots.learning_curves(on_off, color="weight_mirroring"))
    named = h.assign_coords(label=("run", ["#1 pepita F=0.05", "#2 pepita F=0.3", "#3 bp"]))
    assert "#1 coincides with #2" in subtitle(plots.learning_curves(named, color="label"))
    frame = pd.DataFrame({"step": ["bp", "fa", "dfa", "drtp", "pepita"] * 2,
                          "x": [1] * 5 + [8] * 5, "y": [1, 1, 1, 1, 2, 8, 8, 8, 8, 30]})
    assert plots.coinciding(frame, "y", "step", ["x"]) == [["bp", "fa", "dfa", "drtp"]]
    assert plots.coinciding_note(None, frame, "y", "step", ["x"], log=True) == (
        "bp, fa and dfa coincide with drtp")


def test_memory_chart_names_steps_drawn_under_another():
    from pepita_lab.plots.memory import memory_chart

    steps = ["bp", "fa", "dfa", "drtp", "pepita"]
    rows = [{"net": net, "batch_size": b, "step": s, "macs_counted": 1,
             "peak_bytes_measured": b * (3 if s == "pepita" else 1) * 2**20 * (
                 1 + 0.2 * k if net == "conv" else 1),  # conv: every step apart
             "peak_vs_bp": 3.0 if s == "pepita" else 1.0}
            for net in ("1x8", "conv") for b in (1, 64) for k, s in enumerate(steps)]
    spec = memory_chart(pd.DataFrame(rows)).to_dict()
    assert spec["title"]["subtitle"] == ("lines drawn one under another: 1x8: bp, fa and dfa "
                                         "coincide with drtp")
    colour = spec["vconcat"][0]["spec"]["encoding"]["color"]["scale"]
    assert dict(zip(colour["domain"], colour["range"]))["pepita"] == plots.RULE_COLORS["pepita"]


def test_the_layer_legend_draws_each_dash_in_a_visible_stroke(history):
    import vl_convert as vlc

    chart = plots.mirror_angle_curves(history.assign(
        mirror_angle=history["bp_angle"]).isel(run=[0, 1]))
    svg = vlc.vegalite_to_svg(chart.to_dict())
    legend = svg[svg.index("titled 'layer l (last = output)'"):]
    legend = legend[:legend.index("role-legend-title")]
    symbols = [m for m in legend.split("<path")[1:] if 'd="M-' in m]  # the legend's strokes
    assert len(symbols) == history.sizes["layer"]
    for symbol in symbols:
        stroke = symbol.split('stroke="')[1].split('"')[0] if 'stroke="' in symbol else None
        assert stroke not in (None, "transparent", "none"), symbol
    dashes = {symbol.split('stroke-dasharray="')[1].split('"')[0] for symbol in symbols}
    assert len(dashes) == len(symbols)  # each layer its own dash, as its line


def test_ff_loss_axis_says_what_is_summed():
    h = curves([[0.1, 0.5, 0.6]]).assign_coords(rule=("run", ["ff"]))
    h["train_loss"] = h["test_acc"] * 10
    y = plots.learning_curves(h, "train_loss").to_dict()["encoding"]["y"]["title"]
    assert "goodness" in " ".join(y) and "summed over layers" in " ".join(y)
    assert plots.LABELS["train_loss"] in str(plots.learning_curves(
        h.assign_coords(rule=("run", ["pepita"])), "train_loss").to_dict()["encoding"]["y"])


def test_charts_of_one_history_start_at_the_same_epoch():
    h = curves([[0.1, 0.5, 0.6]]).assign_coords(rule=("run", ["ff"]))
    h["train_loss"] = h["test_acc"].where(h.epoch > 0)  # no training loss before training
    for metric in ("test_acc", "train_loss"):
        x = plots.learning_curves(h, metric).to_dict()["encoding"]["x"]
        assert x["scale"]["domain"][0] == 0, (metric, x)


def test_notebook_charts_draw_on_a_canvas():
    # SVG gradient ids restart in every chart widget: a legend showed another chart's colours
    assert plots.EMBED_OPTIONS["renderer"] == "canvas"


@pytest.mark.parametrize("kind", ["cosine", "angle"])
def test_bp_alignment(history, one_run, kind):
    assert_fits(plots.bp_alignment(history, kind), min_rows=10)
    assert "facet" not in plots.bp_alignment(one_run.history, kind).to_dict()
    assert_fits(plots.bp_alignment(one_run.history, kind, steps=True), min_rows=10)


def test_bp_alignment_refuses_unknown_kind(history):
    with pytest.raises(ValueError, match="kind"):
        plots.bp_alignment(history, "sine")


def test_f_alignment_colors_by_sign_when_it_varies(history, one_run):
    spec = plots.f_alignment(history).to_dict()
    assert spec["layer"][0]["encoding"]["color"]["field"] == "sign"
    assert plots.f_alignment(one_run.history).to_dict()["layer"][0]["encoding"]["color"][
        "field"] == "rule"
    assert_fits(plots.f_alignment(history), min_rows=10)
    assert 90.0 in [r["y"] for rows in spec["datasets"].values() for r in rows if "y" in r]


def test_accuracy_map_averages_and_marks_diverged_cells(history):
    chart = plots.accuracy_map(history.where(history.rule == "pepita", drop=True))
    assert_fits(chart)
    (cells,) = [pd.DataFrame(v) for v in chart.to_dict()["datasets"].values()]
    assert len(cells) == 4  # 2 F scales x 2 lrs
    big = cells[(cells.f_scale == 5.0) & (cells.lr == 5.0)]
    assert big.all_diverged.item() and big.text.item() == "diverged"
    base = cells[(cells.f_scale == 0.05) & (cells.lr == 0.05)]
    assert base.runs.item() == 3 and not base.all_diverged.item()  # with x - F e, one layer
    faceted = plots.accuracy_map(history).to_dict()  # rule varies: one panel per rule
    assert faceted["facet"]["column"]["field"] == "rule"


# ------------------------------------------------------------------ activations


@pytest.mark.parametrize("run", [0, 6, "bp-run"])
def test_activation_charts_of_stored_runs(activations, run):
    if run == "bp-run":  # select by run id
        run = next(str(r) for r in activations.run.values if str(r).startswith("bp-"))
    for layer in (1, 2) if run != 6 else (1,):
        assert_fits(plots.activation_heatmap(activations, layer, run=run), min_rows=16 * 16)
        assert_fits(plots.activation_distribution(activations, layer, run=run), min_rows=40)
    assert_fits(plots.modulated_inputs(activations, run=run), min_rows=6 * 32)


def test_ambiguous_run_ids_are_refused(activations):
    ids = [str(r) for r in activations.run.values]
    ids[1] = ids[0]  # two runs under one id (e.g. folders concatenated twice)
    with pytest.raises(ValueError, match="ambiguous"):
        plots.activation_heatmap(activations.assign_coords(run=ids), run=ids[0])


def test_heatmap_drops_padded_units_and_picks_epochs(activations):
    chart = plots.activation_heatmap(activations, 1, epoch=1, run=6)  # 24 units, padded to 32
    (rows,) = dataset_rows(chart)
    assert rows == 16 * 24
    assert "epoch 1" in chart.to_dict()["title"]["text"]
    with pytest.raises(KeyError, match="snapshot"):
        plots.activation_heatmap(activations, 1, epoch=7)


def test_heatmap_bins_units_to_fit():
    act = image_activations(28, 28, 1, units=1024)
    chart = plots.activation_heatmap(act)
    (rows,) = assert_fits(chart, min_rows=2000)
    assert rows == 16 * 256 and "units binned by 4" in subtitle(chart)
    scale = chart.to_dict()["encoding"]["color"]["scale"]
    assert scale["domain"][0] == -scale["domain"][1]  # diverging, centred on 0
    small = plots.activation_heatmap(act, max_rows=1000)
    assert max(dataset_rows(small)) <= 1000


def test_distribution_has_bins_times_epochs_rows():
    act = image_activations(28, 28, 1, units=1024, epochs=(0, 1, 2, 5, 10))
    (rows,) = assert_fits(plots.activation_distribution(act, bins=30))
    assert rows == 30 * 5


@pytest.mark.parametrize("shape, pooled", [((28, 28, 1), ""), ((32, 32, 3), "2x2")])
def test_modulated_inputs_of_images(shape, pooled):
    act = image_activations(*shape)
    chart = plots.modulated_inputs(act)
    rows = assert_fits(chart, min_rows=1000)
    assert len(rows) == 3  # x, x_err, x_err - x
    note = subtitle(chart)
    if pooled:
        assert f"averaged in {pooled} blocks" in note and "channel mean" in note
    else:
        assert rows == [6 * 28 * 28] * 3 and "averaged" not in note


# ------------------------------------------------------------------ cost, files, torch


@pytest.mark.parametrize("step_ms", [False, True])
def test_cost_chart(step_ms):
    df = pd.DataFrame({"rule": ["pepita", "bp"], "macs": [3.1e8, 2.0e8], "mflop": [620, 400],
                       "activation_kib": [600.0, 800.0]})
    if step_ms:
        df["step_ms"], df["gflops"] = [1.2, np.nan], [500.0, np.nan]
    spec = plots.cost_chart(df).to_dict()
    assert len(spec["hconcat"]) == 2 + step_ms
    assert_fits(plots.cost_chart(df))


def test_cost_chart_of_the_cost_table():
    analysis = pytest.importorskip("pepita_lab.analysis")
    if not hasattr(analysis, "cost_table"):
        pytest.skip("analysis.cost_table not written yet")
    df = analysis.cost_table([784, 1024, 10], 64, step_times={"pepita": 1e-3, "bp": 8e-4})
    assert_fits(plots.cost_chart(df))


def test_save_chart_writes_png_svg_html(one_run, tmp_path):
    chart = plots.learning_curves(one_run.history)
    png = plots.save_chart(chart, tmp_path / "a" / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    svg = plots.save_chart(chart, tmp_path / "curves.svg").read_text()
    assert "<svg" in svg[:500] and "test accuracy" in svg
    html = plots.save_chart(chart, tmp_path / "curves.html").read_text()
    assert "vega" in html and "cdn.jsdelivr" not in html  # inlined: opens offline
    with pytest.raises(ValueError, match="png"):
        plots.save_chart(chart, tmp_path / "curves.pdf")


def test_run_figures_of_one_run(one_run, tmp_path):
    paths = plots.run_figures(one_run.history, one_run.activations, tmp_path, formats=("png",))
    names = sorted(p.name for p in paths)
    assert names == sorted(f"{n}.png" for n in (
        "learning_curves", "bp_alignment", "f_alignment", "activation_heatmap_layer1",
        "activation_heatmap_layer2", "activation_distribution_layer1",
        "activation_distribution_layer2", "modulated_inputs"))
    assert all(p.is_file() and p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_run_figures_of_several_runs(history, activations, tmp_path):
    act = activations.isel(run=[0, 4, 5, 6])  # 4 and 0 share a run id; 6 has one hidden layer
    paths = plots.run_figures(history, act, tmp_path, formats=("svg", ".json"))
    names = {p.name for p in paths}
    assert {"learning_curves.svg", "accuracy_map.svg", "f_alignment.json"} <= names
    modulated = [n for n in names if n.startswith("modulated_inputs") and n.endswith(".svg")]
    assert len(modulated) == 4  # one per run, even with equal run ids
    assert [n for n in names if n.startswith("activation_heatmap_layer2")] and not [
        n for n in names if n.startswith("activation_heatmap_layer2") and "h24" in n]
    assert all(p.is_file() and p.stat().st_size > 500 for p in paths)


def test_plots_imports_neither_torch_nor_the_torch_side_of_the_package():
    assert len(PLOTS_FILES) > 1
    for path in PLOTS_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] in ("torch", "pepita_lab")
                               for a in node.names), path.name
            elif isinstance(node, ast.ImportFrom):  # `from .common import ...`: plots' own
                assert node.level in (0, 1), path.name
                assert node.level == 1 or node.module.split(".")[0] not in (
                    "torch", "pepita_lab"), path.name


def test_importing_pepita_lab_plots_loads_no_torch():
    code = "import sys, pepita_lab.plots; assert 'torch' not in sys.modules, 'torch loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
