"""The lab as a person meets it: JupyterLab started with the README's command (`make lab`),
driven in headless Chromium (Debian's `chromium`, through Playwright for Python; Playwright's
own browser download needs the internet and is never used).

The test opens the quickstart as a person does, through Jupyter's login page with the token
`make lab` printed, runs its first cell, flips the quick-run switch, runs all
cells, checks that every chart is drawn (SVG or canvas) inside the notebook panel, reruns the
training cell (a finished run is loaded, not overwritten), then drives the explorer: moves
the F-scale slider, presses Run, sees the live chart gain points after an epoch, presses Stop,
makes a run diverge, enters a bad setting and fixes it, trains FF and a mirrored PEPITA run, and
checks that each run has one colour in both charts and that the layer legend's dashes are
drawn. Screenshots of each step go to
`<the test's tmp folder>/screenshots` (the path is printed). The page must log no console
errors, and the notebooks on disk must be left as they were.

Without a chromium, Playwright or the dataset mirror the test skips, saying why;
`PEPITA_LAB_REQUIRE_BROWSER=1` (set by `.ci/run`) turns that skip into a failure.
"""

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from conftest import MIRROR
from test_lab import ROOT, lab_env, running_lab

NOTEBOOKS = ROOT / "notebooks"
REQUIRED = os.environ.get("PEPITA_LAB_REQUIRE_BROWSER", "") == "1"
VIEWPORT = {"width": 1280, "height": 1000}  # with the file browser open: a ~950 px notebook
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
# JupyterLab settings for the test's own settings folder: no autosave (the notebooks on disk
# stay as committed), no news pop-up over the cells, every cell rendered (no windowing).
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": '{"autosave": false}',
    "@jupyterlab/apputils-extension/notification": '{"fetchNews": "false"}',
    "@jupyterlab/notebook-extension/tracker": '{"windowingMode": "none"}',
}
# Chromium's own calls home, should any remain despite the flags: not the page's errors.
BROWSER_NOISE = re.compile(r"google|gstatic|gvt1|chrome-extension", re.I)


