"""Commands that read what is there: `data` (fill the data folder), `inspect`, `compare`,
`figures` (runs and sweep folders) and `cost` (the cost model beside a measured step)."""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError


def cmd_data(args) -> int:
    from ..data import install_mirror, resolve_data_dir

    dst = resolve_data_dir(args.data_dir)
    files = install_mirror(args.mirror, dst)  # a damaged .gz: DataIntegrityError naming it
    print(f"{len(files)} dataset files ready in {dst}")
    return 0


def load_runs_quiet(paths, what="history"):
    from ..store import load_runs

    try:
        return load_runs(paths, what=what)
    except ValueError:
        return None


def cmd_inspect(args) -> int:
    from ..reports import describe_run
    from ..store import load_run  # reading a run: neither the loop nor the bench

    run = load_run(args.run_dir)
    print(describe_run(run.history, run.status))
    return 0


def cmd_compare(args) -> int:
    from ..reports import compare_runs
    from ..store import load_runs

    history = load_runs(args.run_dirs)
    settings = sorted(k for k, v in history.coords.items() if v.dims == ("run",))
    unknown = [k for k in args.by if k not in settings]
    if unknown:
        raise ConfigError(f"--by {unknown[0]} is not a run setting; allowed: "
                          f"{', '.join(settings)}")
    print(compare_runs(history, by=args.by))
    return 0


def cmd_cost(args) -> int:
    from ..bench.cost_command import run_cost

    return run_cost(args)


def cmd_figures(args) -> int:
    from ..store import load_runs
    from ..plots import run_figures

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
    from ..plots import accuracy_map, best_points_chart, learning_curves, save_chart
    from ..records import read_netcdf
    from ..sweep import best_points, flatten

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
