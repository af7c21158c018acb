"""Speed settings: lazy divergence checks, products' precision and torch.compile give the same
training as the plain loop (exactly, or within the precision's tolerance)."""

import numpy as np
import pytest
import torch

import pepita_lab as pl
from pepita_lab import training
from pepita_lab.config import ConfigError
from pepita_lab.devices import precision
from pepita_lab.training import Trainer

TINY = pl.RunConfig(dataset="synthetic", hidden=(32,), epochs=1, batch_size=16, lr=0.05,
                    device="cpu", subset=320)


def _first_step(config):
    trainer = Trainer(config, progress=False)
    x, y = trainer.data.x_train[:16], trainer.data.y_train[:16]
    before = [W.clone() for W in trainer.net.weights]
    f = trainer.train_step(x, trainer.eye[y], config.lr)
    return f, [W - W0 for W, W0 in zip(trainer.net.weights, before)]


@pytest.mark.parametrize("rule", ["pepita", "bp"])
def test_lazy_divergence_checks_report_the_step_where_it_happened(monkeypatch, rule):
    diverging = TINY.replace(rule=rule, f_scale=100.0, lr=1.0, epochs=2, subset=None)
    every_step = Trainer(diverging, progress=False)
    assert every_step.run() == "diverged"
    monkeypatch.setitem(training.CHECK_EVERY, "cpu", 7)
    lazy = Trainer(diverging, progress=False)
    assert lazy.run() == "diverged"
    assert lazy.divergence == every_step.divergence
    d = every_step.divergence["step"]
    assert every_step.step == d and d < every_step.steps_per_epoch  # in the first epoch
    assert lazy.step == min(-(-d // 7) * 7, lazy.steps_per_epoch)  # found at the next check


def test_lazy_checks_change_nothing_in_a_healthy_population(monkeypatch):
    configs = [TINY.replace(lr=lr) for lr in (0.01, 0.05)]
    plain = pl.train_population(configs, progress=False)
    monkeypatch.setitem(training.CHECK_EVERY, "cpu", 5)
    lazy = pl.train_population(configs, progress=False)
    for a, b in zip(plain, lazy):
        for name in ("test_acc", "test_loss", "train_loss", "train_acc"):
            np.testing.assert_array_equal(a.history[name].values, b.history[name].values)


def test_precision_sets_the_backend_flags_inside_and_restores_them():
    flags = (torch.backends.cuda.matmul, torch.backends.cudnn.conv)
    before = [f.fp32_precision for f in flags]
    cpu = torch.device("cpu")
    with precision("tf32", cpu):
        assert [f.fp32_precision for f in flags] == ["tf32", "tf32"]
    with precision("fp32", cpu):
        assert [f.fp32_precision for f in flags] == ["ieee", "ieee"]
    with precision("bf16", cpu):
        assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.bfloat16
    assert [f.fp32_precision for f in flags] == before
    assert (torch.ones(2, 3) @ torch.ones(3, 2)).dtype == torch.float32


@pytest.mark.parametrize("rule", ["pepita", "bp"])
def test_bf16_steps_are_close_to_fp32_and_keep_float32_state(rule):
    """bf16 forward passes: BP's updates within 1 % of fp32 (relative norm). PEPITA's hidden
    update is the small difference h - h_err of two bf16 passes, so it loses more (about 10 %
    here; docs/performance.md); its output layer's update is as close as BP's."""
    f32, dW32 = _first_step(TINY.replace(rule=rule))
    f16, dW16 = _first_step(TINY.replace(rule=rule, precision="bf16"))
    assert all(t.dtype == torch.float32 for t in [*f16.deltas, *f16.inputs, f16.probs])
    errors = [((a - b).norm() / b.norm()).item() for a, b in zip(dW16, dW32)]
    assert all(e > 0 for e in errors)  # bf16 products really ran
    limits = [0.25, 0.01] if rule == "pepita" else [0.01, 0.01]
    assert all(e < limit for e, limit in zip(errors, limits)), errors


def test_bf16_training_learns_like_fp32():
    cfg = TINY.replace(epochs=3, subset=None)
    fp32, bf16 = pl.train(cfg, progress=False), pl.train(cfg.replace(precision="bf16"),
                                                          progress=False)
    a, b = (float(r.history.test_acc.values.ravel()[-1]) for r in (fp32, bf16))
    assert a > 0.3 and abs(a - b) < 0.05, (a, b)  # chance is 0.1


def test_speed_settings_stay_out_of_the_run_id_at_their_defaults():
    assert "precision" not in TINY.identity() and "compile" not in TINY.identity()
    assert TINY.replace(precision="tf32").identity()["precision"] == "tf32"
    with pytest.raises(ConfigError, match="precision"):
        TINY.replace(precision="fp8")
    with pytest.raises(ConfigError, match="compile"):
        TINY.replace(compile="fast")


def test_compiled_steps_equal_eager_steps():
    """torch.compile (CPU: inductor's C++ code) takes the same step up to float rounding."""
    eager, dW_eager = _first_step(TINY)
    compiled, dW_compiled = _first_step(TINY.replace(compile="default"))
    for a, b in zip(dW_compiled, dW_eager):
        assert b.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(compiled.probs, eager.probs, rtol=1e-4, atol=1e-6)



_BIG_BLOCK = """
import ctypes, sys, torch
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "keep":
    from pepita_lab.devices import keep_freed_memory
    assert keep_freed_memory()
a = torch.empty(5 << 20)  # 20 MiB
mapped = libc.mallinfo2().hblkhd  # bytes in blocks mmapped on their own
del a
print(mapped >> 20, libc.mallinfo2().fordblks >> 20)  # MiB mapped, MiB of free heap kept
"""


@pytest.mark.skipif(not pl.devices.keep_freed_memory(), reason="needs glibc's mallopt")
def test_trainers_allocator_policy_keeps_a_freed_20_mib_block():
    """glibc's default puts a 20 MiB block in a mapping of its own and unmaps it when freed
    (the next one is then faulted in page by page); after `keep_freed_memory` (what every
    CPU trainer calls) it comes from the heap and stays there, free, for reuse."""
    import subprocess
    import sys

    def mib_mapped_and_kept(mode):
        out = subprocess.run([sys.executable, "-c", _BIG_BLOCK, mode], capture_output=True,
                             text=True, check=True)
        return tuple(int(v) for v in out.stdout.split())

    mapped, kept = mib_mapped_and_kept("default")
    assert mapped >= 20 and kept < 20
    mapped, kept = mib_mapped_and_kept("keep")
    assert mapped < 20 and kept >= 20