def unavailable(reason: str):
    if REQUIRED:
        pytest.fail(f"{reason} (PEPITA_LAB_REQUIRE_BROWSER=1: the browser test must run)")
    pytest.skip(reason)


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def check_tools() -> str:
    """The chromium to drive, once everything the test needs is known to be there."""
    chromium = chromium_path()
    if chromium is None:
        unavailable("no chromium on PATH (Debian: apt-get install chromium; `make test` does)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("Playwright for Python is not installed (`make test` installs it)")
    if shutil.which("make") is None:
        unavailable("make is not installed")
    if not MIRROR.is_dir():
        unavailable(f"no dataset mirror at {MIRROR}: the quickstart needs MNIST")
    return chromium


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` on a free port, with its own JupyterLab settings and runs folder."""
    check_tools()
    tmp = tmp_path_factory.mktemp("lab")
    for plugin, text in LAB_SETTINGS.items():
        path = tmp / "settings" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    env = {k: v for k, v in lab_env(tmp).items() if k != "PEPITA_LAB_SMOKE"}  # the switch decides
    env.update(PEPITA_LAB_RUNS=str(tmp / "runs"), JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"), OMP_NUM_THREADS="1")
    with running_lab(env) as lab:
        yield lab, tmp / "runs"


@pytest.fixture
def page(tmp_path):
    """A fresh headless Chromium (its own profile folder) and its console errors."""
    chromium = check_tools()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=chromium, headless=True,
            args=CHROMIUM_ARGS, viewport=VIEWPORT)
        page = context.pages[0] if context.pages else context.new_page()
        page.errors = []
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        page.on("pageerror", lambda e: page.errors.append(f"uncaught: {e}"))
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            context.close()


# ------------------------------------------------------------------ driving JupyterLab


def menu(page, top: str, command: str) -> None:
    page.locator(".lm-MenuBar-item", has_text=top).first.click()
    page.click(f".lm-Menu-item[data-command='{command}']")


def prompts(page) -> list[str]:
    return page.eval_on_selector_all(".jp-CodeCell .jp-InputArea-prompt",
                                     "els => els.map(e => e.textContent.trim())")


def wait_until_idle(page, before: list[str], timeout: float = 240) -> None:
    """Until the cells run since `before` (the prompts then) are done and the kernel idles."""
    deadline, calm = time.monotonic() + timeout, 0
    while calm < 4:
        assert time.monotonic() < deadline, f"cells still running: {prompts(page)}"
        now = prompts(page)
        idle = page.locator(".jp-Notebook-ExecutionIndicator[data-status=idle]").count() > 0
        calm = calm + 1 if idle and now != before and not any("*" in p for p in now) else 0
        time.sleep(0.5)


def run_cell(page, cell) -> None:
    before = prompts(page)
    cell.locator(".jp-InputArea-editor").click()
    menu(page, "Run", "runmenu:run")
    wait_until_idle(page, before)


def code_cell(page, text: str):
    """The code cell whose source contains `text`."""
    cell = page.locator(".jp-CodeCell", has=page.locator(".jp-InputArea-editor",
                                                         has_text=text))
    assert cell.count() == 1, f"{cell.count()} cells contain {text!r}"
    return cell


def shoot(locator, folder: Path, name: str) -> None:
    locator.scroll_into_view_if_needed()
    time.sleep(0.3)  # let vega finish drawing
    locator.screenshot(path=str(folder / name))


def overflows(locator) -> list[str]:
    """Texts of labels and buttons inside `locator` cut off by their box (an ellipsis)."""
    return locator.evaluate("""root => Array.from(root.querySelectorAll(
        '.widget-label, .widget-label-basic, button, .widget-readout')).filter(
        e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1).map(
        e => e.textContent.trim())""")


def marks(chart) -> int:
    """Points drawn by an SVG vega chart."""
    return chart.evaluate("e => e.querySelectorAll('svg.marks g.mark-symbol path').length")


def chart_texts(chart) -> str:
    return chart.evaluate("e => Array.from(e.querySelectorAll('svg.marks text'))"
                          ".map(t => t.textContent).join(' | ')")


# Each run's colour in an SVG vega chart: {run name: colour} from the "run" legend (what a
# person reads) and from the lines (what is drawn: a line's aria-label names its run).
RUN_COLOURS = """e => {
    const legend = {}, lines = {};
    for (const g of e.querySelectorAll('svg.marks g.role-legend')) {
        const title = g.querySelector('.role-legend-title text');
        if (!title || title.textContent !== 'run') continue;
        const symbols = g.querySelectorAll('.role-legend-symbol path');
        g.querySelectorAll('.role-legend-label text').forEach(
            (t, i) => { legend[t.textContent] = symbols[i].getAttribute('fill'); });
    }
    for (const path of e.querySelectorAll('svg.marks g.mark-line path')) {
        const run = /run: ([^;]*)/.exec(path.getAttribute('aria-label') || '');
        if (run) lines[run[1]] = path.getAttribute('stroke');
    }
    return {legend, lines}; }"""
# The layer legend's symbols: [stroke, dash] of each.
LAYER_SYMBOLS = """e => {
    for (const g of e.querySelectorAll('svg.marks g.role-legend')) {
        const title = g.querySelector('.role-legend-title text');
        if (title && title.textContent.startsWith('layer l'))
            return Array.from(g.querySelectorAll('.role-legend-symbol path')).map(
                p => [p.getAttribute('stroke'), p.getAttribute('stroke-dasharray')]);
    }
    return null; }"""


def legend_runs(chart) -> list[str]:
    return list(chart.evaluate(RUN_COLOURS)["legend"])


def run_colours(chart) -> dict[str, str]:
    """Each run's colour in a chart, the same in its legend as in its lines."""
    found = chart.evaluate(RUN_COLOURS)
    legend, lines = found["legend"], found["lines"]
    assert legend and lines and {run: legend.get(run) for run in lines} == lines, found
    return legend


def same_colours(left, right) -> dict[str, str]:
    """The runs of `right` (each in `left` too) have the colour they have in `left`."""
    a, b = run_colours(left), run_colours(right)
    assert b and set(b) <= set(a) and {run: a[run] for run in b} == b, (a, b)
    assert len(set(a.values())) == len(a), a  # runs told apart
    return a


def log_in(page, lab) -> None:
    """As a person does: the lab's address without the token shows Jupyter's login page;
    the token `make lab` printed, typed into it, opens the notebook asked for."""
    page.goto(f"{lab.url}/lab/tree/00_quickstart.ipynb")
    page.wait_for_url(re.compile(r"/login\b"))
    assert page.locator(".jp-Notebook").count() == 0
    page.locator("#password_input").fill(lab.token)
    page.locator("#login_submit").click()
    page.wait_for_url(re.compile(r"/lab/tree/00_quickstart\.ipynb"))


def wait_for(predicate, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def box(locator, timeout: float = 30) -> dict:
    """`locator`'s bounding box once it is drawn: vega replaces a chart's SVG when its data
    change, and an element caught between two renders has no box (Playwright gives None)."""
    deadline = time.monotonic() + timeout
    while True:
        found = locator.bounding_box() if locator.count() else None
        if found and found["width"] > 0 and found["height"] > 0:
            return found
        assert time.monotonic() < deadline, f"no visible box for {locator} in {timeout} s"
        time.sleep(0.1)


def notebook_hashes() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(NOTEBOOKS.glob("*.ipynb"))}


# ------------------------------------------------------------------ the test


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quickstart_and_explorer_in_a_browser(lab, page, tmp_path):
    lab, runs = lab
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"\nscreenshots: {shots}")
    committed = notebook_hashes()

    log_in(page, lab)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status=idle]",
                           state="attached")

    # The first cell says what it loads, where the data are, and shows the switch.
    first = page.locator(".jp-CodeCell").first
    run_cell(page, first)
    # the kernel's output messages may arrive after its idle status (another channel)
    wait_for(lambda: "Datasets from" in first.locator(".jp-OutputArea").inner_text(),
             "the first cell's output", timeout=60)
    said = first.locator(".jp-OutputArea").inner_text()
    assert "Loading pepita_lab: torch, xarray and altair" in said and "Datasets from" in said
    assert "full settings" in said and "runs/full" in said
    first.get_by_role("button", name="quick run").click()
    wait_for(lambda: "runs/quick" in first.inner_text(), "the switch to say quick")
    shoot(first, shots, "01_first_cell_quick_switch.png")

    # Run All, in quick mode.
    before = prompts(page)
    menu(page, "Run", "runmenu:run-all")
    wait_until_idle(page, before)
    # Every cell ran (Run All stops at an error, leaving "[ ]:"), and none printed a traceback.
    assert all(re.fullmatch(r"\[\d+\]:", p) for p in prompts(page)), prompts(page)
    stderr = page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
        "els => els.map(e => e.textContent)")
    assert not [t for t in stderr if "Traceback" in t or "Error" in t], stderr
    assert (runs / "quick" / "quickstart" / "pepita" / "history.nc").is_file()
    assert not (runs / "full").exists()  # quick runs never land among full ones

    # Every chart is drawn, as SVG or canvas, inside the notebook's output area.
    panel = box(page.locator(".jp-NotebookPanel-notebook"))
    charts = page.locator(".jp-OutputArea-output .vega-embed")
    assert charts.count() >= 5  # curves, heatmap, modulated inputs, two in the explorer
    for i in range(charts.count()):
        chart = charts.nth(i)
        chart.scroll_into_view_if_needed()
        drawn = chart.locator("canvas.marks, svg.marks")
        drawn.first.wait_for(state="visible")
        drawn_box = box(drawn.first)
        assert drawn_box["width"] > 100 and drawn_box["height"] > 100, (i, drawn_box)
        assert drawn_box["x"] + drawn_box["width"] <= panel["x"] + panel["width"], (
            i, drawn_box, panel)
    # SVG gradient ids must not repeat (a colour legend would show another chart's colours).
    ids = page.eval_on_selector_all("linearGradient", "els => els.map(e => e.id)")
    assert len(ids) == len(set(ids)), ids

    shoot(code_cell(page, "train_once(config"), shots, "02_training_cell.png")
    shoot(code_cell(page, "plots.learning_curves(history"), shots, "03_learning_curves.png")
    shoot(code_cell(page, "plots.activation_heatmap"), shots, "04_activation_heatmap.png")
    shoot(code_cell(page, "plots.modulated_inputs"), shots, "05_modulated_inputs.png")
    own = code_cell(page, "arrays = (x[:5000]")
    assert "test acc" in own.inner_text() and "4 classes" in own.inner_text()
    shoot(own, shots, "06_own_data.png")
    refusals = code_cell(page, "for bad in").locator(".jp-OutputArea").inner_text()
    assert refusals.count("refused: ") == 3 and "y_train has 100 labels" in refusals
    shoot(code_cell(page, "for bad in"), shots, "06b_own_data_refused.png")

    # Running the training cell again loads the finished runs instead of overwriting them.
    training = code_cell(page, "train_once(config")
    mtime = (runs / "quick" / "quickstart" / "pepita" / "history.nc").stat().st_mtime_ns
    run_cell(page, training)
    assert training.locator(".jp-OutputArea").inner_text().count("loaded the finished run") == 2
    assert (runs / "quick" / "quickstart" / "pepita" / "history.nc").stat().st_mtime_ns == mtime
    shoot(training, shots, "07_training_cell_rerun.png")

    # The explorer: fits the panel, labels whole.
    explorer = page.locator(".jp-CodeCell").last
    output = explorer.locator(".jp-OutputArea-output").last
    explorer.scroll_into_view_if_needed()
    print("explorer output area:", box(output))
    assert overflows(output) == []
    assert output.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "explorer cut off"
    # the options are a third column beside the others, not below them (956 px tall before)
    tops = output.evaluate("""e => {
        const rule = Array.from(e.querySelectorAll('label')).find(
            l => l.textContent.trim() === 'rule');
        const row = rule.closest('.widget-vbox').parentElement;
        return Array.from(row.children).map(c => c.getBoundingClientRect().top); }""")
    assert len(tops) == 3 and max(tops) - min(tops) < 2, tops
    live, angle = output.locator(".vega-embed").nth(0), output.locator(".vega-embed").nth(1)
    out_box = box(output)
    for chart in (live, angle):
        chart_box = box(chart)
        assert chart_box["x"] + chart_box["width"] <= out_box["x"] + out_box["width"] + 1, (
            chart_box, out_box)

    def slider(label):
        return output.locator(".widget-slider", has=page.locator(f"label:text-is('{label}')"))

    def status() -> str:
        return output.locator(".pepita-status").inner_text()

    def notes() -> str:
        return output.locator(".pepita-notes").inner_text()

    def dropdown(label):
        return output.locator(".widget-dropdown", has=page.locator(
            f"label:text-is('{label}')")).locator("select")

    def active(label) -> str:
        return output.locator(".widget-toggle-buttons", has=page.locator(
            f"label:text-is('{label}')")).locator("button.mod-active").inner_text().strip()

    f_scale = slider("F scale")
    assert f_scale.locator(".widget-readout").inner_text() == "0.0500"
    f_scale.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")  # one step of the log slider
    wait_for(lambda: f_scale.locator(".widget-readout").inner_text() == "0.0562", "F scale")
    epochs = slider("epochs").locator(".widget-readout")
    epochs.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("30")  # long enough to press Stop while it runs
    page.keyboard.press("Enter")
    wait_for(lambda: epochs.inner_text() == "30", "epochs")

    output.locator("button[title=Run]").click()
    wait_for(lambda: re.search(r"epoch 1/30", status()), "the first epoch")
    points = marks(angle)
    wait_for(lambda: marks(angle) > points, "the live chart to gain a point")
    assert "F=0.0562" in chart_texts(live)  # the run has the slider's value
    shoot(explorer, shots, "08_explorer_live.png")
    output.locator("button[title=Stop]").click()
    wait_for(lambda: status().startswith("stopped"), "stopped")
    shoot(explorer, shots, "09_explorer_stopped.png")

    # A run that diverges says so in words, draws up to there, finishes the progress bar.
    for name in ("F scale", "lr"):
        slider(name).locator(".noUi-handle").focus()
        page.keyboard.press("End")
    epochs.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    wait_for(lambda: epochs.inner_text() == "2", "epochs")
    output.locator("button[title=Run]").click()
    wait_for(lambda: "diverged in epoch 1, step" in status(), "the divergence message")
    assert "try a smaller lr or F scale" in status() and "nats" in status()
    bar = output.locator(".progress-bar")
    assert "danger" in bar.get_attribute("class")
    assert bar.evaluate("e => e.getBoundingClientRect().width >= "
                        "e.parentElement.getBoundingClientRect().width - 1")
    wait_for(lambda: "diverged" in chart_texts(live) and "diverged" in chart_texts(angle),
             "the divergence marks")
    shoot(explorer, shots, "10_explorer_diverged.png")

    # A bad setting is refused in the widget; fixing it clears the message.
    subset = output.locator(".widget-text", has=page.locator(
        "label:text-is('subset (0 = all)')")).locator("input")
    subset.fill("-5")
    subset.press("Enter")
    output.locator("button[title=Run]").click()
    wait_for(lambda: "error" in status() and "subset=-5" in status(), "the error")
    shoot(explorer, shots, "11_explorer_error.png")
    subset.fill("2000")
    subset.press("Enter")
    wait_for(lambda: "error" not in status(), "the error to clear")
    assert status() == "ready: the settings are valid"
    shoot(explorer, shots, "12_explorer_error_cleared.png")

    # FF: the sliders move to its settings, F's controls hide, and it learns in quick mode
    # (2 epochs on 2000 samples: 71 % measured) with nothing else changed.
    dropdown("rule").select_option("ff")
    wait_for(lambda: slider("lr").locator(".widget-readout").inner_text() == "0.00100", "FF's lr")
    wait_for(lambda: dropdown("batch").input_value() == "50" and "ff's own settings" in notes(),
             "FF's batch and the line saying its settings")
    assert not f_scale.is_visible() and not output.locator(
        ".widget-toggle-buttons", has=page.locator("label:text-is('modulation')")).is_visible()
    output.locator("button[title=Run]").click()
    wait_for(lambda: status().startswith("completed"), "FF's run", timeout=300)
    acc = float(re.search(r"test accuracy (\d+\.\d\d) % after 2 epochs\b", status()).group(1))
    assert acc > 50, status()  # chance is 10 %
    wait_for(lambda: "FF's own loss" in chart_texts(angle), "FF's own chart")
    wait_for(lambda: len(legend_runs(live)) == 3, "three runs on the left")
    colours = same_colours(live, angle)  # FF's colour on the right is its colour on the left
    assert "2 pepita runs not shown" in chart_texts(angle)
    shoot(explorer, shots, "13_explorer_ff.png")

    # A run ending below its untrained accuracy (FF at lr 1: 15.6 % at epoch 0, then 9.8 %):
    # said as such, and its chart keeps the size it declares, inside the panel.
    output.locator("button[title='Clear runs']").click()
    slider("lr").locator(".noUi-handle").focus()
    page.keyboard.press("End")
    wait_for(lambda: "unlikely to learn" in notes(), "the warning before Run")
    output.locator("button[title=Run]").click()
    wait_for(lambda: "did not learn" in status(), "the run's verdict", timeout=300)
    assert "likely cause: lr 1 is 1000x ff's own" in status() and "diverged" not in status()
    wait_for(lambda: "above, not drawn" in chart_texts(live), "epoch 0 left out above the axis")
    out_box = box(output)
    for chart in (live, angle):
        svg = box(chart.locator("svg.marks"))
        assert svg["height"] <= 420, svg  # 200 px of plot, title, axis, legend (was 716)
        assert out_box["y"] <= svg["y"] and svg["y"] + svg["height"] <= out_box["y"] + out_box[
            "height"] + 1, (svg, out_box)
        assert svg["x"] + svg["width"] <= out_box["x"] + out_box["width"] + 1, (svg, out_box)
    shoot(explorer, shots, "14_explorer_below_untrained.png")

    # Ticking weight mirroring shows the factorised F and x - F e it needs, before any Run.
    dropdown("rule").select_option("pepita")
    wait_for(lambda: f_scale.is_visible(), "PEPITA's controls")
    assert active("modulation") == "x + F e" and dropdown("F").input_value() == "uniform"
    output.locator(".widget-checkbox", has_text="weight mirroring").locator("input").check()
    wait_for(lambda: dropdown("F").input_value() == "factorised"
             and active("modulation") == "x - F e", "factorised F and x - F e")
    wait_for(lambda: "Weight mirroring" in chart_texts(angle), "the mirroring chart's title")
    shoot(explorer, shots, "15_explorer_mirroring_ticked.png")

    # A mirrored PEPITA run beside the FF run: one colour each in both charts, and the layer
    # legend shows each layer's dash in a visible stroke.
    output.locator("button[title=Run]").click()
    wait_for(lambda: not output.locator("button[title=Run]").is_disabled()
             and "mirroring" in " ".join(legend_runs(live)), "the mirrored run", timeout=300)
    wait_for(lambda: "1 ff run not shown" in chart_texts(angle), "the mirroring chart's runs")
    colours = same_colours(live, angle)
    assert len(colours) == 2 and any(" ff " in run for run in colours), colours
    symbols = angle.evaluate(LAYER_SYMBOLS)
    assert symbols and len(symbols) >= 2, symbols  # a hidden layer or more, and the output
    assert all(stroke not in (None, "transparent", "none") for stroke, _ in symbols), symbols
    assert len({dash for _, dash in symbols}) == len(symbols), symbols
    shoot(explorer, shots, "16_explorer_mirroring_run.png")

    noise = [e for e in page.errors if not BROWSER_NOISE.search(e)]
    assert noise == [], noise
    assert notebook_hashes() == committed, "the test changed a notebook on disk"
