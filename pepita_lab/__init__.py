"""pepita-lab: study PEPITA, a learning rule that trains without a backward pass.

The public API: `train`, `resume`, `grid` (fields x values x seeds, the swept fields as
dimensions), `train_population`, `load_run`, `load_runs`, `Run`, `register_rule` (a rule of
your own, from your own module), `RunConfig`, `preset` (the paper's settings, with your
changes), `resolve` (the config
that trains: a rule's own settings where you set none), `PRESETS`, `ConfigError`,
`DivergedWarning` and `DidNotLearnWarning` (what `train` warns of). Names are imported on first use, so `import pepita_lab.plots` (altair, xarray)
does not pull in torch.
"""

__version__ = "0.5.0"

_LAZY = {"train": "api", "resume": "api", "grid": "sweep.grid", "train_grid": "sweep.grid",
         "train_population": "api",
         "load_run": "store", "load_runs": "store", "Run": "store",
         "register_rule": "rules", "RunConfig": "config", "preset": "config",
         "resolve": "rules.validation", "DivergedWarning": "store",
         "DidNotLearnWarning": "store", "PRESETS": "config", "ConfigError": "config"}

__all__ = [*(k for k in _LAZY if k != "train_grid"), "__version__"]  # train_grid: old code


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'pepita_lab' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
