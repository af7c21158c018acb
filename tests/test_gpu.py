"""CUDA checks: skipped cleanly on a machine without a GPU (run them with scripts/gpu_check.sh)."""

import pytest
import torch

from pepita_lab.config import RunConfig
from pepita_lab.training import Trainer

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


@pytest.mark.parametrize("rule", ["pepita", "bp", "fa", "dfa", "drtp"])
def test_training_runs_on_cuda_and_matches_cpu(rule):
    cfg = dict(rule=rule, dataset="synthetic", hidden=(64,), epochs=2, batch_size=32, lr=0.05,
               keep_prob=1.0)
    gpu = Trainer(RunConfig(device="cuda", **cfg), progress=False)
    cpu = Trainer(RunConfig(device="cpu", **cfg), progress=False)
    gpu.run()
    cpu.run()
    assert all(W.device.type == "cuda" for W in gpu.net.weights)
    assert gpu.data.x_train.device.type == "cuda"
    for Wg, Wc in zip(gpu.net.weights, cpu.net.weights):
        torch.testing.assert_close(Wg.cpu(), Wc, rtol=1e-3, atol=1e-4)


def test_auto_picks_cuda():
    t = Trainer(RunConfig(dataset="synthetic", hidden=(8,), epochs=1, device="auto"),
                progress=False)
    assert t.device.type == "cuda"
