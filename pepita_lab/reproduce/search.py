"""The search stage of the searched deeper-net table: each cell (variant x depth) gets the same
budget, `CANDIDATES` settings log-spaced around its known-good lr, trained as populations by
`pepita_lab.grid` on a validation split held out of the training set, pruned by successive
halving (all candidates for the first rung's epochs, the best half again from the start for
the next rung's, as `pepita-lab sweep --halving-epochs` does); the winner is the best
validation accuracy of the last rung. The test split is never touched: the search trains and
scores on `validation_split` of the training images only.

A cell's search writes one JSON file per rung (`rung-<epochs>.json`) as each finishes, so an
interrupted search loses at most the rung in progress of one cell.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..config import RunConfig
from ..data import TensorData, load_data
from ..files import atomic_write_bytes

CANDIDATES = 8  # settings per cell, the same for every rule
RUNGS = (1, 3)  # successive halving: epochs of each rung (constant lr)
KEEP = 0.5  # share of candidates each rung passes on
SEARCH_TRAIN, SEARCH_VAL = 20000, 10000  # the first N training images; the last M held out
MIRROR_SPEEDS = ({"mirror_lr": 0.1, "mirror_decay": 0.5},  # the ICLR code's
                 {"mirror_lr": 0.01, "mirror_decay": 0.05})  # 10x slower, the same balance


def candidates(config: RunConfig, n: int = CANDIDATES) -> list[dict]:
    """The settings searched for the cell of `config`: `n` learning rates a factor 2 apart
    around the config's own (its rule's or variant's known-good lr: from lr/16 to 8 lr for
    n = 8); with weight mirroring, n/2 learning rates a factor 4 apart over the same span,
    each with the two mirroring speeds of `MIRROR_SPEEDS` (mirror_lr and mirror_decay)."""
    lr = config.lr
    if config.weight_mirroring:
        half = n // 2
        lrs = [lr * 4.0 ** (k - half // 2) for k in range(half)]
        return [{"lr": x, **speed} for speed in MIRROR_SPEEDS for x in lrs]
    return [{"lr": lr * 2.0 ** (k - n // 2)} for k in range(n)]


def validation_split(data: TensorData, n_train: int = SEARCH_TRAIN,
                     n_val: int = SEARCH_VAL) -> tuple[TensorData, dict]:
    """The search's data: the first `n_train` training samples to train on and the last
    `n_val` training samples as the evaluation split (in the place of the test split, which
    is never read); with the index ranges used, which must not overlap."""
    n = len(data.y_train)
    if n_train + n_val > n:
        raise ValueError(f"n_train={n_train} + n_val={n_val} exceed the {n} training samples")
    split = TensorData(data.name, data.x_train[:n_train], data.y_train[:n_train],
                       data.x_train[n - n_val:], data.y_train[n - n_val:], data.image_shape,
                       data.n_classes)
    return split, {"train": [0, n_train], "validation": [n - n_val, n]}


def training_data(config: RunConfig) -> TensorData:
    """The dataset of `config` on the CPU; the search reads only its training split."""
    return load_data(config.dataset, data_dir=config.data_dir, device="cpu",
                     download=config.download)


def search_cell(config: RunConfig, folder: Path, data: TensorData, *,
                n: int = CANDIDATES, rungs=RUNGS, keep: float = KEEP) -> dict:
    """Successive halving over `candidates(config, n)` for the cell of `config` on `data` (the
    validation split), its rungs written to `folder`; a rung already there is read, not trained.
    Returns {"settings": the winner's (or None if every candidate of the last rung diverged),
    "val_acc": its validation accuracy, "rungs": every rung's results}."""
    from ..api import as_config
    from ..sweep import grid

    folder.mkdir(parents=True, exist_ok=True)
    alive, results = candidates(config, n), []
    for i, epochs in enumerate(rungs):
        file = folder / f"rung-{epochs}.json"
        if file.exists():
            rows = json.loads(file.read_text())["candidates"]
        else:
            rows = []
            for fixed, group in _groups(alive):  # the lr's of one group: one population
                base = as_config(config).replace(epochs=epochs, lr_milestones=(), **fixed)
                ds = grid(base, lr=[c["lr"] for c in group], data=data, progress=False,
                          threads=None)
                for c, lr in zip(group, ds.lr.values):
                    point = ds.sel(lr=lr)
                    acc = float(point.test_acc.isel(epoch=-1))  # the validation split's
                    status = str(point.status.values)
                    rows.append({**c, "val_acc": acc if status == "completed" else None,
                                 "status": status,
                                 "diverged_epoch": int(point.diverged_epoch.values)})
            atomic_write_bytes(file, json.dumps({"epochs": epochs, "candidates": rows},
                                                indent=1).encode())
        results.append({"epochs": epochs, "candidates": rows})
        ranked = sorted(rows, key=_score, reverse=True)
        if i + 1 < len(rungs):
            keep_n = max(1, math.ceil(keep * len(rows)))
            alive = [{k: r[k] for k in alive[0]} for r in ranked[:keep_n]]
    best = ranked[0]
    ok = best["val_acc"] is not None and math.isfinite(best["val_acc"])
    return {"settings": {k: best[k] for k in alive[0]} if ok else None,
            "val_acc": best["val_acc"] if ok else None, "rungs": results}


def _score(row: dict) -> float:
    acc = row["val_acc"]
    return acc if acc is not None and math.isfinite(acc) else -math.inf  # diverged last


def _groups(rows: list[dict]) -> list[tuple[dict, list[dict]]]:
    """Candidates grouped by their settings other than lr (each group one population)."""
    groups: dict[str, tuple[dict, list]] = {}
    for row in rows:
        fixed = {k: v for k, v in row.items() if k != "lr"}
        groups.setdefault(json.dumps(fixed, sort_keys=True), (fixed, []))[1].append(row)
    return list(groups.values())


def split_is_disjoint(split: dict) -> bool:
    """True if the search's training and validation index ranges do not overlap."""
    (a, b), (c, d) = split["train"], split["validation"]
    return b <= c or d <= a


__all__ = ["CANDIDATES", "RUNGS", "KEEP", "SEARCH_TRAIN", "SEARCH_VAL", "MIRROR_SPEEDS",
           "candidates", "validation_split", "training_data", "search_cell",
           "split_is_disjoint"]
