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


SMALL = dict(dataset="synthetic", hidden=(64,), epochs=1, batch_size=32, lr=0.05, keep_prob=1.0)


@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_compiled_steps_and_cuda_graphs_match_eager(mode):
    eager = Trainer(RunConfig(device="cuda", **SMALL), progress=False)
    compiled = Trainer(RunConfig(device="cuda", compile=mode, **SMALL), progress=False)
    eager.run()
    compiled.run()
    for a, b in zip(compiled.net.weights, eager.net.weights):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_tf32_is_close_to_fp32_and_fp32_is_exact_ieee():
    fp32 = Trainer(RunConfig(device="cuda", **SMALL), progress=False)
    tf32 = Trainer(RunConfig(device="cuda", precision="tf32", **SMALL), progress=False)
    fp32.run()
    tf32.run()
    for a, b in zip(tf32.net.weights, fp32.net.weights):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-3)


def test_lazy_divergence_check_on_cuda_reports_the_step_of_an_every_step_check(monkeypatch):
    from pepita_lab import training
    cfg = RunConfig(device="cuda", **dict(SMALL, f_scale=100.0, lr=1.0, epochs=2))
    lazy = Trainer(cfg, progress=False)
    assert lazy.run() == "diverged"
    monkeypatch.setitem(training.CHECK_EVERY, "cuda", 1)
    every = Trainer(cfg, progress=False)
    assert every.run() == "diverged"
    assert lazy.divergence == every.divergence
