"""What the searched deeper-net reproduction has finished, read from its folder alone (no
checkpoint needed): each cell's search result, each long run's state."""

from __future__ import annotations

import json
from pathlib import Path

from ..config import RunConfig
from ..records import read_netcdf


def depth_of(cell: str) -> int:
    return int(cell.split("-", 1)[0][1:])


def variant_of_cell(cell: str) -> str:
    """The variant of a cell name `h<depth>-<variant>`."""
    return cell.split("-", 1)[1]


def search_result(out: Path, cell: str) -> dict | None:
    file = out / "search" / cell / "result.json"
    return json.loads(file.read_text()) if file.exists() else None


def long_configs(spec, config: RunConfig, settings: dict) -> list[RunConfig]:
    """The long runs of a cell (`spec` a SearchedSpec): its base config with the searched
    `settings`, one per seed."""
    from ..rules.validation import resolve

    return [resolve(config.replace(seed=s, **settings)) for s in spec.seeds_of(config)]


def run_state(path: Path, config: RunConfig) -> str:
    """"done" (history completed or diverged, of exactly `config`), "partial" (a checkpoint
    of `config` to resume from) or "fresh" (nothing usable: to train from the start)."""
    from ..store import read_config

    try:
        same = read_config(path).identity() == config.identity()
    except Exception:  # no folder, no config.json, an unreadable one
        return "fresh"
    if not same:
        return "fresh"
    try:
        status = str(read_netcdf(path / "history.nc").attrs.get("status", ""))
    except Exception:
        status = ""
    if status in ("completed", "diverged"):
        return "done"
    return "partial" if (path / "checkpoint.pt").is_file() else "fresh"


def epochs_done(path: Path) -> int:
    try:
        h = read_netcdf(path / "history.nc")
    except Exception:
        return 0
    return int(h.sizes.get("epoch", 1)) - 1  # epoch 0 is the initial net


def finished_histories(out: str | Path):
    """The histories of every finished long run under `out/runs/<cell>/` (completed or
    diverged), concatenated along `run` with their settings as coordinates and `variant`;
    read from the history files alone (committed results have no checkpoints). None if
    no run has finished."""
    import xarray as xr

    from ..records import with_run_coords
    from ..store import read_config

    histories = []
    for path in sorted(Path(out).glob("runs/*/*/history.nc")):
        config = read_config(path.parent)
        if run_state(path.parent, config) == "done":
            h = with_run_coords(read_netcdf(path), config)
            histories.append(h.assign_coords(variant=variant_of_cell(path.parent.parent.name)))
    if not histories:
        return None
    return xr.concat(histories, dim="run", join="outer", coords="all",
                     combine_attrs="drop_conflicts")
