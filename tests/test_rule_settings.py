"""A rule's own settings (rules/defaults.py): they come with the rule wherever it is chosen and
nothing else sets them (a preset, the CLI's --rule, the explorer's dropdown: test_widgets.py),
an explicit value wins, and the run records which of its settings are its rule's own. Settings
that cannot learn are said before a run and after it (advice.py), in the CLI here."""

import json

import pytest
import xarray as xr

import pepita_lab as pl
from pepita_lab.advice import outcome, unlearnable
from pepita_lab.cli import build_parser, configs_from_args, main
from pepita_lab.config import PRESETS, RunConfig
from pepita_lab.rules import rule_names
from pepita_lab.rules.defaults import (TRAINING_FIELDS, own_settings, settings_attrs,
                                       switched_settings)

PAPER = {k: PRESETS["paper-mnist"].get(k, getattr(RunConfig(), k)) for k in TRAINING_FIELDS}


def cli_config(*flags):
    args = build_parser().parse_args(["train", *flags])
    (config,) = configs_from_args(args)
    return config


def test_ff_and_drtp_declare_their_own_settings():
    ff = own_settings("ff")
    assert (ff["lr"], ff["batch_size"], ff["bias"], ff["keep_prob"]) == (0.001, 50, True, 1.0)
    assert ff["weight_decay"] == 3e-4 and ff["lr_milestones"] == (60, 80)
    assert own_settings("drtp") == {"lr": 0.001, "feedback_scale": 0.01}
    assert own_settings("pepita") == own_settings("bp") == {}  # the paper's are theirs


@pytest.mark.parametrize("rule", rule_names())
def test_a_preset_with_a_rule_alone_has_the_rules_settings(rule):
    expected = {**PAPER, **own_settings(rule)}
    for config in (pl.resolve(pl.preset("paper-mnist", rule=rule)),
                   pl.resolve(RunConfig(rule=rule)),
                   cli_config("--preset", "paper-mnist", "--rule", rule),
                   cli_config("--rule", rule)):  # no preset: the defaults are the paper's
        assert {k: getattr(config, k) for k in TRAINING_FIELDS} == expected, rule


@pytest.mark.parametrize("rule", rule_names())
def test_an_explicit_setting_wins_over_the_rules(rule):
    for config in (pl.resolve(pl.preset("paper-mnist", rule=rule, lr=0.0123, batch_size=16)),
                   pl.resolve(RunConfig(rule=rule, lr=0.0123, batch_size=16)),
                   cli_config("--preset", "paper-mnist", "--rule", rule, "--lr", "0.0123",
                              "--batch-size", "16")):
        assert (config.lr, config.batch_size) == (0.0123, 16)
        rest = {k: v for k, v in own_settings(rule).items() if k not in ("lr", "batch_size")}
        assert {k: getattr(config, k) for k in rest} == rest
    # a preset and a RunConfig keep what they say until resolved; one preset
    assert pl.preset("paper-mnist", rule=rule).lr == 0.1
    assert pl.preset is pl.config.preset and not hasattr(pl.rules.defaults, "preset")


@pytest.mark.parametrize("rule", rule_names())
def test_a_value_set_to_the_default_is_kept(rule):
    """What the user set counts, not whether it equals the default: lr=0.1 stays 0.1."""
    config = pl.resolve(RunConfig(rule=rule, lr=0.1, bias=False))
    assert (config.lr, config.bias) == (0.1, False)
    assert pl.resolve(config) == config  # resolving again changes nothing
    assert pl.resolve(RunConfig.from_dict(config.to_dict())) == config  # a stored run's


def test_the_explorers_switch_goes_back_to_the_papers_settings():
    ff = pl.resolve(pl.preset("paper-mnist", rule="ff"))
    assert switched_settings("pepita", ff) == PAPER
    assert switched_settings("ff", RunConfig(lr=0.03))["lr"] == 0.001
    assert switched_settings("bp", RunConfig(lr=0.03))["lr"] == 0.03  # the base's own choice


