"""The `pepita-lab` command: a thin layer over the Python API.

The rooms: `parser` (every flag), `train` (pepita-lab train: flags to configs, the refusals),
`runs` (data, inspect, compare, figures, cost: what reads what is there), `experiments` (demo,
reproduce, sweep, bench: many trainings). This module is the command's one error path.
"""

from __future__ import annotations

import os
import sys

from ..config import ConfigError
from .parser import build_parser
from .train import configs_from_args

__all__ = ["main", "build_parser", "configs_from_args"]


def main(argv: list[str] | None = None) -> int:
    """The command's one error path: refused input and files end in one line naming the
    thing and what to do (exit 2), an interruption exits 130, anything else one line with
    the hint to rerun with --debug (exit 1), which shows the traceback."""
    from ..data import DataIntegrityError, DataNotFoundError

    args = build_parser().parse_args(argv)
    args.argv = argv  # the words as given (sweeps keep the order of their grid flags)
    try:
        import_modules(getattr(args, "imports", None) or [])
        return args.func(args)
    except BrokenPipeError:  # `pepita-lab inspect R | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("pepita-lab: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        user = (ConfigError, DataNotFoundError, DataIntegrityError, OSError)
        ours = isinstance(err, user)
        print(f"pepita-lab: error: {_one_line(err, ours)}" + ("" if ours else
              " (an internal error: rerun with --debug for the traceback)"), file=sys.stderr)
        return 2 if ours else 1


def import_modules(modules: list[str]) -> None:
    """`--import MODULE`: import each module (from the current folder, as `python -m` would
    find it, or the Python path), so the rules it registers are known to `--rule`."""
    import importlib

    if modules and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"--import {module}: {err} (a module in the current folder or "
                              "on PYTHONPATH)") from None


def _one_line(err: BaseException, ours: bool) -> str:
    """An exception as one line: an OS error as its reason and file; one of ours as its
    message; anything else with its type."""
    if isinstance(err, OSError) and err.strerror:
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror}{where}"
    text = " ".join(str(err).split()) or type(err).__name__
    return text if ours else f"{type(err).__name__}: {text}"
