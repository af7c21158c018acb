"""Checkpoints stay per run and in one net's shapes (the format pepita-lab 0.4.0 wrote), while
the loop holds every tensor with a leading K (K = 1 for a single run): a saved checkpoint
resumes, and a checkpoint written with 0.4.0's unbatched shapes loads."""

import math

import pytest
import torch

import pepita_lab as pl
from pepita_lab.config import RunConfig
from pepita_lab.data import TensorData
from pepita_lab.nets import init_net
from pepita_lab.rules import get_rule
from pepita_lab.store import read_checkpoint
from pepita_lab.training import Trainer

FC = RunConfig(dataset="synthetic", hidden=(12,), epochs=2, batch_size=16, lr=0.05,
               keep_prob=0.9, bias=True, device="cpu", subset=128)
CONV = RunConfig(dataset="mnist", model="conv", conv_channels=(3,), kernel_size=5, pool=2,
                 hidden=(8,), epochs=2, batch_size=16, lr=0.02, bias=True, device="cpu")


def image_data(n=96) -> TensorData:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2 * n, 784, generator=g)
    y = torch.randint(0, 10, (2 * n,), generator=g)
    return TensorData("mnist", x[:n], y[:n], x[n:], y[n:], (1, 28, 28), 10)


def data_of(config):
    return image_data() if config.model == "conv" else None


def checkpoint_0_4_0(config: RunConfig, data: TensorData) -> dict:
    """A fresh run's checkpoint as pepita-lab 0.4.0 wrote it: one net's tensors (weights
    (out, in) or (out_c, in_c, k, k), biases (out,)), its momentum shaped alike, no K."""
    net = init_net(config, data.n_features, data.n_classes, image_shape=data.image_shape,
                   feedback=get_rule(config.rule).init_feedback)
    params = net.params()
    return {"config": config.to_dict(),
            "net": {"weights": [W.clone() for W in net.weights],
                    "biases": [b.clone() for b in net.biases], "F": net.F.clone(),
                    "feedback": [B.clone() for B in net.feedback],
                    "image_shape": net.image_shape, "pool": net.pool, "F_factors": []},
            "velocity": [torch.zeros_like(p) for p in params], "epoch": 0, "step": 0,
            "history": {"epoch": [], "values": {k: [] for k in (
                "epoch_lr", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_time")}},
            "order_gen": torch.Generator().manual_seed(config.seed + 1).get_state(),
            "mask_gen": torch.Generator().manual_seed(config.seed + 2).get_state(),
            "callbacks": {}}


@pytest.mark.parametrize("config", [FC, CONV], ids=["fc", "conv"])
def test_a_saved_checkpoint_has_one_nets_shapes_and_resumes(tmp_path, config):
    run = pl.train(config.replace(epochs=1), data=data_of(config), out=tmp_path / "run",
                   progress=False)
    state = read_checkpoint(run.path)
    net = init_net(config, 784 if config.model == "conv" else run.net.weights[0].shape[1],
                   10, image_shape=(1, 28, 28) if config.model == "conv" else None)
    assert [tuple(W.shape) for W in state["net"]["weights"]] == [
        tuple(W.shape) for W in net.weights]
    assert [tuple(b.shape) for b in state["net"]["biases"]] == [
        tuple(b.shape) for b in net.biases]
    assert tuple(state["net"]["F"].shape) == tuple(net.F.shape)
    assert [tuple(v.shape) for v in state["velocity"]] == [tuple(p.shape) for p in net.params()]
    resumed = pl.resume(run.path, data=data_of(config), epochs=2, progress=False)
    whole = pl.train(config, data=data_of(config), progress=False)
    assert resumed.history.test_loss.values.tolist() == whole.history.test_loss.values.tolist()
    for a, b in zip(resumed.net.params(), whole.net.params()):
        assert a.shape == b.shape and torch.equal(a, b)


@pytest.mark.parametrize("config", [FC, CONV], ids=["fc", "conv"])
def test_a_checkpoint_with_0_4_0_shapes_loads_and_continues_as_a_fresh_run(config):
    data = image_data() if config.model == "conv" else pl.data.run_data(config, "cpu")
    fresh = Trainer(config, data, progress=False)
    loaded = Trainer(config, data, progress=False)
    loaded.load_state_dict(checkpoint_0_4_0(config, data))
    assert loaded.net.weights[0].shape[0] == 1  # stacked to K = 1 on load
    assert fresh.run() == loaded.run() == "completed"
    assert loaded.history.values["test_loss"][1:] == fresh.history.values["test_loss"][1:]
    for a, b in zip(loaded.members[0].net.params(), fresh.members[0].net.params()):
        assert torch.equal(a, b)
    assert not math.isnan(loaded.history.last("test_loss"))
