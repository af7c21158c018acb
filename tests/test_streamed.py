"""Streamed PEPITA (config `streamed`) against the plain step: the same weights after an epoch
of momentum steps, float64 and float32, for every net and option it takes; a population
member equals its single run; the options it does not take are refused in one line."""

import dataclasses

import pytest
import torch

from pepita_lab.config import ConfigError, RunConfig
from pepita_lab.data import TensorData
from pepita_lab.rules import validate
from pepita_lab.training import Trainer

pytestmark = pytest.mark.numerics

FC = RunConfig(dataset="mnist", hidden=(48, 32, 24), batch_size=32, epochs=1, lr=0.05,
               device="cpu", keep_prob=0.9, lr_milestones=())
CONV = FC.replace(model="conv", conv_channels=(4, 6), kernel_size=3, pool=2, hidden=(16,),
                  keep_prob=0.8, output_error="clean")
N = 256  # 8 steps of 32: enough for momentum to carry every earlier update

# Tolerances. The streamed step computes every product the plain one does, in the same
# order and on the same operands (its second clean pass repeats the first's), so the weights
# agree to rounding of the few operations ordered differently (the batched momentum update
# per layer instead of all layers in one loop): float64 to ~1e-15 per step, grown over 8
# steps and 4 layers well below 1e-10; float32 (eps 6e-8) as the population tests, rtol 1e-4.
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-4, atol=1e-6)}


def data_for(cfg: RunConfig, seed: int = 0) -> TensorData:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(N, 784, generator=g), torch.randint(0, 10, (N,), generator=g)
    return TensorData("mnist", x, y, x[:64], y[:64], (1, 28, 28), 10)


def in_float64(trainer: Trainer) -> Trainer:
    """The trainer's net, momentum, masks and data in float64 (the rule's carried state
    recomputed from them)."""
    trainer.net = trainer.net.to(torch.float64)
    trainer.velocity = [torch.zeros_like(p) for p in trainer.net.params()]
    trainer.view.carry.clear()
    trainer._masks = [m.double() for m in trainer._masks]
    trainer._member_masks = [list(m) for m in trainer._masks]
    trainer.eye = trainer.eye.double()
    d = trainer.data
    trainer.data = dataclasses.replace(d, x_train=d.x_train.double(), x_test=d.x_test.double())
    return trainer


def trained(cfg: RunConfig, dtype=torch.float32) -> list[torch.Tensor]:
    trainer = Trainer(cfg, data_for(cfg), progress=False)
    if dtype == torch.float64:
        in_float64(trainer)
    assert trainer.train_epoch() == "ok"
    return trainer.net.params()


def assert_same_weights(cfg: RunConfig, dtype) -> None:
    plain, streamed = trained(cfg, dtype), trained(cfg.replace(streamed=True), dtype)
    moved = [(p - p0).abs().max() for p, p0 in zip(plain, Trainer(cfg, data_for(cfg),
                                                                 progress=False).net.params())]
    assert all(m > 0 for m in moved[:len(cfg.hidden)])  # the weights did move
    for a, b in zip(plain, streamed):
        torch.testing.assert_close(b.to(dtype), a.to(dtype), **TOL[dtype])


FC_OPTIONS = {
    "paper": {},
    "no dropout, sign -1": dict(keep_prob=1.0, sign=-1.0),
    "clean output error": dict(output_error="clean"),
    "biases": dict(bias=True),
    "normalize": dict(normalize=True),
    "forward variant": dict(pepita_variant="forward"),
    "weight decay, torch momentum": dict(weight_decay=1e-3, momentum_style="torch"),
    "weight mirroring": dict(f_distribution="factorised", weight_mirroring=True,
                             premirror_epochs=0),
    "one hidden layer (fused first layer)": dict(hidden=(1024,)),
}
CONV_OPTIONS = {
    "paper conv": {},
    "conv biases, modulated error": dict(bias=True, output_error="modulated"),
    "icml-code conv update": dict(conv_update="icml-code"),
}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("options", FC_OPTIONS.values(), ids=FC_OPTIONS.keys())
def test_streamed_equals_plain_fc(options, dtype):
    if options.get("weight_mirroring") and dtype == torch.float64:
        pytest.skip("mirror_step draws its noise in float32 (float32 case below)")
    assert_same_weights(FC.replace(**options), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("options", CONV_OPTIONS.values(), ids=CONV_OPTIONS.keys())
def test_streamed_equals_plain_conv(options, dtype):
    assert_same_weights(CONV.replace(**options), dtype)


def test_population_member_equals_single_run():
    configs = [FC.replace(streamed=True, seed=s, f_scale=f, sign=sg)
               for s, f, sg in ((0, 0.05, 1.0), (1, 0.1, -1.0))]
    data = data_for(FC)
    together = Trainer(configs, data, progress=False)
    assert together.train_epoch() == "ok"
    for k, cfg in enumerate(configs):
        alone = Trainer(cfg, data, progress=False)
        assert alone.train_epoch() == "ok"
        for a, b in zip(alone.net.params(), together.net.params()):
            torch.testing.assert_close(b[k], a[0], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("changes, says", [
    (dict(pepita_variant="time-local"), "time-local"),
    (dict(compile="default"), "compile"),
    (dict(rule="bp"), "does not read it"),
])
def test_options_it_does_not_take_are_refused_in_one_line(changes, says):
    with pytest.raises(ConfigError) as err:
        validate(FC.replace(streamed=True, **changes))
    assert says in str(err.value) and "streamed" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_sweep_dimension_a_cli_flag_and_an_explorer_control(tmp_path):
    """`streamed` is recorded with the run (its identity once on), sweeps as any field,
    is a `train` flag and an explorer control."""
    from pepita_lab.cli import build_parser
    from pepita_lab.sweep import SweepSpec, parse_assignments
    from pepita_lab.widgets.controls import config_from_controls, make_controls

    assert "streamed" not in FC.identity() and FC.replace(streamed=True).identity()["streamed"]
    grid = parse_assignments(["streamed=false,true"], "grid")
    points = SweepSpec(base=FC, grid=grid).points()
    assert [p.streamed for p in points] == [False, True]
    args = build_parser().parse_args(["train", "--streamed"])
    assert args.streamed is True
    controls = make_controls(FC, 4)
    controls["streamed"].value = True
    assert config_from_controls(controls, FC).streamed is True
