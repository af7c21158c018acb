"""The `pepita-lab` command: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import DATASETS, OUTPUT_ERRORS, PRESETS, RULES, ConfigError, RunConfig, preset

# CLI flag -> RunConfig field, for the flags that override a preset.
TRAIN_FLAGS = {
    "dataset": "dataset", "rule": "rule", "hidden": "hidden", "epochs": "epochs", "lr": "lr",
    "batch_size": "batch_size", "f_scale": "f_scale", "seed": "seed", "device": "device",
    "data_dir": "data_dir", "subset": "subset", "sign": "sign", "output_error": "output_error",
    "keep_prob": "keep_prob", "momentum": "momentum", "lr_milestones": "lr_milestones",
    "bias": "bias", "feedback_scale": "feedback_scale", "download": "download",
}


def _add_train_args(p: argparse.ArgumentParser) -> None:
    # Every default is None so that only flags the user gave override the preset.
    p.add_argument("--preset", choices=sorted(PRESETS), help="start from the paper's settings")
    p.add_argument("--dataset", help=f"one of {', '.join(DATASETS)} (default mnist)")
    p.add_argument("--rule", help=f"one of {', '.join(RULES)} (default pepita)")
    p.add_argument("--hidden", type=int, nargs="+", metavar="WIDTH",
                   help="hidden layer widths (default 1024)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float, help="learning rate (default 0.1)")
    p.add_argument("--lr-milestones", type=int, nargs="*", metavar="EPOCH",
                   help="epochs after which lr is multiplied by 0.1 (default 60 90)")
    p.add_argument("--momentum", type=float, help="(default 0.9)")
    p.add_argument("--batch-size", type=int, help="(default 64)")
    p.add_argument("--f-scale", type=float, help="scale of PEPITA's F (default 0.05)")
    p.add_argument("--sign", type=float, help="modulation x + sign F e: 1 (default) or -1")
    p.add_argument("--output-error", help=f"one of {', '.join(OUTPUT_ERRORS)}")
    p.add_argument("--keep-prob", type=float, help="dropout keep probability (default 0.9)")
    p.add_argument("--feedback-scale", type=float,
                   help="scale of the FA / DFA / DRTP feedback matrices (default 1)")
    p.add_argument("--bias", action="store_true", default=None, help="add biases to the net")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto (default), cpu or cuda")
    p.add_argument("--data-dir", help="dataset folder (default $PEPITA_LAB_DATA, else ./data)")
    p.add_argument("--no-download", dest="download", action="store_false", default=None,
                   help="never try to download missing datasets")
    p.add_argument("--subset", type=int, help="train on the first N training samples only")
    p.add_argument("--out", help="run folder to write (config.json, history.nc, checkpoint)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The preset (if any), then every flag the user gave, validated in one place."""
    overrides = {field: getattr(args, flag) for flag, field in TRAIN_FLAGS.items()
                 if getattr(args, flag, None) is not None}
    if args.preset:
        return preset(args.preset, **overrides)
    return RunConfig(**overrides).replace()


def cmd_train(args) -> int:
    from .api import train

    config = config_from_args(args)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and any(out.iterdir()):
        raise ConfigError(f"out={str(out)!r} is not empty: choose a new folder")
    run = train(config, out=out, progress=not args.quiet)
    h = run.history.isel(run=0)
    for e in range(1, h.sizes["epoch"]):  # epoch 0 is the initial net
        print(f"epoch {int(h.epoch[e])}: train_loss={float(h.train_loss[e]):.4f} "
              f"train_acc={float(h.train_acc[e]):.4f} test_loss={float(h.test_loss[e]):.4f} "
              f"test_acc={float(h.test_acc[e]):.4f} ({float(h.epoch_time[e]):.1f} s)")
    if out is not None:
        print(f"wrote {out}")
    print(f"test_acc={run.test_acc:.4f}")
    return 0


def cmd_data(args) -> int:
    from .data import install_mirror, resolve_data_dir

    dst = resolve_data_dir(args.data_dir)
    files = install_mirror(args.mirror, dst)
    print(f"{len(files)} dataset files ready in {dst}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pepita-lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train one run")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("data", help="fill the data folder from a local mirror")
    p.add_argument("--mirror", required=True, help="folder in torchvision's layout")
    p.add_argument("--data-dir", help="destination (default $PEPITA_LAB_DATA, else ./data)")
    p.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .data import DataNotFoundError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, DataNotFoundError) as err:
        print(f"pepita-lab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pepita-lab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
