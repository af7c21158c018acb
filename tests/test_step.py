"""The training step as a rule sees it: one declared object (`rules.Step`), a step followed in
a handful of modules, and the dropout draw's law."""

import ast
import math
import sys
from pathlib import Path

import pytest
import torch

import pepita_lab
from pepita_lab.config import RunConfig
from pepita_lab.kernels import draw_dropout_mask
from pepita_lab.rules import STEP_FIELDS
from pepita_lab.training import Trainer

RULES = Path(pepita_lab.__file__).parent / "rules"
MAX_MODULES = 6  # the bound; a default PEPITA step reaches 6, FF's 5 (below)


def modules_run(trainer: Trainer, x, target, lr) -> set[str]:
    """The pepita_lab modules whose Python functions run during one `train_step`."""
    seen = set()

    def profile(frame, event, arg):
        if event == "call":
            name = frame.f_globals.get("__name__", "")
            if name.startswith("pepita_lab"):
                seen.add(name)

    sys.setprofile(profile)
    try:
        trainer.train_step(x, target, lr)
    finally:
        sys.setprofile(None)
    return seen


@pytest.mark.parametrize("rule, expected", [("pepita", 6), ("ff", 5)])
def test_one_step_runs_in_a_handful_of_modules(rule, expected):
    """One default step on the paper's MNIST shapes (hidden 1024, batch 64, dropout) runs
    Python functions in at most 6 pepita_lab modules: for PEPITA the loop, the rule, its
    passes, the nets, the kernels and the momentum update."""
    cfg = RunConfig(rule=rule, dataset="synthetic", hidden=(1024,), batch_size=64,
                    keep_prob=0.9, device="cpu", subset=256)
    trainer = Trainer(cfg, progress=False)
    x, y = trainer.data.x_train[:64], trainer.data.y_train[:64]
    trainer.train_step(x, trainer.eye[y], trainer.lr_column())  # the first fills the carry
    seen = modules_run(trainer, x, trainer.eye[y], trainer.lr_column())
    assert len(seen) <= MAX_MODULES, sorted(seen)
    assert len(seen) == expected, sorted(seen)  # say it here when the count moves


def _step_params(tree: ast.AST):
    """(function, name of its `step` parameter) for every function taking a Step."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.Lambda)):
            args = node.args.args
            for a in args:
                ann = getattr(a, "annotation", None)
                if a.arg == "step" or (isinstance(ann, ast.Name) and ann.id == "Step"):
                    yield node, a.arg


def test_rules_see_only_the_declared_step():
    """No module under rules/ imports the loop or names the trainer, and a function taking
    the step reads only `Step`'s declared fields from it."""
    for path in sorted(RULES.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                assert not any("training" in n or "members" in n for n in names), path
            if isinstance(node, ast.Name):
                assert "trainer" not in node.id.lower(), (path, node.id)
            if isinstance(node, ast.arg):
                assert "trainer" not in node.arg.lower(), (path, node.arg)
        for fn, name in _step_params(tree):
            for node in ast.walk(fn):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id == name):
                    assert node.attr in STEP_FIELDS, (path, fn.name if hasattr(fn, "name")
                                                      else "lambda", node.attr)


def test_the_check_sees_an_undeclared_read(tmp_path):
    """The test of the test: a step reading `step.trainer` is caught."""
    tree = ast.parse("def train_step(self, step, x, target):\n    return step.members\n")
    reads = [n.attr for fn, name in _step_params(tree) for n in ast.walk(fn)
             if isinstance(n, ast.Attribute) and getattr(n.value, "id", "") == name]
    assert reads == ["members"] and "members" not in STEP_FIELDS


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.2, 1 / 3])
def test_the_dropout_draw_keeps_with_probability_keep(keep):
    """Over n = 2^22 elements the number kept is Binomial(n, p) with p within 2^-24 of keep
    (`draw_dropout_mask`): it lies within 6 standard deviations of n keep, sqrt(n keep
    (1 - keep)) (a false alarm about 2e-9), and every element is 0 or 1 / keep."""
    n = 2 ** 22
    mask = torch.empty(n)
    draw_dropout_mask(mask, keep, torch.Generator().manual_seed(0))
    kept = int((mask != 0).sum())
    assert abs(kept - n * keep) <= 6 * math.sqrt(n * keep * (1 - keep)), kept / n
    assert torch.all((mask == 0) | (mask == torch.tensor(1 / keep)))


def test_a_members_masks_do_not_depend_on_K():
    """Each member draws from its own stream: member k's masks are the same in a population
    of 1 and of 3."""
    base = RunConfig(rule="pepita", dataset="synthetic", hidden=(32, 16), batch_size=8,
                     keep_prob=0.8, device="cpu", subset=64)
    alone = Trainer(base.replace(seed=5), progress=False).dropout_masks(8)
    alone = [m[0].clone() for m in alone]
    pop = Trainer([base.replace(seed=s) for s in (3, 5, 7)], progress=False).dropout_masks(8)
    for a, m in zip(alone, pop):
        assert torch.equal(a, m[1])
