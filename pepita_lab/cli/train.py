"""`pepita-lab train`: flags to configs (a preset, then the flags given; several values of a
member field a population), the refusals, one run or a population trained and written."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..config import MEMBER_FIELDS, ConfigError, RunConfig, field_kind, field_names, preset
from ..rules.validation import resolve, resolve_and_say


# Flags that take several values (a population): the member fields that are single values.
GRID_FLAGS = tuple(k for k in MEMBER_FIELDS if field_kind(k) != "ints")


def configs_from_args(args: argparse.Namespace) -> list[RunConfig]:
    """The preset (if any), then every flag the user gave (the fields set), resolved for
    training as `pepita_lab.train` resolves (`rules.resolve`: the rule's own settings where no
    flag was given); several values of a member field (--f-scale, --lr, --seed, ...) give
    their grid, one config per point."""
    import itertools

    overrides = {name: getattr(args, name) for name in field_names()
                 if getattr(args, name, None) is not None}
    grid = {k: overrides.pop(k) for k in GRID_FLAGS if k in overrides}
    for k, values in grid.items():
        if len(set(values)) < len(values):
            raise ConfigError(f"{k}={values!r} is not allowed: a value is repeated")
    # the base holds the grid's first point, so settings that need each other (a grid flag
    # and a single one) are checked together
    overrides.update({k: values[0] for k, values in grid.items()})
    base = preset(args.preset, **overrides) if args.preset else RunConfig(**overrides)
    _refuse_conv_flags_on_fc(args, base)
    base = _resolved(args, base)
    configs = [base.replace(**dict(zip(grid, values)))
               for values in itertools.product(*grid.values())]
    return resolve(configs) if len(configs) > 1 else configs


def _resolved(args, base: RunConfig) -> RunConfig:
    """`base` resolved (`rules.resolve`: its rule's own settings where no flag was given);
    which it took is kept in `args.rule_settings` and said on stderr."""
    from ..rules.defaults import describe

    base, args.rule_settings = resolve_and_say(base)
    if args.rule_settings:
        print(f"pepita-lab: {describe(args.rule_settings, base.rule)}", file=sys.stderr)
    return base


class _PrintEpochs:
    """Training callback: one line per completed epoch (beside the progress bar)."""

    def on_epoch_end(self, trainer) -> None:
        from tqdm.auto import tqdm

        v = {k: vals[-1] for k, vals in trainer.history.values.items()}
        tqdm.write(f"epoch {trainer.epoch}: train_loss={v['train_loss']:.4f} "
                   f"train_acc={v['train_acc']:.4f} test_loss={v['test_loss']:.4f} "
                   f"test_acc={v['test_acc']:.4f} ({v['epoch_time']:.1f} s)")


# Flags that keep their meaning with --resume: --epochs extends the run.
RESUME_FLAGS = ("resume", "epochs", "quiet")


def _refuse_flags_with_resume(args) -> None:
    """--resume continues a run with its own settings: any other setting is refused, so that
    none is silently ignored."""
    given = [k for k in [*field_names(), "preset", "out", "trace_every", "snapshot_epochs"]
             if k not in RESUME_FLAGS and getattr(args, k, None) not in (None, False)]
    if args.overwrite:
        given.append("overwrite")
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ConfigError(f"{flag} cannot be used with --resume: a resumed run keeps its own "
                          "settings (only --epochs may extend it); start a new run to change "
                          "them")


def _refuse_empty_out(args) -> None:
    """`--out ''` (or blanks) would train and write nothing, silently."""
    if args.out is not None and not args.out.strip():
        raise ConfigError(f"--out {args.out!r} is not allowed: expected a folder name (leave "
                          "--out out to train without writing a run folder)")


def _refuse_conv_flags_on_fc(args, config: RunConfig) -> None:
    from ..config import CONV_FIELDS

    given = [k for k in CONV_FIELDS if getattr(args, k, None) is not None]
    if given and config.model != "conv":
        raise ConfigError(f"--{given[0].replace('_', '-')} applies to conv nets only: add "
                          "--model conv (or drop it)")


def _stop_on_signals():
    """SIGINT (Ctrl-C) and SIGTERM ask the run to stop after the current step."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_train(args) -> int:
    from ..api import resume, train

    callbacks = (_PrintEpochs(),)
    _refuse_empty_out(args)
    if args.resume:
        _refuse_flags_with_resume(args)
        out = Path(args.resume)
        stop = _stop_on_signals()
        with _said_below():
            run = resume(out, progress=not args.quiet, callbacks=callbacks,
                         should_stop=stop.is_set, epochs=args.epochs)
    else:
        configs = configs_from_args(args)
        _warn_unlearnable(configs[0])
        out = Path(args.out) if args.out else None
        stop = _stop_on_signals()
        if len(configs) > 1:
            return _train_population(configs, out, args, stop)
        with _said_below():
            run = train(configs[0], out=out, progress=not args.quiet,
                        trace_every=args.trace_every, snapshot_epochs=args.snapshot_epochs,
                        callbacks=callbacks, should_stop=stop.is_set,
                        overwrite=args.overwrite)
    last = int(run.history.epoch[-1])
    where = f" in {out}" if out is not None else ""
    if run.status == "diverged":
        a = run.history.attrs
        print(f"pepita-lab: run diverged in epoch {a['diverged_epoch']} at step "
              f"{a['diverged_step']} ({a['diverged_reason']}); the last good checkpoint "
              f"(epoch {last}) is kept{where}", file=sys.stderr)
        return 3
    if run.status == "stopped":
        hint = f"; continue with: pepita-lab train --resume {out}" if out is not None else ""
        print(f"pepita-lab: interrupted; epoch {last} saved{where}{hint}", file=sys.stderr)
        return 130
    if out is not None:
        print(f"wrote {out}")
    print(f"test_acc={run.test_acc:.4f}")
    if "not_learned" in run.history.attrs:  # completed, but at chance: not a divergence
        print(f"pepita-lab: the run completed but {run.history.attrs['not_learned']}")
    return 0


@contextlib.contextmanager
def _said_below():
    """The API's warnings on a diverged run or one that did not learn, silenced: the command
    says the same in its own lines below."""
    import warnings

    from ..store import DidNotLearnWarning, DivergedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DivergedWarning)
        warnings.simplefilter("ignore", DidNotLearnWarning)
        yield


def _warn_unlearnable(config: RunConfig) -> None:
    """Settings known not to learn, said before training (advice.py); the run still goes."""
    from ..advice import unlearnable

    for reason in unlearnable(config):
        print(f"pepita-lab: warning: {reason}", file=sys.stderr)


def _train_population(configs, out, args, stop) -> int:
    """Several values of --f-scale / --lr / --seed: their grid as one population, one run
    folder per member under --out."""
    from ..api import train_population

    with _said_below():
        runs = train_population(configs, out=out, progress=not args.quiet,
                                trace_every=args.trace_every,
                                snapshot_epochs=args.snapshot_epochs,
                                should_stop=stop.is_set, overwrite=args.overwrite)
    for run in runs:
        c = run.config
        print(f"{run.history.run.item()}: f_scale={c.f_scale:g} lr={c.lr:g} seed={c.seed} "
              f"status={run.status} test_acc={run.test_acc:.4f}"
              + (f" ({run.history.attrs['not_learned']})" if "not_learned" in run.history.attrs
                 else ""))
    if out is not None:
        print(f"wrote {len(runs)} run folders in {out}")
    if any(r.status == "stopped" for r in runs):
        return 130
    return 3 if any(r.status == "diverged" for r in runs) else 0