def test_the_cli_says_and_the_run_records_the_rules_settings(tmp_path, capsys):
    flags = ["train", "--preset", "paper-mnist", "--dataset", "synthetic", "--rule", "ff",
             "--hidden", "16", "--epochs", "1", "--subset", "200", "--device", "cpu",
             "--quiet"]
    assert main(flags + ["--out", str(tmp_path / "own")]) == 0
    err = capsys.readouterr().err
    assert "ff's own settings: bias=True, lr=0.001," in err and "batch_size=50" in err
    assert main(flags + ["--lr", "0.002", "--out", str(tmp_path / "lr")]) == 0
    assert "lr=0.001" not in capsys.readouterr().err  # not taken: the flag was given
    with xr.open_dataset(tmp_path / "own" / "history.nc") as h:
        assert "lr=0.001" in h.attrs["rule_settings"] and "bias=True" in h.attrs["rule_settings"]
        assert "rule_settings_overridden" not in h.attrs
        assert json.loads(h.attrs["config"])["batch_size"] == 50
    with xr.open_dataset(tmp_path / "lr" / "history.nc") as h:
        assert h.attrs["rule_settings_overridden"] == "lr=0.002 (ff's: 0.001)"
    assert settings_attrs(RunConfig()) == {}  # PEPITA: the paper's, nothing to say


# ------------------------------------------------------------ settings that cannot learn


@pytest.mark.parametrize("changes, words", [
    (dict(weight_mirroring=True, f_distribution="factorised", sign=-1.0, epochs=1,
          premirror_epochs=1), "never train"),
    (dict(weight_mirroring=True, f_distribution="factorised", epochs=3), "x + F e"),
    (dict(weight_mirroring=True, f_distribution="factorised", sign=-1.0, epochs=3,
          hidden=(64, 64)), "two mirrored layers diverged"),
    (dict(hidden=(64, 64, 64)), "collapse to chance"),
    (dict(normalize=True), "far larger"),
    (dict(rule="ff"), "100x ff's own"),
])
def test_each_unlearnable_setting_is_named(changes, words):
    reasons = unlearnable(RunConfig(**changes))
    assert len(reasons) == 1 and words in reasons[0], reasons


def test_learnable_settings_say_nothing():
    assert unlearnable(RunConfig()) == []
    assert unlearnable(pl.resolve(pl.preset("paper-mnist", rule="ff"))) == []
    assert unlearnable(RunConfig(weight_mirroring=True, f_distribution="factorised",
                                 sign=-1.0, epochs=3, lr=0.01, hidden=(64, 64))) == []


def test_a_run_at_chance_or_below_its_start_did_not_learn():
    cfg = RunConfig()
    assert outcome(cfg, [0.1, 0.95], 10) is None
    assert outcome(cfg, [0.1], 10) is None  # nothing trained yet
    assert "ended at chance (10.1%" in outcome(cfg, [0.09, 0.101], 10)
    assert "at or below its untrained accuracy (30.0% after training, 40.0%" in outcome(
        cfg, [0.4, 0.3], 10)
    assert "at or below its untrained" in outcome(cfg, [0.4, 0.402], 10)  # no gain
    assert "likely cause: lr 0.1 is 100x ff's own" in outcome(RunConfig(rule="ff"),
                                                              [0.1, 0.1], 10)


def test_the_cli_says_unlearnable_settings_before_and_after(tmp_path, capsys):
    # mirroring whose pre-mirroring takes the one epoch: the forward weights never train
    code = main(["train", "--dataset", "synthetic", "--hidden", "32", "--epochs", "1",
                 "--weight-mirroring", "--f-distribution", "factorised", "--sign", "-1",
                 "--premirror-epochs", "1", "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "run")])
    said = capsys.readouterr()
    assert code == 0  # completed: not a divergence
    assert "pepita-lab: warning: pre-mirroring takes 1 of the 1 epochs" in said.err
    last = said.out.strip().splitlines()[-1]
    assert last.startswith("pepita-lab: the run completed but did not learn: ended at")
    assert "likely cause: pre-mirroring takes 1 of the 1 epochs" in last
    with xr.open_dataset(tmp_path / "run" / "history.nc") as h:
        assert h.attrs["learned"] == "no" and h.attrs["status"] == "completed"
        assert "never train" in h.attrs["not_learned"]
