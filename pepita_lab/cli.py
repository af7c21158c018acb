"""The `pepita-lab` command: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import (DATASETS, MEMBER_FIELDS, PRESETS, ConfigError, RunConfig, field_kind,
                     field_names, preset)

class Parser(argparse.ArgumentParser):
    """argparse with the lab's one-line errors (`pepita-lab: error: ...`, exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"pepita-lab: error: {message} (see {self.prog} --help)\n")


def _field_flag(p: argparse.ArgumentParser, f, grid: bool) -> None:
    """The flag of RunConfig field `f`, typed and documented from the field; with `grid`, a
    member field (see `config.setting`) takes several values: a population."""
    kind, default = field_kind(f.name), getattr(RunConfig(), f.name)
    flag = "--" + f.name.replace("_", "-")
    shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
    doc = f.metadata["doc"]
    if f.name == "rule":
        from .rules import rule_names

        doc += f": {', '.join(rule_names())}"
    help_ = f"{doc} (default {shown})".replace("%", "%%")
    if kind == "bool":
        p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_)
        return
    kw = {"type": {"int": int, "int?": int, "float": float, "ints": int}.get(kind, str),
          "metavar": f.name.upper().replace("_", "-"), "help": help_}
    if kind == "ints":
        kw["nargs"] = "*"
    elif grid and f.name in GRID_FLAGS:
        kw["nargs"] = "+"
        kw["help"] += "; several values train a population"
    p.add_argument(flag, **kw)


