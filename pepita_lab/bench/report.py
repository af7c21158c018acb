"""The bench's results as a report: the JSON schema, the provenance of a benchmark (version, git
revision, device, threads, load; `_environment`), and the plain-text table (`format_report`).
"""

from __future__ import annotations

import datetime
import os
import platform

import psutil
import torch

from .. import __version__
from ..records import git_revision
from .settings import _min_run_time

SCHEMA = "pepita-lab-bench/2"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:  # by hand: no installed library names the CPU model (psutil does not)
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _environment(device: torch.device) -> dict:
    env = {"pepita_lab": __version__, "git_revision": git_revision(),
           "device": device.type, "device_name": _device_name(device),
           "torch": torch.__version__, "python": platform.python_version(),
           "platform": platform.platform(), "threads": torch.get_num_threads(),
           "interop_threads": torch.get_num_interop_threads(), "cpu_count": psutil.cpu_count(),
           "float32_matmul_precision": torch.get_float32_matmul_precision(),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
    if hasattr(os, "getloadavg"):  # other work on the machine makes timings noisy
        env["load_average_start"] = list(os.getloadavg())
    return env


FAULTS_WORTH_SAYING = 20  # page faults a call: 20 x 4 KiB pages or more faulted in afresh


def _faults_note(t: dict) -> str:
    """A remark for a report line whose timing includes many page faults, else ''."""
    faults = t.get("page_faults_per_call")
    return (f"  {faults:.0f} page faults/call" if faults is not None
            and faults >= FAULTS_WORTH_SAYING else "")


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 2**20:.0f}"


def format_report(results: dict) -> str:
    """The results as a readable plain-text table."""
    env, s, peak = results["environment"], results["settings"], results["peak"]
    version = f" {env['pepita_lab']} ({env['git_revision']})" if "pepita_lab" in env else ""
    lines = [f"pepita-lab{version} bench on {env['device']} ({env['device_name']}), "
             f"torch {env['torch']}, "
             f"{env['threads']} threads, {env['date']}" + (" [quick]" if s["quick"] else "")
             + f"; precision {s['precision']}, compile {s['compile']}",
             f"times: median over blocks timed for {_min_run_time(s):g} s in all "
             "(blocked_autorange), warm-up excluded; spread: interquartile range (IQR)"]
    if "load_average_start" in env:
        load = env["load_average_start"]
        lines.append("load average at start: " + " ".join(f"{v:.2f}" for v in load))
        if env["device"] == "cpu" and load[0] + env["threads"] > (env["cpu_count"] or 1) + 0.5:
            lines.append(f"warning: other work competes for the {env['cpu_count']} cores: "
                         "a multi-threaded op waits for its descheduled threads, so these times "
                         "measure the scheduler; compare with OMP_NUM_THREADS=1")
    lines += ["", f"{'matrix product (float32)':<26} {'M x K x N':>16} {'ms':>9} "
                  f"{'GFLOP/s':>8} {'IQR GFLOP/s':>15}"]
    for e in peak["matmuls"]:
        lo, hi = e["gflops_iqr"]
        mkn = f"{e['m']}x{e['k']}x{e['n']}"
        lines.append(f"{e['name']:<26} {mkn:>16} {1e3 * e['time']['median_s']:>9.3f} "
                     f"{e['gflops']:>8.1f} {f'{lo:.1f}-{hi:.1f}':>15}")
    lines.append(f"peak = {peak['gflops']:.1f} GFLOP/s: the fastest matrix product above; "
                 "'% peak' is relative to it")
    for shape in results["shapes"]:
        lines.append("")
        if not shape["available"]:
            lines.append(f"{shape['name']}: not available ({shape['reason']})")
            continue
        lines += _shape_report(shape)
    lines += ["", *_conv_report(results["conv"]), "", *_population_report(results["population"])]
    lines += ["", f"peak memory: {_mib(results['memory']['process_peak_bytes'])} MiB; "
                  f"mem MiB columns: {results['memory']['kind']}"]
    return "\n".join(lines)


