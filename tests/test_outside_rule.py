"""A rule from outside the package: a small package of its own, found through its entry point
(group `pepita_lab.rules`) in fresh processes, trains from the CLI, in Python, in the
explorer's dropdown and on a two-worker Dask sweep; and the example of docs/adding-a-rule.md,
copied into a folder outside the repository, does the same through `--import`. Nothing is
installed into the shared environment: the package and its `*.dist-info` (METADATA,
entry_points.txt, as pip writes them) sit in a temporary folder put on PYTHONPATH, where
importlib.metadata finds them."""

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import xarray as xr

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "adding-a-rule.md"
SCRIPT = Path(sys.executable).parent / "pepita-lab"  # the installed command, as a user runs it
CLI = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "pepita_lab.cli"]
TINY = ["--dataset", "synthetic", "--hidden", "16", "--epochs", "1", "--subset", "256",
        "--batch-size", "32", "--device", "cpu", "--quiet"]

RULE_MODULE = '''\
"""outside_rules: a DFA-like rule that sends the sign of the output error (absolute imports
only: this package knows pepita_lab as any user's code does)."""
import torch

from pepita_lab.rules import Factors, Rule, forward_pass, relu_grad


class OutsideSignDFA(Rule):
    name, label, feedback, conv = "outside-sign-dfa", "outside sign-DFA", "direct", False

    def factors(self, net, x, target, masks, settings, state=None):
        hs, ins = forward_pass(net.weights, net.shape_input(x), masks, net.biases)
        e = hs[-1] - target
        deltas = [(torch.sign(e) @ B) * relu_grad(h, None if masks is None else masks[l])
                  for l, (B, h) in enumerate(zip(net.feedback, hs[1:-1]))]
        return Factors(deltas + [e], ins, hs[-1])
'''
PYPROJECT = '''\
[project]
name = "outside-rules"
version = "0.1.0"
dependencies = ["pepita-lab"]

[project.entry-points."pepita_lab.rules"]
outside-sign-dfa = "outside_rules:OutsideSignDFA"
'''


def install_on_path(site: Path, name: str, pyproject: str) -> None:
    """What `pip install` leaves for a package whose modules are in `site`: a dist-info with
    METADATA and entry_points.txt written from `pyproject`'s entry points."""
    project = tomllib.loads(pyproject)["project"]
    dist = site / f"{name.replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                   f"Version: {project['version']}\n")
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in entries.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")


def env_with(path: Path | None) -> dict:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    return env


def run(args, cwd, env):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def assert_trained(run_dir: Path, rule: str) -> None:
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["rule"] == rule
    history = xr.open_dataset(run_dir / "history.nc")
    assert history.attrs["status"] == "completed" and history.sizes["epoch"] == 2


def assert_swept(sweep_dir: Path, rule: str) -> None:
    ds = xr.open_dataset(sweep_dir / "sweep.nc")
    assert ds.sizes["lr"] == 2 and set(ds.rule.values.ravel()) == {rule}
    assert (ds.status.values == "completed").all()


@pytest.fixture(scope="module")
def outside_package(tmp_path_factory):
    """The package's folder (pyproject.toml, outside_rules.py) on a path of its own, with its
    dist-info beside it: `pip install` without touching the shared environment."""
    site = tmp_path_factory.mktemp("site")
    (site / "outside_rules.py").write_text(RULE_MODULE)
    (site / "pyproject.toml").write_text(PYPROJECT)
    install_on_path(site, "outside-rules", PYPROJECT)
    return site


def test_the_entry_point_is_not_seen_without_the_package():
    """The check below can fail: without the package on the path there is no such rule."""
    proc = subprocess.run(CLI + ["train", "--rule", "outside-sign-dfa", *TINY],
                          env=env_with(None), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "outside-sign-dfa" in proc.stderr


def test_an_entry_point_rule_trains_from_the_cli_python_explorer_and_dask(outside_package,
                                                                          tmp_path):
    env = env_with(outside_package)
    out = run(CLI + ["train", "--rule", "outside-sign-dfa", *TINY, "--out",
                     str(tmp_path / "run")], tmp_path, env)
    assert "test_acc=" in out.stdout
    assert_trained(tmp_path / "run", "outside-sign-dfa")
    inspect = run(CLI + ["inspect", str(tmp_path / "run")], tmp_path, env).stdout
    assert "feedback angle" in inspect and "F angle" not in inspect  # it has no F
    run(CLI + ["sweep", "--rule", "outside-sign-dfa", *TINY, "--lr", "0.01", "0.05",
               "--workers", "2", "--out", str(tmp_path / "sweep")], tmp_path, env)
    assert_swept(tmp_path / "sweep", "outside-sign-dfa")
    check = ("import pepita_lab as pl\n"
             "from pepita_lab.rules import rule_names\n"
             "from pepita_lab.widgets import Explorer\n"
             "assert 'outside-sign-dfa' in rule_names()\n"
             "assert 'outside-sign-dfa' in Explorer().controls['rule'].options\n"
             "run = pl.train(pl.RunConfig(rule='outside-sign-dfa', dataset='synthetic',"
             " hidden=(16,), epochs=1, subset=256, device='cpu'), progress=False)\n"
             "assert run.status == 'completed'\n")
    run([sys.executable, "-c", check], tmp_path, env)


def doc_block(language: str, marker: str) -> str:
    """The code block of docs/adding-a-rule.md in `language` that contains `marker`."""
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1, f"docs/adding-a-rule.md: no single {language} block with {marker!r}"
    return found[0]


def test_the_docs_example_copied_outside_the_repository_trains_by_import_and_entry_point(
        tmp_path):
    folder = tmp_path / "my-project"  # a fresh folder, outside the repository
    folder.mkdir()
    assert REPO not in folder.resolve().parents
    source = doc_block("python", "# my_rules.py")
    assert "from pepita_lab.rules import" in source and "from ." not in source  # absolute
    (folder / "my_rules.py").write_text(source)
    rule = re.search(r'name = "([\w-]+)"', source).group(1)
    env = env_with(None)
    # the docs' commands use --import my_rules from the folder the module is in
    commands = doc_block("bash", "pepita-lab train --import my_rules")
    assert f"--import my_rules --rule {rule}" in commands and "--workers 2" in commands
    run(CLI + ["train", "--import", "my_rules", "--rule", rule, *TINY, "--out",
               str(folder / "run")], folder, env)
    assert_trained(folder / "run", rule)
    run(CLI + ["sweep", "--import", "my_rules", "--rule", rule, *TINY, "--lr", "0.01",
               "0.05", "--workers", "2", "--out", str(folder / "sweep")], folder, env)
    assert_swept(folder / "sweep", rule)
    # the same module as a package: the docs' pyproject.toml's entry point, no --import
    pyproject = doc_block("toml", '[project.entry-points."pepita_lab.rules"]')
    assert tomllib.loads(pyproject)["project"]["entry-points"]["pepita_lab.rules"] == {
        rule: "my_rules:SignDFA"}
    install_on_path(folder, "my-rules", pyproject)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run(CLI + ["train", "--rule", rule, *TINY, "--out", str(elsewhere / "run")], elsewhere,
        env_with(folder))
    assert_trained(elsewhere / "run", rule)
