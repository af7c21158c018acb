"""The package's architecture, checked: every module imports only its own layer or those below
(config -> nets / data -> rules -> training -> records -> plots -> widgets / cli), no import
circle (imports inside functions count: a lazy import is still a dependency), and no module over
400 lines. The import graph is read from the source (ast), so nothing is imported to check it.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "pepita_lab"

# Each module's layer, lowest first; a package's modules share the package's layer unless named.
LAYERS = [
    # the package root holds only __version__ and lazily loaded names: nothing at import time
    {"pepita_lab", "config", "locks", "files", "kernels"},
    {"devices", "nets", "data"},
    {"rules"},  # every rule, the registry and the one door into training (rules.validate)
    {"training", "members", "traces", "momentum"},
    {"analysis", "preflight", "records", "advice"},
    {"store", "api", "sweep", "reports", "bench"},
    {"plots"},
    {"widgets", "cli", "reproduce", "notebook"},
]
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The package modules `path` imports, anywhere in it (module level or in a function)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
            if node.module is None:  # `from . import x`: x may be a module or a name
                found.update(f"{target}.{a.name}" if (ROOT.parent / f"{target}.{a.name}".replace(
                    ".", "/")).with_suffix(".py").exists() else target for a in node.names)
            else:
                found.add(target)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pepita_lab"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("pepita_lab"))
    return found - {name}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in ROOT.rglob("*.py")}


def layer(module: str) -> int:
    """The layer of `module` (pepita_lab.rules.base: the layer of "rules")."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0  # the package root
    for depth in range(len(parts), 1, -1):
        key = ".".join(parts[1:depth])
        for i, names in enumerate(LAYERS):
            if key in names:
                return i
    raise AssertionError(f"{module} has no layer: add it to LAYERS in tests/test_layers.py")


def upward_imports(g: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
                  for m, deps in g.items() for d in deps if layer(d) > layer(m))


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle (one per strongly connected set of modules), by Tarjan's method."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_a_layer_above_it():
    assert upward_imports(graph()) == []


def test_no_import_circle():
    assert circles(graph()) == []


def test_no_module_over_400_lines():
    long = {module_name(p): n for p in ROOT.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


# The checks themselves, on graphs made up for them: they must fail where they should.

def test_the_layer_check_finds_an_upward_import():
    g = {"pepita_lab.config": {"pepita_lab.rules.base"}, "pepita_lab.rules.base": set()}
    assert upward_imports(g) == ["pepita_lab.config (layer 0) imports pepita_lab.rules.base "
                                 "(layer 2)"]


def test_the_circle_check_finds_a_circle_through_a_lazy_import(tmp_path, monkeypatch):
    pkg = tmp_path / "pepita_lab"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text("def f():\n    from .rules import get_rule\n")
    (pkg / "rules.py").write_text("from .nets import f\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", pkg)
    assert circles(graph()) == [["pepita_lab.nets", "pepita_lab.rules"]]


@pytest.mark.parametrize("module", ["pepita_lab.nets", "pepita_lab.rules.pepita",
                                    "pepita_lab.plots.curves", "pepita_lab.cli"])
def test_every_module_has_a_layer(module):
    assert 0 <= layer(module) < len(LAYERS)


def test_a_module_left_out_of_the_layers_is_named():
    with pytest.raises(AssertionError, match="pepita_lab.nosuch has no layer"):
        layer("pepita_lab.nosuch")
