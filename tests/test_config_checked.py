"""One door (issue 31): a config is checked where it is made, a misspelled name gets the
nearest field, checking never changes anything, and every entry point (`pepita_lab.train`,
the CLI, the explorer, a sweep) resolves the same user input to the same config. A run that
diverges says so in Python, once."""

import dataclasses
import math
import pickle
import pydoc
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pepita_lab as pl
from pepita_lab.cli import build_parser, configs_from_args, main
from pepita_lab.config import ConfigError, RunConfig, field_names
from pepita_lab.config.checks import ALLOWED, checked_values
from pepita_lab.rules import rule_names

FIELDS = dataclasses.fields(RunConfig)
CHECKED = [f.name for f in FIELDS if ALLOWED[f.name].kind != "path"]  # a path takes any text


def test_every_field_declares_what_it_allows():
    """A new field without an entry in ALLOWED is refused here, so the tests below (which
    draw invalid values from the declarations) cover it."""
    assert set(ALLOWED) == set(field_names())


def invalid_values(name: str):
    """A strategy of values field `name` refuses, derived from its declaration."""
    a = ALLOWED[name]
    junk = st.sampled_from([[], {}, object(), b"x"] + ([] if a.none else [None]))
    if a.kind == "choice":
        return st.one_of(junk, st.text(max_size=8).filter(lambda t: t not in a.choices),
                         st.integers())
    if a.kind == "bool":
        return st.one_of(junk, st.integers(0, 1), st.text(max_size=4), st.floats())
    if a.kind == "name":
        return st.one_of(st.just(""), st.integers(), st.floats(), st.sampled_from([None, []]))
    if a.kind == "int":
        bad = [st.text(max_size=4), st.booleans(),
               st.floats(allow_nan=True).filter(lambda x: not float(x).is_integer())]
        if a.low is not None:
            bad.append(st.integers(max_value=int(a.low) - 1))
        bad.append(st.integers(min_value=int(a.high if a.high is not None else 2**63 - 1) + 1))
        return st.one_of(junk, *bad)
    if a.kind == "float":
        bad = [st.text(max_size=4), st.booleans(), st.sampled_from([math.nan, math.inf, -math.inf])]
        if a.choices:
            bad.append(st.floats(allow_nan=False, allow_infinity=False).filter(
                lambda x: x not in a.choices))
        if a.low is not None:
            below = st.floats(max_value=a.low, allow_nan=False, allow_infinity=False)
            bad.append(below if a.low_open else below.filter(lambda x: x < a.low))
        if a.high is not None:
            bad.append(st.floats(min_value=a.high, allow_nan=False, allow_infinity=False,
                                 exclude_min=True))
        return st.one_of(junk, *bad)
    assert a.kind == "ints", f"{name}: no invalid values drawn for kind {a.kind!r}"
    return st.one_of(st.text(min_size=1, max_size=4), st.floats(allow_nan=True),
                     st.lists(st.integers(max_value=int(a.low) - 1), min_size=1, max_size=3),
                     st.lists(st.text(max_size=2), min_size=1, max_size=2))


@pytest.mark.parametrize("name", CHECKED)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_an_invalid_value_is_refused_where_the_config_is_made(name, data):
    value = data.draw(invalid_values(name))
    with pytest.raises(ConfigError) as err:
        RunConfig(**{name: value})
    message = str(err.value)
    assert message.startswith(f"{name}=") and "\n" not in message, message
    assert "RunConfig(" not in message  # the field, never the whole config


