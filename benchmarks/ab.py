"""A/B of two pepita-lab checkouts: the A/B scripts (`step_times.py`, `epoch_times.py`,
`loop_overhead.py`) run for the checkout at --repo ("old") and this one ("new"), each figure a
fresh process, the pair's order alternating round by round (old-new, new-old, ...), and every
figure's median over the rounds and the median of the rounds' new / old ratios printed as a
table (each round's pair runs a few seconds apart: its ratio holds where this machine's speed
drifts between rounds, which a ratio of the medians would not):

    git worktree add /tmp/old <commit>
    python benchmarks/ab.py --repo /tmp/old [--rounds 4] [--threads 2] [--json ab.json]

Run it on a quiet machine: other work shows up directly in the figures (the load average at
the start and the end is printed and kept in the JSON). A ratio below 1 means the new checkout
is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("step_times", "epoch_times", "loop_overhead")


def run_script(script: str, repo: str, threads: int | None) -> dict:
    """One fresh process of `script` for the checkout at `repo`: its JSON figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "figures.json"
        cmd = [sys.executable, str(HERE / f"{script}.py"), "--repo", repo, "--json", str(out)]
        if threads:
            cmd += ["--threads", str(threads)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repo", required=True, help="the checkout to compare against (old)")
    p.add_argument("--rounds", type=int, default=4, help="pairs of processes per script")
    p.add_argument("--threads", type=int, help="torch threads (loop_overhead.py: 1 unless set)")
    p.add_argument("--scripts", nargs="+", choices=SCRIPTS, default=list(SCRIPTS))
    p.add_argument("--json", help="write every figure of every round to this file")
    args = p.parse_args(argv)
    new = str(HERE.parent)
    load_start = os.getloadavg()[0]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    figures: dict[tuple[str, str], dict[str, list[float]]] = {}
    units, versions = {}, {}
    for script in args.scripts:
        for r in range(args.rounds):
            order = (("old", args.repo), ("new", new))
            for side, repo in order if r % 2 == 0 else order[::-1]:
                result = run_script(script, repo, args.threads)
                versions[side] = result["version"]
                units[script] = result["unit"]
                for name, value in result["figures"].items():
                    figures.setdefault((script, name), {"old": [], "new": []})[side].append(value)
                print(f"{script} round {r + 1} {side}: " + ", ".join(
                    f"{k} {v:.3g}" for k, v in result["figures"].items()), file=sys.stderr)
    load_end = os.getloadavg()[0]
    print(f"A/B, {started}: old = pepita-lab {versions.get('old')} ({args.repo}), new = "
          f"pepita-lab {versions.get('new')} ({new}); {args.rounds} rounds, orders alternating; "
          f"load average {load_start:.2f} at the start, {load_end:.2f} at the end")
    print("| script | figure | old (median) | new (median) | new / old, median of rounds "
          "(range) | old, each round | new, each round |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows = []
    for (script, name), v in figures.items():
        old, new_ = statistics.median(v["old"]), statistics.median(v["new"])
        ratios = [b / a for a, b in zip(v["old"], v["new"])]
        unit = units[script]
        rows.append({"script": script, "figure": name, "unit": unit, "old": v["old"],
                     "new": v["new"], "ratios": ratios, "ratio": statistics.median(ratios)})
        print(f"| {script} | {name} | {old:.3g} {unit} | {new_:.3g} {unit} | "
              f"{statistics.median(ratios):.3f} ({min(ratios):.2f}-{max(ratios):.2f}) | "
              + ", ".join(f"{x:.3g}" for x in v["old"]) + " | "
              + ", ".join(f"{x:.3g}" for x in v["new"]) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "started": started, "old": {"repo": args.repo, "version": versions.get("old")},
            "new": {"repo": new, "version": versions.get("new")}, "rounds": args.rounds,
            "threads": args.threads, "load_average_start": load_start,
            "load_average_end": load_end, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