def _step_rows(rules, memory: bool) -> list[str]:
    """A header and one line per rule: step time, throughput, FLOP rate (and peak memory)."""
    lines = [f"  {'rule':<14} {'step ms':>9} {'IQR ms':>8} {'samples/s':>10} {'MFLOP/step':>11} "
             f"{'GFLOP/s':>8} {'% peak':>7}" + (f" {'mem MiB':>8}" if memory else "")]
    for r in rules:
        t = r["step"]
        lines.append(f"  {r['label']:<14} {1e3 * t['median_s']:>9.3f} {1e3 * t['iqr_s']:>8.3f} "
                     f"{r['samples_per_s']:>10.0f} {r['flops_per_step'] / 1e6:>11.1f} "
                     f"{r['gflops']:>8.1f} {100 * r['fraction_of_peak']:>7.1f}"
                     + (f" {_mib(r['peak_memory_bytes']):>8}" if memory else "")
                     + ("" if r["weights_finite"] else "  weights not finite")
                     + _faults_note(t))
    return lines


def _shape_report(shape: dict) -> list[str]:
    sizes = "-".join(map(str, shape["sizes"]))
    lines = [f"{shape['name']}: {sizes}, batch {shape['batch_size']}",
             *_step_rows(shape["rules"].values(), memory=True)]
    for bp in ("bp_autograd", "bp"):
        q = shape["ratios"][f"pepita_over_{bp}"]
        lines.append(f"  PEPITA / {shape['rules'][bp]['label']}: time {q['time_ratio']:.2f}x, "
                     f"FLOPs {q['flop_ratio']:.2f}x")
    ep = shape["epoch"]
    lines += [f"  whole epoch: {ep['train_samples']} train + {ep['test_samples']} test samples; "
              "steps alone = steps per epoch x median step,",
              "  other = epoch - eval - steps alone (batching, per-step loss sync; noise)",
              f"  {'rule':<14} {'s median':>9} {'min-max s':>13} {'eval s':>8} "
              f"{'steps alone':>11} {'other s':>8} {'mem MiB':>8}"]
    for r in ep["rules"].values():
        e = r["epoch"]
        flag = "" if all(x == "ok" for x in r["status"]) else f"  status {r['status']}"
        flag += "" if r["weights_finite"] else "  weights not finite"
        spread = f"{e['min_s']:.2f}-{e['max_s']:.2f}"
        lines.append(f"  {r['label']:<14} {e['median_s']:>9.3f} {spread:>13} "
                     f"{r['evaluation']['median_s']:>8.3f} {r['steps_alone_s']:>11.3f} "
                     f"{r['other_s']:>8.3f} {_mib(r['peak_memory_bytes']):>8}" + flag)
    return lines


def _conv_report(conv: dict) -> list[str]:
    lines = [f"{conv['name']}: the paper's conv net ({conv['preset']}), batch "
             f"{conv['batch_size']}; FLOPs from analysis.conv_step_cost",
             *_step_rows(conv["rules"].values(), memory=False)]
    for what, op in conv["conv_ops"].items():
        lines.append(f"  {what} alone: {1e3 * op['time']['median_s']:.3f} ms, "
                     f"{op['gflops']:.1f} GFLOP/s" + _faults_note(op["time"]))
    lines += [f"  PEPITA / BP: time {conv['pepita_over_bp_time']:.2f}x, FLOPs "
              f"{conv['pepita_over_bp_flops']:.2f}x",
              f"  conv PEPITA GFLOP/s / FC PEPITA GFLOP/s (MNIST, batch 64): "
              f"{conv['gflops_relative_to_fc_pepita']:.2f}"]
    return lines


def _population_report(pop: dict) -> list[str]:
    lines = [f"population: K PEPITA nets {pop['net']} at batch {pop['batch_size']} trained "
             "together (one (K, out, in) tensor per layer)",
             f"  {'K':>5} {'step ms':>9} {'IQR ms':>8} {'member-samples/s':>17} "
             f"{'x K=1':>7} {'GFLOP/s':>8} {'% peak':>7}"]
    for e in pop["sizes"]:
        t = e["step"]
        gain = "" if e["throughput_over_K1"] is None else f"{e['throughput_over_K1']:.2f}"
        lines.append(f"  {e['K']:>5} {1e3 * t['median_s']:>9.3f} {1e3 * t['iqr_s']:>8.3f} "
                     f"{e['member_samples_per_s']:>17.0f} {gain:>7} {e['gflops']:>8.1f} "
                     f"{100 * e['fraction_of_peak']:>7.1f}"
                     + ("" if e["weights_finite"] else "  weights not finite")
                     + _faults_note(t))
    return lines
