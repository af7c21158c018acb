"""Results kept bit for bit across refactors: fixed-seed CPU runs of every rule (fully connected
and conv, single runs and populations) against the values version 0.2.2 produced.

`tests/golden/v0.2.2.json` was written by this module on the 0.2.2 code
(`PEPITA_LAB_RECORD_GOLDEN=1 pytest tests/test_golden.py`): per case, the history (every
float's exact repr, wall times left out) and a SHA-256 of the final weights' and biases' bytes.
Torch runs on one thread here so that the order of every reduction is fixed.
"""

import hashlib
import json
import math
import os
from pathlib import Path

import pytest
import torch

import pepita_lab as pl
from pepita_lab.api import train_population
from pepita_lab.config import RunConfig
from pepita_lab.data import TensorData

GOLDEN = Path(__file__).parent / "golden" / "v0.2.2.json"
RECORD = os.environ.get("PEPITA_LAB_RECORD_GOLDEN") == "1"
FIELDS = ("epoch_lr", "train_loss", "train_acc", "test_loss", "test_acc")

FC = dict(dataset="synthetic", hidden=(24, 12), epochs=3, batch_size=32, lr=0.05,
          lr_milestones=(2,), device="cpu", keep_prob=0.9, seed=3)
CONV = dict(dataset="mnist", model="conv", conv_channels=(3,), kernel_size=5, pool=2,
            hidden=(8,), epochs=2, batch_size=20, lr=0.02, lr_milestones=(), keep_prob=1.0,
            device="cpu", seed=1)

SINGLE = {
    **{f"fc-{rule}": RunConfig(rule=rule, **FC) for rule in ("pepita", "bp", "fa", "dfa")},
    "fc-drtp": RunConfig(rule="drtp", feedback_scale=0.05, **{**FC, "lr": 0.01}),
    "fc-bp-diverges": RunConfig(rule="bp", **{**FC, "lr": 40.0}),
    "fc-pepita-minus-clean-bias": RunConfig(rule="pepita", sign=-1.0, output_error="clean",
                                            bias=True, **FC),
    "fc-pepita-wide-first": RunConfig(rule="pepita", **{**FC, "hidden": (300,)}),
    "fc-bp-bias-nodropout": RunConfig(rule="bp", bias=True, **{**FC, "keep_prob": 1.0}),
    "fc-pepita-gaussian": RunConfig(rule="pepita", f_distribution="gaussian", **FC),
    **{f"conv-{rule}": RunConfig(rule=rule, **CONV) for rule in ("pepita", "bp", "fa", "dfa")},
    "conv-drtp": RunConfig(rule="drtp", feedback_scale=0.05, **{**CONV, "lr": 0.005}),
    "conv-pepita-icml-dropout": RunConfig(rule="pepita", conv_update="icml-code",
                                          **{**CONV, "keep_prob": 0.9}),
}
POPULATIONS = {
    "pop-pepita": [RunConfig(rule="pepita", **{**FC, "seed": s, "f_scale": f, "lr": lr})
                   for s, f, lr in ((3, 0.05, 0.05), (4, 0.1, 0.02), (3, 0.03, 0.05))],
    "pop-pepita-wide-sign": [RunConfig(rule="pepita", sign=sg, **{**FC, "hidden": (300,)})
                             for sg in (1.0, -1.0)],
    **{f"pop-{rule}": [RunConfig(rule=rule, **{**FC, "seed": s, "feedback_scale": fs})
                       for s, fs in ((3, 1.0), (5, 0.5))] for rule in ("bp", "fa", "dfa")},
    "pop-drtp": [RunConfig(rule="drtp", **{**FC, "seed": s, "feedback_scale": fs, "lr": 0.01})
                 for s, fs in ((3, 0.05), (5, 0.02))],
    "pop-dfa-bias": [RunConfig(rule="dfa", bias=True, **{**FC, "seed": s}) for s in (0, 1)],
    "pop-pepita-one-diverges": [RunConfig(rule="pepita", **{**FC, "lr": lr})
                                for lr in (0.05, 40.0)],
}


def golden_data(config: RunConfig) -> TensorData:
    """Random inputs of the dataset's shape (no files), labelled by a random linear teacher:
    640 training, 200 test samples."""
    g = torch.Generator().manual_seed(11)
    shape = (1, 1, 32) if config.dataset == "synthetic" else (1, 28, 28)
    d = math.prod(shape)
    x = torch.rand(840, d, generator=g)
    y = ((x - 0.5) @ torch.randn(d, 10, generator=g)).argmax(1)
    return TensorData(config.dataset, x[:640], y[:640], x[640:], y[640:], shape, 10)


def digest(run) -> dict:
    h = run.history.isel(run=0)
    tensors = list(run.net.weights) + list(run.net.biases or [])
    sha = hashlib.sha256()
    for t in tensors:
        sha.update(t.detach().cpu().contiguous().numpy().tobytes())
    return {"status": run.status,
            "history": {k: [repr(float(v)) for v in h[k].values] for k in FIELDS},
            "weights_sha256": sha.hexdigest(),
            "weights_sum": repr(sum(float(t.double().sum()) for t in tensors))}


def compute(name: str) -> dict | list[dict]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if name in SINGLE:
            cfg = SINGLE[name]
            return digest(pl.train(cfg, data=golden_data(cfg), progress=False, traces=False))
        cfgs = POPULATIONS[name]
        runs = train_population(cfgs, data=golden_data(cfgs[0]), progress=False, traces=False)
        return [digest(r) for r in runs]
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not RECORD, reason="records the golden values (PEPITA_LAB_RECORD_GOLDEN=1)")
def test_record_golden():
    GOLDEN.parent.mkdir(exist_ok=True)
    values = {name: compute(name) for name in [*SINGLE, *POPULATIONS]}
    GOLDEN.write_text(json.dumps({"version": pl.__version__, "cases": values}, indent=1) + "\n")


@pytest.mark.skipif(RECORD, reason="recording")
@pytest.mark.parametrize("name", [*SINGLE, *POPULATIONS])
def test_bitwise_equal_to_0_2_2(name):
    recorded = json.loads(GOLDEN.read_text())["cases"][name]
    assert compute(name) == recorded