def _add_train_args(p: argparse.ArgumentParser) -> None:
    """Every RunConfig field as a flag (`--f-scale` for f_scale ...), then the run's own."""
    import dataclasses

    # Every default is None so that only flags the user gave override the preset.
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from the paper's settings")
    for f in dataclasses.fields(RunConfig):
        _field_flag(p, f, grid=True)
    p.add_argument("--out", help="run folder to write (config.json, history.nc, "
                                 "activations.nc, checkpoint.pt)")
    p.add_argument("--trace-every", type=int, metavar="N",
                   help="also record traces every N steps (default: every epoch only)")
    p.add_argument("--snapshot-epochs", type=int, nargs="+", metavar="EPOCH",
                   help="epochs at which to keep activation differences (default: every "
                        "epoch of short runs; 0 1 2 5 10 20 50 ... and the last of long ones)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last complete epoch (its own "
                        "settings; --epochs may extend it)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (refused without this flag)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


# Flags that take several values (a population): the member fields that are single values.
GRID_FLAGS = tuple(k for k in MEMBER_FIELDS if field_kind(k) != "ints")


def configs_from_args(args: argparse.Namespace) -> list[RunConfig]:
    """The preset (if any), then every flag the user gave, validated in one place; several
    values of a member field (--f-scale, --lr, --seed, ...) give their grid, one config per
    point."""
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
    base = preset(args.preset, **overrides) if args.preset else RunConfig(**overrides).replace()
    _refuse_conv_flags_on_fc(args, base)
    base = _with_rule_settings(args, base, given=[*overrides, *grid])
    return [base.replace(**dict(zip(grid, values)))
            for values in itertools.product(*grid.values())]


def _with_rule_settings(args, base: RunConfig, given) -> RunConfig:
    """`base` with its rule's own settings where no flag was given (rules/settings.py); which
    it took is kept in `args.rule_settings` and said on stderr."""
    from .rules.settings import describe, with_rule_settings

    base, args.rule_settings = with_rule_settings(base, explicit=given)
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
    from .config import CONV_FIELDS

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
    from .api import resume, train

    callbacks = (_PrintEpochs(),)
    _refuse_empty_out(args)
    if args.resume:
        _refuse_flags_with_resume(args)
        out = Path(args.resume)
        stop = _stop_on_signals()
        run = resume(out, progress=not args.quiet, callbacks=callbacks,
                     should_stop=stop.is_set, epochs=args.epochs)
    else:
        configs = configs_from_args(args)
        _warn_unlearnable(configs[0])
        out = Path(args.out) if args.out else None
        stop = _stop_on_signals()
        if len(configs) > 1:
            return _train_population(configs, out, args, stop)
        run = train(configs[0], out=out, progress=not args.quiet,
                    trace_every=args.trace_every, snapshot_epochs=args.snapshot_epochs,
                    callbacks=callbacks, should_stop=stop.is_set, overwrite=args.overwrite)
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


def _warn_unlearnable(config: RunConfig) -> None:
    """Settings known not to learn, said before training (advice.py); the run still goes."""
    from .advice import unlearnable

    for reason in unlearnable(config):
        print(f"pepita-lab: warning: {reason}", file=sys.stderr)


def _train_population(configs, out, args, stop) -> int:
    """Several values of --f-scale / --lr / --seed: their grid as one population, one run
    folder per member under --out."""
    from .api import train_population

    runs = train_population(configs, out=out, progress=not args.quiet,
                            trace_every=args.trace_every, snapshot_epochs=args.snapshot_epochs,
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


def cmd_data(args) -> int:
    from .data import install_mirror, resolve_data_dir

    dst = resolve_data_dir(args.data_dir)
    files = install_mirror(args.mirror, dst)  # a damaged .gz: DataIntegrityError naming it
    print(f"{len(files)} dataset files ready in {dst}")
    return 0


def load_runs_quiet(paths, what="history"):
    from .store import load_runs

    try:
        return load_runs(paths, what=what)
    except ValueError:
        return None


def cmd_inspect(args) -> int:
    from .reports import describe_run
    from .store import load_run  # reading a run: neither the loop nor the bench

    run = load_run(args.run_dir)
    print(describe_run(run.history, run.status))
    return 0


def cmd_compare(args) -> int:
    from .reports import compare_runs
    from .store import load_runs

    history = load_runs(args.run_dirs)
    settings = sorted(k for k, v in history.coords.items() if v.dims == ("run",))
    unknown = [k for k in args.by if k not in settings]
    if unknown:
        raise ConfigError(f"--by {unknown[0]} is not a run setting; allowed: "
                          f"{', '.join(settings)}")
    print(compare_runs(history, by=args.by))
    return 0


def cmd_cost(args) -> int:
    from .analysis import measure_step_time
    from .config import INPUT_SIZES, N_CLASSES
    from .reports import cost_report
    from .rules import rule_names

    RunConfig(dataset=args.dataset, hidden=tuple(args.hidden),
              batch_size=args.batch_size).replace()  # refuses bad widths, batch sizes
    sizes = [INPUT_SIZES[args.dataset], *args.hidden, N_CLASSES[args.dataset]]
    times = None
    if not args.no_measure:
        times = {rule: measure_step_time(RunConfig(rule=rule, dataset=args.dataset,
                                                   hidden=tuple(args.hidden),
                                                   batch_size=args.batch_size,
                                                   device=args.device))
                 for rule in rule_names()}
    print(cost_report(sizes, args.batch_size, times))
    return 0


def cmd_figures(args) -> int:
    from .store import load_runs
    from .plots import run_figures

    if len(args.run_dirs) == 1 and (Path(args.run_dirs[0]) / "sweep.nc").is_file():
        return _sweep_figures(Path(args.run_dirs[0]), args)
    history = load_runs(args.run_dirs)
    try:
        activations = load_runs(args.run_dirs, what="activations")
    except ValueError:  # some run has no activation snapshots
        activations = None
    out = Path(args.out) if args.out else Path(args.run_dirs[0]) / "figures"
    written = run_figures(history, activations, out, formats=args.format)
    for path in written:
        print(path)
    print(f"{len(written)} figures in {out}")
    return 0


def _sweep_figures(folder: Path, args) -> int:
    """The stability map, curves by group and the best points of a sweep folder."""
    from .plots import accuracy_map, best_points_chart, learning_curves, save_chart
    from .records import read_netcdf
    from .sweep import best_points, flatten

    ds = read_netcdf(folder / "sweep.nc")
    flat = flatten(ds)
    swept = [d for d in ds.dims if d not in ("epoch", "layer", "step", "seed", "run")]
    x, y = (swept + ["f_scale", "lr"])[:2] if len(swept) != 1 else (swept[0], "seed")
    out = Path(args.out) if args.out else folder / "figures"
    charts = {"stability_map": accuracy_map(flat, x=x, y=y),
              "curves_by_group": learning_curves(flat, color=swept[0] if swept else "rule"),
              "best_points": best_points_chart(best_points(ds, n=10))}
    written = [save_chart(c, out / f"{name}.{fmt}") for name, c in charts.items()
               for fmt in args.format]
    for path in written:
        print(path)
    print(f"{len(written)} figures in {out}")
    return 0


def cmd_demo(args) -> int:
    """The quickstart without a browser: PEPITA and BP on MNIST, then their figures."""
    from .api import load_runs, train
    from .plots import run_figures

    out = Path(args.out)
    paths = []
    for rule in ("pepita", "bp"):
        config = preset("paper-mnist", rule=rule, epochs=args.epochs, subset=args.subset,
                        data_dir=args.data_dir, device=args.device or "auto")
        paths.append(out / rule)
        run = train(config, out=paths[-1], progress=not args.quiet)
        print(f"{rule}: test_acc={run.test_acc:.4f}")
    written = run_figures(load_runs(paths), load_runs(paths, what="activations"),
                          out / "figures")
    print(f"{len(written)} figures in {out / 'figures'}")
    return 0


def cmd_reproduce(args) -> int:
    from .reproduce import f_scale_figure, run_plan, table1_plan, write_results

    if args.what == "figures":
        out = Path(args.out or f"results/figures/{args.dataset}")
        written = f_scale_figure(args.dataset, out, seeds=args.seeds, progress=not args.quiet,
                                 epochs=args.epochs, subset=args.subset,
                                 data_dir=args.data_dir, device=args.device)
        table = Path(args.table1 or f"results/table1/{args.dataset}-fc")
        if (table / "runs").is_dir():
            from .reproduce import table1_figures

            paths = sorted(p for p in (table / "runs").iterdir() if p.is_dir())
            written += table1_figures(load_runs_quiet(paths), load_runs_quiet(
                paths, "activations"), out / "figures")
        for path in written:
            print(path)
        return 0

    if args.what == "deeper":
        from .reproduce import deeper_plan, write_deeper_results

        plan = deeper_plan(args.dataset, depths=args.depths, width=args.width,
                           seeds=args.seeds, baseline_seeds=args.baseline_seeds,
                           variants=args.variants, epochs=args.epochs, lr=args.lr,
                           out=args.out or f"results/deeper/{args.dataset}",
                           subset=args.subset, data_dir=args.data_dir, device=args.device)
        paths = run_plan(plan, progress=not args.quiet)
        written = write_deeper_results(plan, paths, figures=not args.no_figures)
        print((plan.out / "table.md").read_text().rstrip())
        print(f"wrote {len(written)} files in {plan.out}")
        return 0
    out = args.out or f"results/table1/{args.dataset}-{args.model}"
    plan = table1_plan(args.dataset, seeds=args.seeds, baseline_seeds=args.baseline_seeds,
                       model=args.model, out=out, epochs=args.epochs, subset=args.subset,
                       data_dir=args.data_dir, device=args.device)
    paths = run_plan(plan, progress=not args.quiet)
    written = write_results(plan, paths, figures=not args.no_figures)
    print((plan.out / "table.md").read_text().rstrip())
    print(f"wrote {len(written)} files in {plan.out}")
    return 0


def cmd_sweep(args) -> int:
    from .sweep import (SweepSpec, check_halving_keep, check_pack_size, check_threads,
                        load_spec_file, parse_assignments, run_sweep)

    _refuse_empty_out(args)
    if not args.out:
        raise ConfigError("a sweep needs --out FOLDER: its points, sweep.json and sweep.nc go "
                          "there (rerunning the command finishes an interrupted sweep)")
    for flag in ("resume", "overwrite", "trace_every", "snapshot_epochs"):
        if getattr(args, flag, None):
            raise ConfigError(f"--{flag.replace('_', '-')} is not a sweep flag: a sweep resumes "
                              "by rerunning its command")
    for flag, check in (("pack_size", check_pack_size), ("halving_keep", check_halving_keep),
                        ("threads", check_threads)):
        if getattr(args, flag) is not None:  # 0 is a value too: refused, not the default
            check(getattr(args, flag), "--" + flag.replace("_", "-"))
    doc = load_spec_file(args.spec) if args.spec else {}
    configs = configs_from_args(args)  # the base and the grid of --f-scale / --lr / --seed
    base = RunConfig.from_dict({**doc.get("base", {}), **{
        k: v for k, v in configs[0].to_dict().items()
        if getattr(args, k, None) is not None or (args.preset and k in PRESETS[args.preset])
        or k in args.rule_settings}})
    grid = dict(doc.get("grid", {}))
    # --f-scale 0.01 0.1, --lr ...: grid dimensions (seeds apart), in the order given
    given = [k for k in GRID_FLAGS if k != "seed" and getattr(args, k) is not None]
    words = list(getattr(args, "argv", None) or sys.argv[1:])
    position = lambda k: next((i for i, w in enumerate(words)  # noqa: E731
                               if w.split("=")[0] == "--" + k.replace("_", "-")), len(words))
    for name in sorted(given, key=position):
        grid[name] = list(getattr(args, name))
    grid.update(parse_assignments(args.grid, "grid"))
    seeds = list(args.seed) if args.seed else list(doc.get("seeds", [0]))
    spec = SweepSpec(
        base=base, grid=grid, seeds=seeds,
        random={**doc.get("random", {}), **parse_assignments(args.random, "random")},
        n_random=args.n_random if args.n_random is not None else doc.get("n_random", 0),
        pack_size=_given(args.pack_size, doc, "pack_size", 16),
        halving_epochs=args.halving_epochs or doc.get("halving_epochs", []),
        halving_keep=_given(args.halving_keep, doc, "halving_keep", 0.5),
        threads=_given(args.threads, doc, "threads", 1))
    ds = run_sweep(spec, args.out, workers=args.workers, scheduler=args.scheduler,
                   progress=not args.quiet)
    from .sweep import best_points

    print(best_points(ds).to_string(index=False))
    print(f"wrote {Path(args.out) / 'sweep.nc'}")
    return 0


def _given(flag_value, doc: dict, key: str, default):
    """A sweep setting: the flag's value if given (0 included), else the spec file's, else the
    default."""
    return flag_value if flag_value is not None else doc.get(key, default)


def cmd_bench(args) -> int:
    from .bench import run_from_args

    return run_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    from .bench.args import add_bench_arguments  # the flags only: not the harness, not torch

    parser = Parser(prog="pepita-lab", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error (e.g. pepita-lab --debug train ...)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one run")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("inspect", help="summarise one run folder")
    p.add_argument("run_dir")
    p.set_defaults(func=cmd_inspect)
    p = sub.add_parser("compare", help="table of final accuracies across run folders")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--by", nargs="+", default=["rule", "dataset"],
                   help="run settings to group seeds by (default: rule dataset)")
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("cost", help="multiply-accumulates and memory per step, beside "
                                    "measured step times")
    p.add_argument("--dataset", default="mnist", choices=DATASETS)
    p.add_argument("--hidden", type=int, nargs="+", default=[1024])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-measure", action="store_true", help="the model only, no timing")
    p.set_defaults(func=cmd_cost)
    p = sub.add_parser("figures", help="write PNG / SVG figures of run folders")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", help="folder for the figures (default RUN_DIR/figures)")
    p.add_argument("--format", nargs="+", default=["png"], choices=["png", "svg", "html"])
    p.set_defaults(func=cmd_figures)
    p = sub.add_parser("demo", help="the quickstart without a browser: train PEPITA and BP "
                                    "on MNIST and write their figures")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--subset", type=int)
    p.add_argument("--data-dir")
    p.add_argument("--device")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("reproduce", help="reproduce the paper's experiments")
    rsub = p.add_subparsers(dest="what", required=True)
    r = rsub.add_parser("table1", help="BP, FA, DRTP and PEPITA over seeds, beside the paper")
    r.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist", "cifar10",
                                                          "cifar100", "synthetic"])
    r.add_argument("--model", default="fc", choices=["fc", "conv"])
    r.add_argument("--seeds", type=int, default=3, help="seeds of PEPITA and BP (default 3)")
    r.add_argument("--baseline-seeds", type=int,
                   help="seeds of FA and DRTP (default: as --seeds)")
    r.add_argument("--epochs", type=int, help="override the paper's 100 epochs")
    r.add_argument("--subset", type=int, help="train on the first N samples only")
    r.add_argument("--data-dir")
    r.add_argument("--device")
    r.add_argument("--out", help="results folder (default results/table1/DATASET-MODEL)")
    r.add_argument("--no-figures", action="store_true")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_reproduce)
    r = rsub.add_parser("deeper", help="1-3 hidden layers of 1024: PEPITA plain, with weight "
                                       "decay + normalisation, with weight mirroring; BP, FA, "
                                       "FF (ICLR 2024 follow-up)")
    r.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist", "cifar10",
                                                          "cifar100", "synthetic"])
    r.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3],
                   help="numbers of hidden layers (default 1 2 3)")
    r.add_argument("--width", type=int, default=1024, help="units per hidden layer")
    r.add_argument("--variants", nargs="+", metavar="VARIANT",
                   help="a subset of: pepita, pepita-minus, pepita+wd+norm, pepita+mirror, bp, fa, ff")
    r.add_argument("--seeds", type=int, default=3,
                   help="seeds of the PEPITA variants and BP (default 3)")
    r.add_argument("--baseline-seeds", type=int, default=1,
                   help="seeds of FA and FF (default 1)")
    r.add_argument("--epochs", type=int, help="override the paper's 100 epochs (the lr "
                                              "milestones move to 60 %% and 90 %% of them)")
    r.add_argument("--lr", type=float, help="the lr of the variants that take the paper's "
                                            "(FF and pepita+wd+norm keep their own)")
    r.add_argument("--subset", type=int, help="train on the first N samples only")
    r.add_argument("--data-dir")
    r.add_argument("--device")
    r.add_argument("--out", help="results folder (default results/deeper/DATASET)")
    r.add_argument("--no-figures", action="store_true")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_reproduce)
    r = rsub.add_parser("figures", help="final accuracy against F scale (6 scales, 0.01 to 1) "
                                        "and the figures of a table1 results folder")
    r.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist", "cifar10",
                                                          "cifar100", "synthetic"])
    r.add_argument("--seeds", type=int, default=1)
    r.add_argument("--epochs", type=int, help="override the paper's 100 epochs")
    r.add_argument("--subset", type=int)
    r.add_argument("--data-dir")
    r.add_argument("--device")
    r.add_argument("--table1", help="a table1 results folder to draw (default "
                                    "results/table1/DATASET-fc)")
    r.add_argument("--out", help="default results/figures/DATASET")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_reproduce)
    p = sub.add_parser("sweep", help="a grid / random search over settings x seeds, packed "
                                     "into populations, in-process or on Dask")
    _add_train_args(p)
    p.add_argument("--spec", help="a YAML or TOML file: base, grid, seeds, random, n_random, "
                                  "pack_size, halving_epochs, halving_keep, threads")
    p.add_argument("--grid", nargs="+", metavar="FIELD=V1,V2",
                   help="sweep any config field (hidden: 256;512x512)")
    p.add_argument("--random", nargs="+", metavar="FIELD=LOW:HIGH",
                   help="random search: a log-uniform range or a list of choices")
    p.add_argument("--n-random", type=int, help="number of random points")
    p.add_argument("--workers", type=int, default=0,
                   help="run on a local Dask cluster with N worker processes (0: in-process)")
    p.add_argument("--scheduler", help="address of a Dask scheduler (tcp://host:8786)")
    p.add_argument("--pack-size", type=int, help="most points trained as one population")
    p.add_argument("--halving-epochs", type=int, nargs="+", metavar="EPOCH",
                   help="successive halving: rank points at these epochs, keep the best")
    p.add_argument("--halving-keep", type=float, help="fraction kept at each rung (0.5)")
    p.add_argument("--threads", type=int, help="torch threads per task (default 1)")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("bench", help="step and epoch times of every rule against the "
                                     "machine's matrix-product peak")
    add_bench_arguments(p)
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("data", help="fill the data folder from a local mirror")
    p.add_argument("--mirror", required=True, help="folder in torchvision's layout")
    p.add_argument("--data-dir", help="destination (default $PEPITA_LAB_DATA, else ./data)")
    p.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command's one error path: refused input and files end in one line naming the
    thing and what to do (exit 2), an interruption exits 130, anything else one line with
    the hint to rerun with --debug (exit 1), which shows the traceback."""
    from .data import DataIntegrityError, DataNotFoundError

    args = build_parser().parse_args(argv)
    args.argv = argv  # the words as given (sweeps keep the order of their grid flags)
    try:
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


def _one_line(err: BaseException, ours: bool) -> str:
    """An exception as one line: an OS error as its reason and file; one of ours as its
    message; anything else with its type."""
    if isinstance(err, OSError) and err.strerror:
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror}{where}"
    text = " ".join(str(err).split()) or type(err).__name__
    return text if ours else f"{type(err).__name__}: {text}"


if __name__ == "__main__":
    sys.exit(main())
