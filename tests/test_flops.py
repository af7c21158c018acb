"""The cost model's multiply-adds against `torch.utils.flop_counter.FlopCounterMode` on one
step of every rule (the loop's step, BP by autograd and streamed PEPITA beside it), fully
connected and conv: equal, once the counter is told the lab's in-place and fused products
(`bench.flops.LAB_OPS`); without them it misses exactly the momentum update's products."""

import pytest

from pepita_lab.analysis import step_cost
from pepita_lab.bench.flops import count_macs
from pepita_lab.bench.memory import model_cost, prepared_step, step_config, step_names

HIDDEN, B = (96, 64, 48), 16


@pytest.mark.parametrize("step", step_names("fc"))
def test_counted_macs_equal_the_model_fc(step):
    config = step_config(step, hidden=HIDDEN, batch_size=B)
    _, one_step = prepared_step(step, config)
    one_step()
    assert count_macs(one_step) == model_cost(step, config).macs


@pytest.mark.parametrize("step", step_names("conv"))
def test_counted_macs_equal_the_model_conv(step):
    config = step_config(step, model="conv", batch_size=4)
    _, one_step = prepared_step(step, config)
    one_step()
    assert count_macs(one_step) == model_cost(step, config).macs


def test_the_library_alone_misses_the_in_place_update():
    """FlopCounterMode's own registry has no in-place `addmm_`: it counts BP's forward pass
    and error, not the weight updates the loop folds into the momentum (B P)."""
    config = step_config("bp", hidden=HIDDEN, batch_size=B)
    _, one_step = prepared_step("bp", config)
    one_step()
    sizes = [784, *HIDDEN, 10]
    P = sum(a * b for a, b in zip(sizes, sizes[1:]))
    assert count_macs(one_step, lab_ops=False) == step_cost("bp", sizes, B).macs - B * P
