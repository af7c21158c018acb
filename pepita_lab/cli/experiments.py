"""Commands that run many trainings: `demo`, `reproduce` (the paper's tables and figures),
`sweep` (grids and random search, in-process or on Dask) and `bench`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import PRESETS, ConfigError, RunConfig, preset
from .runs import load_runs_quiet
from .train import GRID_FLAGS, _refuse_empty_out, configs_from_args


def cmd_demo(args) -> int:
    """The quickstart without a browser: PEPITA and BP on MNIST, then their figures."""
    from ..api import load_runs, train
    from ..plots import run_figures

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
    from ..reproduce import f_scale_figure, run_plan, table1_plan, write_results

    if args.what == "figures":
        out = Path(args.out or f"results/figures/{args.dataset}")
        written = f_scale_figure(args.dataset, out, seeds=args.seeds, progress=not args.quiet,
                                 epochs=args.epochs, subset=args.subset,
                                 data_dir=args.data_dir, device=args.device)
        table = Path(args.table1 or f"results/table1/{args.dataset}-fc")
        if (table / "runs").is_dir():
            from ..reproduce import table1_figures

            paths = sorted(p for p in (table / "runs").iterdir() if p.is_dir())
            written += table1_figures(load_runs_quiet(paths), load_runs_quiet(
                paths, "activations"), out / "figures")
        for path in written:
            print(path)
        return 0

    if args.what == "memory":
        from ..reproduce import memory_results

        written = memory_results(args.out or "results/memory", depths=args.depths,
                                 width=args.width, batch_sizes=args.batch_sizes,
                                 device=args.device or "cpu", command=" ".join(
                                     ["pepita-lab", *sys.argv[1:]]),
                                 log=None if args.quiet else print)
        print((written[0]).read_text().rstrip())
        print(f"wrote {len(written)} files in {written[0].parent}")
        return 0

    if args.what == "deeper" and args.search:
        return _searched(args)
    if args.what == "deeper":
        from ..reproduce import deeper_plan, write_deeper_results

        plan = deeper_plan(args.dataset, depths=args.depths, width=args.width,
                           seeds=args.seeds, baseline_seeds=args.baseline_seeds or 1,
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


def _searched(args) -> int:
    """`reproduce deeper --search`: the searches, then the long runs (`reproduce.searched`)."""
    import torch

    from ..reproduce import DEEPER_VARIANTS
    from ..reproduce.searched import SearchedSpec, run_searched

    if args.lr is not None:
        raise ConfigError("--lr is not a --search flag: the search finds each cell's lr")
    torch.set_num_threads(args.threads)
    overrides = {k: getattr(args, k) for k in ("data_dir", "device", "subset")
                 if getattr(args, k) is not None}
    spec = SearchedSpec(dataset=args.dataset, depths=args.depths, width=args.width,
                        variants=args.variants or tuple(DEEPER_VARIANTS),
                        epochs=args.epochs or 30, seeds=args.seeds,
                        baseline_seeds=args.baseline_seeds or 2, candidates=args.candidates,
                        rungs=args.rungs, search_train=args.search_train,
                        search_val=args.search_val, overrides=overrides)
    out = Path(args.out or f"results/deeper/searched-{args.dataset}")
    written = run_searched(spec, out, progress=not args.quiet, figures=not args.no_figures,
                           command=" ".join(["pepita-lab", *sys.argv[1:]]),
                           train=not args.write_only)
    print((out / "table.md").read_text().rstrip())
    print(f"wrote {len(written)} files in {out}")
    return 0


def cmd_sweep(args) -> int:
    from ..sweep import (SweepSpec, check_halving_keep, check_pack_size, check_threads,
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
    # the base: the grid's first point, resolved as `train` resolves it; the points are not
    # one population (the engine packs them, conv nets one at a time): SweepSpec checks them
    first = argparse.Namespace(**{**vars(args), **{
        k: getattr(args, k)[:1] for k in GRID_FLAGS if getattr(args, k, None) is not None}})
    configs = configs_from_args(first)
    base = RunConfig.from_dict({**doc.get("base", {}), **{
        k: v for k, v in configs[0].to_dict().items()
        if getattr(args, k, None) is not None or (args.preset and k in PRESETS[args.preset])
        or k in first.rule_settings}})
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
    from ..sweep import points_table

    print(points_table(ds))  # every point, with its status
    print(f"wrote {Path(args.out) / 'sweep.nc'}")
    return 0


def _given(flag_value, doc: dict, key: str, default):
    """A sweep setting: the flag's value if given (0 included), else the spec file's, else the
    default."""
    return flag_value if flag_value is not None else doc.get(key, default)


def cmd_bench(args) -> int:
    from ..bench import run_from_args

    return run_from_args(args)
