"""The training loop: its fused update equals the pure rules, it is repeatable, it learns."""

import numpy as np
import pytest
import torch

from pepita_lab import rules
from pepita_lab.rules import FirstLayerFeedback
from pepita_lab.config import RunConfig
from pepita_lab.data import load_data
from pepita_lab.training import Trainer, lr_at

pytestmark = pytest.mark.numerics

TINY = dict(dataset="synthetic", hidden=(16, 12), epochs=2, batch_size=32, lr=0.05,
            device="cpu", subset=256)


def pure_updates(cfg, weights, net, x, target, masks):
    """dW from the pure functions of `pepita_lab.rules` (fixed matrices taken from `net`)."""
    if cfg.rule == "pepita":
        f = rules.pepita_factors(weights, x, target, net.F, sign=cfg.sign,
                                 output_error=cfg.output_error, masks=masks)
    elif cfg.rule == "bp":
        f = rules.bp_factors(weights, x, target, masks)
    else:
        fn = {"fa": rules.fa_factors, "dfa": rules.dfa_factors, "drtp": rules.drtp_factors}
        f = fn[cfg.rule](weights, x, target, net.feedback, masks)
    return rules.updates_from_factors(f)


@pytest.mark.parametrize("rule", ["pepita", "bp", "fa", "dfa", "drtp"])
def test_fused_momentum_step_equals_pure_rule(rule):
    """Two steps of the loop's fused update equal `v = 0.9 v + lr dW; W -= v` with the pure dW."""
    cfg = RunConfig(rule=rule, **TINY)
    trainer = Trainer(cfg, progress=False)
    data, net = trainer.data, trainer.net
    initial = [W.clone() for W in net.weights]
    weights = [W.clone() for W in net.weights]
    velocity = [torch.zeros_like(W) for W in weights]
    for step in range(2):
        rows = slice(step * 32, (step + 1) * 32)
        x, target = data.x_train[rows], trainer.eye[data.y_train[rows]]
        masks = [m.clone() for m in trainer.dropout_masks(32)]
        dW = pure_updates(cfg, weights, net, x, target, masks)
        for W, v, d in zip(weights, velocity, dW):
            v.mul_(0.9).add_(d, alpha=cfg.lr)
            W.sub_(v)
        trainer.apply(trainer.factors(x, target, masks), cfg.lr)
    for W_loop, W_pure, W_0 in zip(net.weights, weights, initial):
        torch.testing.assert_close(W_loop, W_pure, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(W_loop, W_0)  # the comparison is not between still weights


def test_train_step_equals_pure_rule_over_an_epoch():
    """The loop's own step (PEPITA with W_1 F tracked, dropout) equals the pure rule with the
    same masks, step after step through an epoch (tracking refreshed only at its start)."""
    cfg = RunConfig(rule="pepita", dataset="synthetic", hidden=(64,), batch_size=16, lr=0.05,
                    keep_prob=0.9, device="cpu", subset=256)
    trainer = Trainer(cfg, progress=False)
    assert FirstLayerFeedback.applies(trainer.net.weights, 10)  # C (d + 2 n_1) < d n_1 here
    data, net = trainer.data, trainer.net
    weights = [W.clone() for W in net.weights]
    velocity = [torch.zeros_like(W) for W in weights]
    draw = trainer.dropout_masks
    for step in range(16):
        rows = slice(step * 16, (step + 1) * 16)
        x, target = data.x_train[rows], trainer.eye[data.y_train[rows]]
        masks = [m.clone() for m in draw(16)]
        trainer.dropout_masks = lambda B, masks=masks: masks
        dW = pure_updates(cfg, weights, net, x, target, masks)
        for W, v, d in zip(weights, velocity, dW):
            v.mul_(0.9).add_(d, alpha=cfg.lr)
            W.sub_(v)
        trainer.train_step(x, target, cfg.lr)
    for W_loop, W_pure in zip(net.weights, weights):
        torch.testing.assert_close(W_loop, W_pure, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(trainer.view.carry[FirstLayerFeedback.KEY].wf,
                               net.weights[0] @ net.F,
                               rtol=1e-5, atol=1e-6)


def test_lr_decays_after_milestones():
    cfg = RunConfig(lr=0.1, lr_milestones=(2, 4))
    assert [round(lr_at(cfg, e), 6) for e in range(6)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]


@pytest.mark.parametrize("rule", ["pepita", "bp"])
def test_same_seed_same_history_bit_for_bit(rule):
    def once():
        t = Trainer(RunConfig(rule=rule, **TINY), progress=False)
        t.run()
        return t
    a, b = once(), once()
    for k in ("train_loss", "test_loss", "test_acc"):
        np.testing.assert_array_equal(a.history.values[k], b.history.values[k])
    assert all(torch.equal(x, y) for x, y in zip(a.net.weights, b.net.weights))
    c = Trainer(RunConfig(rule=rule, **{**TINY, "seed": 1}), progress=False)
    c.run()
    assert a.history.values["train_loss"][1:] != c.history.values["train_loss"][1:]


def test_F_is_fixed_and_scaled():
    t = Trainer(RunConfig(**{**TINY, "f_scale": 0.05}), progress=False)
    F0 = t.members[0].net.F.clone()  # the run's net (the loop's tensors carry a K = 1)
    t.run()
    assert torch.equal(t.members[0].net.F, F0)
    d = t.data.n_features
    bound = 0.05 * (6 / d) ** 0.5
    assert F0.shape == (d, t.data.n_classes)
    assert float(F0.abs().max()) <= bound and float(F0.abs().max()) > 0.5 * bound


@pytest.mark.parametrize("rule", ["pepita", "bp", "fa", "dfa", "drtp"])
def test_every_rule_learns_the_synthetic_task(rule):
    lr = 0.01 if rule == "drtp" else 0.05
    cfg = RunConfig(rule=rule, dataset="synthetic", hidden=(64,), epochs=5, batch_size=32,
                    lr=lr, device="cpu", keep_prob=1.0)
    t = Trainer(cfg, progress=False)
    t.run()
    assert t.history.last("test_acc") > 0.35  # chance is 0.1
    assert t.history.last("train_loss") < t.history.values["train_loss"][1]  # [0]: initial, NaN


def test_biases_are_trained():
    t = Trainer(RunConfig(**{**TINY, "bias": True}), progress=False)
    t.run()
    assert all(float(b.abs().sum()) > 0 for b in t.net.biases)


def test_stop_ends_the_run_without_counting_the_partial_epoch():
    t = Trainer(RunConfig(**TINY), progress=False)
    calls = iter(range(10**6))
    assert t.run(should_stop=lambda: next(calls) > 10) == "stopped"
    assert t.epoch == 1 and t.history.epoch == [0, 1]


def test_pepita_learns_real_mnist_subset(data_dir):
    data = load_data("mnist", data_dir=data_dir, subset=5000)
    cfg = RunConfig(epochs=2, device="cpu", data_dir=str(data_dir))
    t = Trainer(cfg, data, progress=False)
    t.run()
    assert t.history.last("test_acc") > 0.85
