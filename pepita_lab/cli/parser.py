"""The command's parser: every RunConfig field as a flag, typed and documented from the
field, and each command's own flags."""

from __future__ import annotations

import argparse

from ..config import DATASETS, PRESETS, RunConfig, field_kind
from .experiments import cmd_bench, cmd_demo, cmd_reproduce, cmd_sweep
from .runs import cmd_compare, cmd_cost, cmd_data, cmd_figures, cmd_inspect
from .train import GRID_FLAGS, cmd_train


class Parser(argparse.ArgumentParser):
    """argparse with the lab's one-line errors (`pepita-lab: error: ...`, exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"pepita-lab: error: {message} (see {self.prog} --help)\n")

    def parse_args(self, args=None, namespace=None):
        """As argparse's, but an unknown flag is refused by the subcommand's parser (its
        error points to `pepita-lab train --help`, not the top-level help), with the
        nearest flag it has (`--learnig-rate`: did you mean --lr?)."""
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            parser = self
            while parser._subparsers is not None:  # down to the subcommand given
                action = parser._subparsers._group_actions[0]
                chosen = getattr(ns, action.dest, None)
                if chosen not in action.choices:
                    break
                parser = action.choices[chosen]
            hint = _nearest_flag(parser, extras)
            parser.error(f"unrecognized arguments: {' '.join(extras)}{hint}")
        return ns


def _nearest_flag(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """'; did you mean --lr?' for the first unknown flag in `extras`, if one is near."""
    from ..config.names import nearest

    flags = [f for f in extras if f.startswith("--")]
    if not flags:
        return ""
    known = {o[2:].replace("-", "_"): o for a in parser._actions for o in a.option_strings
             if o.startswith("--")}
    guess = nearest(flags[0][2:].split("=")[0].replace("-", "_"), known)
    return f"; did you mean {known[guess]}?" if guess is not None else ""


def _field_flag(p: argparse.ArgumentParser, f, grid: bool) -> None:
    """The flag of RunConfig field `f`, typed and documented from the field; with `grid`, a
    member field (see `config.setting`) takes several values: a population."""
    kind, default = field_kind(f.name), getattr(RunConfig(), f.name)
    flag = "--" + f.name.replace("_", "-")
    shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
    doc = f.metadata["doc"]
    if f.name == "rule":
        from ..rules import rule_names

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
    p.add_argument("--import", dest="imports", action="append", metavar="MODULE",
                   help="import MODULE first (from the current folder or the Python path): "
                        "a module that registers a rule of your own (register_rule), for "
                        "--rule; a sweep's Dask workers import it too; repeatable")


def build_parser() -> argparse.ArgumentParser:
    from ..bench.args import add_bench_arguments  # the flags only: not the harness, not torch

    parser = Parser(prog="pepita-lab",
                    description="The `pepita-lab` command: a thin layer over the Python API.")
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
    p = sub.add_parser("cost", help="multiply-accumulates and memory per step: the model "
                                    "beside counted MACs, measured peak memory and step times")
    p.add_argument("--dataset", default="mnist", choices=DATASETS)
    p.add_argument("--hidden", type=int, nargs="+", default=[1024])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--model", default="fc", choices=["fc", "conv"],
                   help="conv: the paper's conv net (--hidden ignored)")
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
    r.add_argument("--baseline-seeds", type=int,
                   help="seeds of FA and FF (default 1; with --search: of BP, FA and FF, "
                        "default 2)")
    r.add_argument("--epochs", type=int, help="override the paper's 100 epochs (the lr "
                                              "milestones move to 60 %% and 90 %% of them; "
                                              "with --search default 30)")
    r.add_argument("--lr", type=float, help="the lr of the variants that take the paper's "
                                            "(FF and pepita+wd+norm keep their own)")
    r.add_argument("--search", action="store_true",
                   help="each cell at its own settings: search them on a validation split "
                        "held out of the training set (successive halving), then train every "
                        "cell long over seeds; resumable, and processes running the same "
                        "command share the work (docs/results/deeper/README.md)")
    r.add_argument("--candidates", type=int, default=8,
                   help="--search: settings tried per cell (default 8)")
    r.add_argument("--rungs", type=int, nargs="+", default=[1, 3],
                   help="--search: epochs of each halving rung (default 1 3)")
    r.add_argument("--search-train", type=int, default=20000,
                   help="--search: training samples of the search (the first N)")
    r.add_argument("--search-val", type=int, default=10000,
                   help="--search: validation samples (the last N of the training set)")
    r.add_argument("--threads", type=int, default=1,
                   help="--search: torch threads of this process (default 1)")
    r.add_argument("--write-only", action="store_true",
                   help="--search: train nothing; write the tables and figures from what is "
                        "finished so far")
    r.add_argument("--subset", type=int, help="train on the first N samples only")
    r.add_argument("--data-dir")
    r.add_argument("--device")
    r.add_argument("--out", help="results folder (default results/deeper/DATASET)")
    r.add_argument("--no-figures", action="store_true")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_reproduce)
    r = rsub.add_parser("memory", help="measured peak step memory and counted MACs of every "
                                       "rule, 1-3 hidden layers and the conv net, batch 1, "
                                       "64, 512 (docs/memory.md)")
    r.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3])
    r.add_argument("--width", type=int, default=1024)
    r.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 512])
    r.add_argument("--device", choices=["cpu", "cuda"])
    r.add_argument("--out", help="results folder (default results/memory)")
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
