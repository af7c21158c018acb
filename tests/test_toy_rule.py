"""A learning rule defined here and nowhere else (one class, one registration call) is a
first-class rule: it trains as a single run and as a population member (equal to float
tolerance), appears in the cost model and the bench, and every command takes it by name."""

import json

import numpy as np
import pytest
import torch

import pepita_lab as pl
from pepita_lab import bench, cli
from pepita_lab.analysis import cost_table, step_cost
from pepita_lab.nets import forward_pass
from pepita_lab.rules import Factors, Rule, register, rule_names, unregister
from pepita_lab.rules.factors import relu_grad

pytestmark = pytest.mark.numerics


class ErrorSignDFA(Rule):
    """Toy: DFA that projects only the sign of the output error, `(sign(e) B_l) * relu'`."""

    name, label, feedback, conv = "toy-sign-dfa", "sign-DFA", "direct", False

    def factors(self, net, x, target, masks, settings, state=None) -> Factors:
        hs, ins = forward_pass(net.weights, net.shape_input(x), masks, net.biases)
        e = hs[-1] - target  # (B, C) or (K, B, C)
        deltas = [(torch.sign(e) @ B_l) * relu_grad(h, None if masks is None else masks[l])
                  for l, (B_l, h) in enumerate(zip(net.feedback, hs[1:-1]))]
        return Factors(deltas + [e], ins, hs[-1])


NAME = ErrorSignDFA.name
register(ErrorSignDFA())  # a config names only a known rule: registered while BASE is made
BASE = pl.RunConfig(rule=NAME, dataset="synthetic", hidden=(24, 12), epochs=2, batch_size=32,
                    lr=0.02, feedback_scale=0.1, device="cpu", subset=512)
unregister(NAME)  # each test registers it again (the fixture below)


@pytest.fixture(autouse=True)
def toy_rule():
    register(ErrorSignDFA())
    yield
    unregister(NAME)


def test_single_run_learns_and_population_members_equal_single_runs():
    configs = [BASE.replace(seed=0), BASE.replace(seed=1, lr=0.01, feedback_scale=0.05)]
    members = pl.train_population(configs, progress=False)
    for config, member in zip(configs, members):
        single = pl.train(config, progress=False)
        assert single.status == member.status == "completed"
        for var in ("test_loss", "test_acc", "train_loss", "bp_cosine", "feedback_angle"):
            np.testing.assert_allclose(member.history[var].values, single.history[var].values,
                                       rtol=1e-4, atol=1e-4, err_msg=var)
        for a, b in zip(member.net.weights, single.net.weights):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert single.history.rule.item() == NAME
    assert single.test_acc > single.history.test_acc.isel(run=0, epoch=0)  # it learns


def test_cost_model_takes_it():
    sizes, B = [32, 24, 12, 10], 8
    assert NAME in cost_table(sizes, B).rule.tolist()
    # the default model: a forward pass, the updates, the direct projections of the error
    pairs = 32 * 24 + 24 * 12 + 12 * 10
    assert step_cost(NAME, sizes, B).macs == 2 * B * pairs + B * 10 * (24 + 12)


def test_bench_quick_times_it():
    results = bench.run_bench(quick=True, device="cpu", repeats=1)
    row = results["shapes"][0]["rules"][NAME]
    assert row["label"] == "sign-DFA" and row["step"]["median_s"] > 0
    assert NAME not in results["conv"]["rules"]  # it declares no conv support


def test_every_command_takes_it_by_name(tmp_path, capsys):
    assert NAME in rule_names()
    common = ["--rule", NAME, "--dataset", "synthetic", "--hidden", "16", "--epochs", "1",
              "--subset", "256", "--device", "cpu", "--quiet"]
    assert cli.main(["train", *common, "--out", str(tmp_path / "run")]) == 0
    assert cli.main(["train", *common, "--seed", "0", "1", "--out", str(tmp_path / "pop")]) == 0
    assert cli.main(["sweep", *common, "--lr", "0.01", "0.1", "--out",
                     str(tmp_path / "sweep")]) == 0
    assert cli.main(["inspect", str(tmp_path / "run")]) == 0
    assert cli.main(["cost", "--no-measure", "--hidden", "16"]) == 0
    out = capsys.readouterr().out
    assert NAME in out and "test_acc=" in out
    assert "feedback angle" in out and "F angle" not in out  # inspect: it has no F
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["config"]["rule"] == NAME
    # a conv net is refused with the reason, by what the rule declares (on MNIST, whose
    # images the conv net fits: synthetic's 1x32 are refused before any rule is asked)
    assert cli.main(["train", *common, "--dataset", "mnist", "--model", "conv"]) == 2
    assert "fully connected nets only" in capsys.readouterr().err


def test_explorer_offers_it():
    from pepita_lab.widgets import Explorer

    assert NAME in Explorer().controls["rule"].options


def test_register_rule_is_one_call_or_a_class_decorator():
    @pl.register_rule
    class Decorated(ErrorSignDFA):
        name = "toy-decorated"

    try:
        assert isinstance(Decorated, type) and "toy-decorated" in rule_names()
        run = pl.train(BASE.replace(rule="toy-decorated", epochs=1), progress=False)
        assert run.status == "completed" and run.history.rule.item() == "toy-decorated"
    finally:
        unregister("toy-decorated")
    assert "toy-decorated" not in rule_names()


def test_dask_workers_are_told_which_module_registers_it():
    from pepita_lab.config import ConfigError
    from pepita_lab.sweep import rule_modules

    assert rule_modules([BASE, BASE.replace(rule="pepita")]) == (ErrorSignDFA.__module__,)

    class InAScript(ErrorSignDFA):
        name = "toy-in-main"

    InAScript.__module__ = "__main__"  # as a rule defined in a notebook cell
    register(InAScript())
    try:
        with pytest.raises(ConfigError, match="Dask workers cannot import it"):
            rule_modules([BASE.replace(rule="toy-in-main")])
    finally:
        unregister("toy-in-main")
