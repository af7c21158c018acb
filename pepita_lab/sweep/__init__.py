"""Sweeps: a grid (and random search) over config fields times seeds, packed into populations
and run in-process, on a local Dask cluster, or on any Dask scheduler, with the same results.

Points that share an architecture train together as one population (`train_population`; conv
nets one after the other); each pack of points is one task for the engine. Every finished point
is written at once to `OUT/points/<point id>.nc` (atomically), so a stopped sweep restarts
where it was; the whole sweep is assembled into `OUT/sweep.nc` with the swept fields as
dimensions. Optional successive halving stops hopeless points early and records where.

From Python, `pepita_lab.grid` (`grid`) is the door: a grid of fields x values x seeds, in
memory or in a sweep folder, the swept fields as dimensions; `flatten` gives one `run` per
point; `points_table` lists every point with its status.

The rooms: `spec` (what a sweep is, checked), `engine` (where packs run), `folder` (what a
sweep folder holds, assembled and ranked), `run` (a sweep run into its folder), `grid` (the
Python door). This module gathers their names.
"""

from __future__ import annotations

from .engine import Engine, packs, rule_modules, run_pack
from .folder import (POINTS_DIR, RESULT_FILE, SPEC_FILE, assemble, best_points, combine,
                     flatten, point_id, points_table)
from .grid import grid, train_grid
from .run import prepare_data, run_sweep
from .spec import (SPEC_KEYS, SweepSpec, check_halving_keep, check_pack_size, check_threads,
                   load_spec_file, parse_assignments)

__all__ = ["grid", "train_grid", "points_table", "combine", "rule_modules", "SweepSpec",
           "run_sweep", "Engine", "load_spec_file", "parse_assignments",
           "assemble", "flatten", "best_points", "point_id", "packs", "run_pack",
           "prepare_data", "check_pack_size", "check_threads", "check_halving_keep",
           "SPEC_KEYS", "SPEC_FILE", "RESULT_FILE", "POINTS_DIR"]