@pytest.mark.parametrize("name", field_names())
def test_a_misspelled_field_gets_the_nearest_one(name):
    typo = name[: len(name) // 2] + name[len(name) // 2] + name[len(name) // 2:]  # a letter twice
    for make in (lambda: RunConfig(**{typo: 1}), lambda: RunConfig().replace(**{typo: 1}),
                 lambda: RunConfig.from_dict({typo: 1}),
                 lambda: pl.preset("paper-mnist", **{typo: 1})):
        with pytest.raises(ConfigError, match=f"did you mean '{name}'"):
            make()


@pytest.mark.parametrize("typo, field", [("learnig_rate", "lr"), ("learning_rate", "lr"),
                                         ("f_scle", "f_scale"), ("batch", "batch_size")])
def test_natural_synonyms_name_the_field(typo, field):
    with pytest.raises(ConfigError, match=f"did you mean '{field}'"):
        RunConfig(**{typo: 0.1})


def test_the_acceptance_cases():
    with pytest.raises(ConfigError, match="^lr=-1"):
        pl.RunConfig(lr=-1)
    with pytest.raises(ConfigError, match="'lr'"):
        pl.RunConfig(learnig_rate=0.1)
    for bad in (dict(lr="0.1"), dict(dataset="fmnist")):
        with pytest.raises(ConfigError):
            pl.RunConfig(**bad)
    with pytest.raises(ConfigError, match="^rule='pepitaa' is not allowed: did you mean 'pepita'"):
        pl.RunConfig(rule="pepitaa")
    with pytest.raises(ConfigError, match="below one pixel at conv layer 3"):
        RunConfig(model="conv", conv_channels=(2, 2, 2), hidden=())


def test_the_cli_points_to_the_subcommands_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--learnig-rate", "0.1"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert "did you mean --lr?" in err and err.endswith("(see pepita-lab train --help)")


def test_a_config_is_a_value_that_checking_does_not_change():
    config = RunConfig(hidden=[8, 4], lr=1, lr_milestones=[9, 3])
    assert config.hidden == (8, 4) and config.lr == 1.0 and config.lr_milestones == (3, 9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 0.5
    values = {f.name: getattr(RunConfig(), f.name) for f in FIELDS} | {"hidden": [8]}
    before = dict(values)
    checked_values(values)
    assert values == before and values["hidden"] == [8]  # the list given stays a list
    assert pl.config.check_fields(config) is config
    copy = pickle.loads(pickle.loads(pickle.dumps(pickle.dumps(config))))
    assert copy == config and copy.set_fields == config.set_fields


def test_help_lists_every_field_with_its_doc_default_and_allowed_values():
    text = " ".join(pydoc.render_doc(RunConfig, renderer=pydoc.plaintext).replace("|", " ")
                    .split())  # the lines as one: wrapping aside
    for f in FIELDS:
        assert f"{f.name}: " in text and f.metadata["doc"].split()[0] in text, f.name
    assert "lr: float = 0.1" in text and "Allowed: a number > 0.0" in text
    assert "Allowed: one of mnist, fashion-mnist, cifar10, cifar100, synthetic" in text


# ------------------------------------------------- every entry point resolves alike


USER = dict(dataset="synthetic", hidden=(16,), epochs=1, subset=128, device="cpu", seed=2)


def cli_words(rule: str) -> list[str]:
    return ["train", "--rule", rule, "--dataset", "synthetic", "--hidden", "16", "--epochs",
            "1", "--subset", "128", "--device", "cpu", "--seed", "2"]


@pytest.mark.parametrize("rule", rule_names())
def test_every_entry_point_resolves_the_same_config(rule, capsys):
    from pepita_lab.sweep import SweepSpec
    from pepita_lab.widgets.explorer import explorer

    api = pl.resolve(RunConfig(rule=rule, **USER))  # what pl.train trains
    (cli,) = configs_from_args(build_parser().parse_args(cli_words(rule)))
    (sweep,) = SweepSpec(base=RunConfig(rule=rule, **USER), grid={}, seeds=[2]).points()
    ex = explorer(rule=rule, **USER)
    assert cli == api and sweep == api, rule
    assert ex.config() == api  # the explorer's config builder (its controls)
    # what the rule declares is what it trains with, wherever it was chosen
    own = pl.rules.defaults.own_settings(rule)
    assert {k: getattr(api, k) for k in own} == own
    # the user's value wins everywhere, even one equal to the default
    mine = pl.resolve(RunConfig(rule=rule, lr=0.1, **USER))
    (cli_mine,) = configs_from_args(build_parser().parse_args(cli_words(rule) + ["--lr", "0.1"]))
    assert mine.lr == 0.1 and cli_mine == mine


# ---------------------------------------------------------- divergence said in Python


def test_a_diverging_run_warns_once():
    config = RunConfig(dataset="synthetic", hidden=(16,), epochs=3, subset=256, lr=1e4,
                       device="cpu")
    with pytest.warns(pl.DivergedWarning) as record:
        run = pl.train(config, progress=False, traces=False)
    diverged = [w for w in record if issubclass(w.category, pl.DivergedWarning)]
    assert len(diverged) == 1 and issubclass(pl.DivergedWarning, RuntimeWarning)
    message = str(diverged[0].message)
    a = run.history.attrs
    assert f"epoch {a['diverged_epoch']}, step {a['diverged_step']}" in message
    assert a["diverged_reason"] in message
    assert run.status == "diverged" and "diverged" in repr(run)
    assert diverged[0].filename == __file__  # points to the call, not inside the lab


def test_a_run_that_learns_says_nothing_and_its_repr_is_short():
    config = RunConfig(dataset="synthetic", hidden=(32,), epochs=3, subset=2000, lr=0.05,
                       device="cpu", keep_prob=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        run = pl.train(config, progress=False, traces=False)
    text = repr(run)
    assert len(text.splitlines()) <= 6 and "tensor" not in text
    assert "pepita" in text and "synthetic" in text and f"{100 * run.test_acc:.1f} %" in text
    x = np.random.default_rng(0).random((5, 32), dtype=np.float32)
    ds = run.activation_differences(x, [0, 1, 2, 3, 4])
    assert ds.h_diff_1.dims == ("sample", "unit_1") and ds.sizes == {
        "sample": 5, "unit_1": 32, "class": 10, "height": 1, "width": 32, "channel": 1}
    assert list(ds.label.values) == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="^y "):
        run.activation_differences(x, [0, 1])


def test_a_rule_of_your_own_is_known_once_registered_and_its_runs_read_without_it(tmp_path):
    """A config names a built-in rule, a registered one or an entry point's; a stored run of
    a rule nobody registered is still read (and a pickled config, as a Dask worker gets it,
    is rebuilt before the worker imports the rule's module)."""
    from pepita_lab.rules import DirectFeedbackAlignment, register_rule, unregister

    class Mine(DirectFeedbackAlignment):
        name = "mine-for-a-test"

    with pytest.raises(ConfigError, match="register_rule"):
        RunConfig(rule="mine-for-a-test")
    register_rule(Mine())
    try:
        config = RunConfig(rule="mine-for-a-test", lr=0.05)
        assert config.rule == "mine-for-a-test"
        blob = pickle.dumps(config)
    finally:
        unregister("mine-for-a-test")
    again = pickle.loads(blob)  # no such rule here any more: rebuilt all the same
    assert again == config and again.set_fields == config.set_fields
    stored = RunConfig.from_dict(config.to_dict(), check_rule=False)
    assert stored.rule == "mine-for-a-test" and stored.lr == 0.05
    with pytest.raises(ConfigError, match="mine-for-a-test"):
        RunConfig.from_dict(config.to_dict())
