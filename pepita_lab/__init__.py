"""pepita-lab: study PEPITA, a learning rule that trains without a backward pass.

The public API: `train`, `resume`, `train_grid`, `train_population`, `load_run`, `load_runs`,
`Run`, `RunConfig`, `preset` (the paper's settings, with your changes), `resolve` (the config
that trains: a rule's own settings where you set none), `PRESETS`, `ConfigError`,
`DivergedWarning` and `DidNotLearnWarning` (what `train` warns of). Names are imported on first use, so `import pepita_lab.plots` (altair, xarray)
does not pull in torch.
"""

__version__ = "0.5.0"

_LAZY = {"train": "api", "resume": "api", "train_grid": "api", "train_population": "api",
         "load_run": "store", "load_runs": "store", "Run": "store",
         "RunConfig": "config", "preset": "config",
         "resolve": "rules.validation", "DivergedWarning": "store",
         "DidNotLearnWarning": "store", "PRESETS": "config", "ConfigError": "config"}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'pepita_lab' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
