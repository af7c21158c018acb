"""The documentation: every `docs/...` path the repository names exists, and the site builds
with `mkdocs build --strict` (what `make docs` runs), which fails on a broken link, a page
missing from nav or an API reference to an object that does not exist: checked by breaking a
copy of the docs on purpose.

The build tests need the `docs` extra (mkdocs-material, mkdocstrings[python], mkdocs-jupyter),
which `make setup` installs, so `make test` and `.ci/run` run them; without it they skip,
saying so.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# "docs/" starting a path (not "../shared/docs/", not "mydocs/"), then path characters; a
# trailing "." or "/" of prose is not part of it (a folder keeps its meaning without it).
DOCS_PATH = re.compile(r"(?<![\w./-])docs/[\w./-]*")
# Where the repository names docs paths: code, tests, notebooks, scripts and the docs.
SOURCES = ("pepita_lab/**/*.py", "tests/**/*.py", "notebooks/*.ipynb", "benchmarks/**/*",
           "scripts/**/*", "docs/**/*.md", "docs/hooks.py", "README.md", "Makefile",
           "mkdocs.yml", ".ci/run", "pyproject.toml")


def text_of(path: Path) -> str:
    """A file's text; a notebook's cell sources, one cell after another."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n".join("".join(c["source"]) for c in cells)
    return path.read_text(encoding="utf-8", errors="replace")


def docs_references(root: Path) -> dict[str, set[str]]:
    """Every `docs/...` path named under `root` in `SOURCES` -> the files naming it."""
    found: dict[str, set[str]] = {}
    for pattern in SOURCES:
        for path in sorted(root.glob(pattern)):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            for match in DOCS_PATH.finditer(text_of(path)):
                name = match.group(0).rstrip("./")
                if name != "docs":
                    found.setdefault(name, set()).add(str(path.relative_to(root)))
    return found


def missing_references(root: Path) -> dict[str, set[str]]:
    return {name: files for name, files in docs_references(root).items()
            if not (root / name).exists()}


def test_every_docs_path_named_in_the_repository_exists():
    refs = docs_references(ROOT)
    assert "docs/pepita.md" in refs and len(refs) > 20  # the scan sees what it should
    missing = missing_references(ROOT)
    assert not missing, "docs paths named but missing: " + "; ".join(
        f"{name} (in {', '.join(sorted(files))})" for name, files in sorted(missing.items()))


def test_every_pepita_lab_name_the_docs_give_exists():
    """`pepita_lab.x.y` in the docs and the README names a module or an attribute that exists."""
    import importlib

    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
    names = {m for p in pages for m in re.findall(r"\bpepita_lab(?:\.\w+)+", p.read_text())}
    assert "pepita_lab.plots" in names
    missing = []
    for name in sorted(names):
        parts = name.split(".")
        for i in range(len(parts), 0, -1):  # the longest importable module, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            try:
                for attr in parts[i:]:
                    obj = getattr(obj, attr)
            except AttributeError:
                missing.append(name)
            break
        else:
            missing.append(name)
    assert not missing, f"named in the docs but not in the package: {missing}"


def test_every_public_name_is_in_the_api_reference():
    """What `import pepita_lab as pl` offers (`pepita_lab.__all__`) is in the API index, which
    links to its reference page (the build checks those pages' objects exist)."""
    import pepita_lab

    index = (ROOT / "docs" / "api" / "index.md").read_text()
    missing = [name for name in pepita_lab.__all__
               if name != "__version__" and f"`pl.{name}`" not in index]
    assert not missing, f"public names missing from docs/api/index.md: {missing}"


def test_a_bad_docs_reference_is_found(tmp_path):
    (tmp_path / "docs" / "results").mkdir(parents=True)
    (tmp_path / "docs" / "pepita.md").write_text("# PEPITA\n")
    (tmp_path / "pepita_lab").mkdir()
    d = "docs" + "/"  # not written out, so that this file names no missing docs path itself
    (tmp_path / "pepita_lab" / "mod.py").write_text(
        f'"""See {d}pepita.md, {d}no_such_page.md, {d}results/."""\n')
    nb = {"cells": [{"cell_type": "markdown", "source": [f"the equations ({d}", "gone.md)."]}]}
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "n.ipynb").write_text(json.dumps(nb))
    (tmp_path / "README.md").write_text(f"../shared/{d}pepita.md is not ours; {d}results/x/\n")
    assert sorted(missing_references(tmp_path)) == [d + "gone.md", d + "no_such_page.md",
                                                    d + "results/x"]


# ------------------------------------------------------------------- the site, built strictly

DOCS_TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python",
              "mkdocs_jupyter")


def _missing_tools() -> list[str]:
    missing = []
    for name in DOCS_TOOLS:
        try:
            if importlib.util.find_spec(name) is None:
                missing.append(name)
        except ModuleNotFoundError:
            missing.append(name)
    return missing


needs_docs_tools = pytest.mark.skipif(
    bool(_missing_tools()), reason=f"the docs extra is not installed ({', '.join(_missing_tools())} "
    "missing): pip install -e '.[docs]' (make setup does)")


def build(root: Path, site: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` of the site whose mkdocs.yml is in `root` (as `make docs`)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(site), "--config-file", str(root / "mkdocs.yml")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def copy_site_sources(dest: Path) -> Path:
    """What the build reads: mkdocs.yml, docs/, notebooks/ (the package is the installed one)."""
    dest.mkdir()
    shutil.copy(ROOT / "mkdocs.yml", dest / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", dest / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "notebooks", dest / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return dest


@pytest.mark.slow
@needs_docs_tools
def test_the_site_builds_strictly_with_no_warning(tmp_path):
    done = build(ROOT, tmp_path / "site")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "WARNING" not in out and "ERROR" not in out, out
    site = tmp_path / "site"
    train_page = (site / "api" / "train.html").read_text(encoding="utf-8")
    assert 'id="pepita_lab.api.train"' in train_page  # the API reference of pl.train
    config_page = (site / "api" / "config.html").read_text(encoding="utf-8")
    assert 'id="pepita_lab.config.RunConfig"' in config_page
    assert "<code>f_scale</code>" in config_page  # the fields' table, from the code
    plots_page = (site / "api" / "plots.html").read_text(encoding="utf-8")
    assert 'id="pepita_lab.plots.learning_curves"' in plots_page
    widgets_page = (site / "api" / "widgets.html").read_text(encoding="utf-8")
    assert 'id="pepita_lab.widgets.Explorer"' in widgets_page
    assert (site / "pepita.html").exists() and (site / "index.html").exists()
    assert (site / "notebooks" / "00_quickstart.html").exists()  # notebooks rendered as pages


@pytest.mark.slow
@needs_docs_tools
def test_a_broken_link_or_a_page_missing_from_nav_fails_the_build(tmp_path):
    src = copy_site_sources(tmp_path / "src")
    page = src / "docs" / "runs.md"
    page.write_text(page.read_text() + "\nSee [nowhere](no-such-page.md).\n")
    (src / "docs" / "orphan.md").write_text("# Not in nav\n")
    done = build(src, tmp_path / "site")
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "no-such-page.md" in out and "orphan.md" in out, out


@pytest.mark.slow
@needs_docs_tools
def test_an_api_reference_to_a_missing_object_fails_the_build(tmp_path):
    src = copy_site_sources(tmp_path / "src")
    page = src / "docs" / "api" / "train.md"
    page.write_text(page.read_text() + "\n::: pepita_lab.no_such_thing\n")
    done = build(src, tmp_path / "site")
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "pepita_lab.no_such_thing" in out, out
