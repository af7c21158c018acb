"""Where packs of points run: in this process, on a local Dask cluster or on any Dask
scheduler (`Engine`); a pack is one population (`run_pack`)."""

from __future__ import annotations

import math
import os

import xarray as xr

from ..config import RunConfig


def run_pack(configs: list[RunConfig], threads: int | None = 1, imports: tuple = (),
             data=None, progress: bool = False, **options) -> list[xr.Dataset]:
    """One task: train `configs` as one population (conv nets one after the other); their
    histories. Runs on a worker: `imports` are the modules that register the pack's rules
    there (a rule of your own); `threads` torch threads (None: as they are), `data` the
    dataset already loaded (in this process only); `progress`: the population's step bar (in
    this process only: a grid's long packs then show progress between its run counts);
    `options`: `train`'s (out: the run folders' parent, trace_every, snapshot_epochs)."""
    import importlib

    import torch

    from ..api import train_together

    for module in imports:
        importlib.import_module(module)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        runs = train_together(configs, progress=progress, data=data, **options)
    finally:
        torch.set_num_threads(before)
    return [r.history for r in runs]


def rule_modules(configs: list[RunConfig]) -> tuple[str, ...]:
    """The modules Dask workers import to know the rules of `configs`: those of rules
    registered by a call (`register_rule`) outside this package. A rule defined in
    `__main__` (a notebook, a script) cannot be imported by a worker: ConfigError saying
    where to put it. Entry-point rules need nothing: workers load the entry points."""
    from ..config import ConfigError
    from ..rules import get_rule

    modules = []
    for name in dict.fromkeys(c.rule for c in configs):
        module = type(get_rule(name)).__module__
        if module == "__main__":
            raise ConfigError(f"rule={name!r} is defined in __main__ (a notebook or a script): "
                              "Dask workers cannot import it; define it in a module they can "
                              "import (on the path of the workers) or declare it as an entry "
                              "point in the group pepita_lab.rules (docs/adding-a-rule.md)")
        if not module.startswith("pepita_lab."):
            modules.append(module)
    return tuple(modules)


def packs(configs: list[RunConfig], pack_size: int, n_workers: int = 1) -> list[list[RunConfig]]:
    """Points grouped by architecture, each group cut into packs, enough to keep every worker
    busy and at most `pack_size` points each."""
    from ..training import shared_settings

    groups: dict[str, list[RunConfig]] = {}
    for c in configs:
        groups.setdefault(repr(sorted(shared_settings(c).items())), []).append(c)
    out = []
    for group in groups.values():
        n = max(math.ceil(len(group) / pack_size), min(n_workers, len(group)))
        size = math.ceil(len(group) / n)
        out += [group[i:i + size] for i in range(0, len(group), size)]
    return out


# Where a local cluster's Dask dashboard listens: this machine only, on a free port, unless
# PEPITA_LAB_DASHBOARD (or `dashboard=`) says otherwise (":8787" is every interface: anyone who
# reaches the machine sees the sweep's tasks).
DASHBOARD = "127.0.0.1:0"


class Engine:
    """Where packs run: in this process, on a local Dask cluster (its dashboard at `dashboard`,
    host:port; default PEPITA_LAB_DASHBOARD, else localhost), or on a scheduler."""

    def __init__(self, workers: int = 0, scheduler: str | None = None,
                 dashboard: str | None = None):
        self.client = self.cluster = None
        self.workers = max(workers, 1)
        if scheduler or workers:
            from dask.distributed import Client, LocalCluster

            if scheduler:
                self.client = Client(scheduler)
            else:
                address = dashboard or os.environ.get("PEPITA_LAB_DASHBOARD") or DASHBOARD
                self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                            processes=True, dashboard_address=address)
                self.client = Client(self.cluster)
            self.workers = max(len(self.client.scheduler_info()["workers"]), 1)

    @property
    def dashboard(self) -> str | None:
        return None if self.client is None else self.client.dashboard_link

    def map(self, tasks: list[list[RunConfig]], threads: int | None, data=None,
            options: dict | None = None):
        """Yield (pack, histories) as packs finish; `data` (in this process only) is the
        dataset every pack trains on, `options` `run_pack`'s."""
        options = options or {}
        if self.client is None:
            for pack in tasks:
                yield pack, run_pack(pack, threads, data=data, **options)
            return
        from dask.distributed import as_completed

        imports = rule_modules([c for pack in tasks for c in pack])
        futures = {self.client.submit(run_pack, pack, threads, imports, pure=False,
                                      retries=3, **options): pack for pack in tasks}
        for future in as_completed(futures):
            yield futures[future], future.result()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
