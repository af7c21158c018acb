"""Config fields in one place: every RunConfig field is a CLI flag (typed and documented from
the field), can be swept, and becomes a coordinate of the run's records; reading a run does
not import the training loop or the bench."""

import dataclasses
import subprocess
import sys

import pytest
import xarray as xr

import pepita_lab as pl
from pepita_lab.cli import build_parser, configs_from_args, main
from pepita_lab.config import (CONV_FIELDS, IDENTITY_FIELDS, MEMBER_FIELDS, ConfigError,
                               RunConfig, field_kind, parse_field)

# Fields whose values are names: another allowed one (every other field's value is derived
# from its default below, so a new field needs no entry unless it is a name).
OTHER_NAME = {"rule": "bp", "dataset": "synthetic", "model": "conv", "conv_update": "icml-code",
              "f_distribution": "gaussian", "output_error": "clean", "device": "cpu",
              "precision": "bf16", "compile": "default", "data_dir": "/tmp/elsewhere",
              "momentum_style": "torch", "init": "he-normal", "pepita_variant": "forward",
              "time_local_masks": "shared"}
# Fields that take another value only with other settings beside them.
NEEDS = {"ff_threshold": ["--rule", "ff"], "weight_mirroring": ["--f-distribution", "factorised"]}


def other_value(f):
    """A valid value of field `f` other than its default, and its command-line words."""
    default, kind = getattr(RunConfig(), f.name), field_kind(f.name)
    if kind == "bool":
        return (not default), [("--no-" if default else "--") + f.name.replace("_", "-")]
    if kind == "ints":
        value = tuple(v + 1 for v in default) or (3,)
    elif kind in ("int", "int?"):
        value = (default or 0) + 1 if f.name != "seed" else 7
    elif kind == "float":
        value = -1.0 if f.name == "sign" else default / 2 if default else 0.5
    else:
        value = OTHER_NAME[f.name]
    words = [str(v) for v in value] if isinstance(value, tuple) else [str(value)]
    return value, ["--" + f.name.replace("_", "-"), *words]


@pytest.mark.parametrize("f", dataclasses.fields(RunConfig), ids=lambda f: f.name)
def test_every_field_is_reachable_from_the_command_line(f):
    value, words = other_value(f)
    if f.name in CONV_FIELDS:  # conv settings are refused on a fully connected net
        words += ["--model", "conv"]
    words += NEEDS.get(f.name, [])
    args = build_parser().parse_args(["train", *words])
    (config,) = configs_from_args(args)
    assert getattr(config, f.name) == value
    assert getattr(config, f.name) != getattr(RunConfig(), f.name)


def test_help_comes_from_the_fields(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(RunConfig):
        assert "--" + f.name.replace("_", "-") in text
        assert " ".join(f.metadata["doc"].split())[:30] in text


def test_member_fields_take_several_values_as_a_population():
    args = build_parser().parse_args(["train", "--lr-gamma", "0.1", "0.5", "--sign", "1", "-1"])
    configs = configs_from_args(args)
    assert {(c.lr_gamma, c.sign) for c in configs} == {(0.1, 1.0), (0.1, -1.0), (0.5, 1.0),
                                                       (0.5, -1.0)}
    assert set(MEMBER_FIELDS) <= set(IDENTITY_FIELDS)


@pytest.mark.parametrize("name,text,value", [
    ("subset", "500", 500), ("subset", "none", None), ("bias", "yes", True),
    ("bias", "false", False), ("hidden", "256x128", (256, 128)), ("lr", "1e-3", 1e-3),
    ("conv_update", "icml-code", "icml-code")])
def test_sweep_values_are_read_as_the_field_type(name, text, value):
    assert parse_field(name, text) == value


@pytest.mark.parametrize("name,text", [("bias", "maybe"), ("subset", "5.5"), ("lr", "fast"),
                                       ("nonexistent", "1")])
def test_bad_sweep_values_are_refused_with_the_field_named(name, text):
    with pytest.raises(ConfigError, match=name):
        parse_field(name, text)


def test_bad_flag_value_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--epochs", "many"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and "--epochs" in err


SMALL = ["--dataset", "synthetic", "--hidden", "8", "--epochs", "2", "--subset", "256",
         "--lr-milestones", "1", "--quiet"]


@pytest.mark.parametrize("grid,dim,values", [
    ("lr_gamma=0.1,0.5", "lr_gamma", [0.1, 0.5]),
    ("f_distribution=uniform,gaussian", "f_distribution", ["uniform", "gaussian"])])
def test_sweeping_a_field_that_no_loop_varies_completes(tmp_path, grid, dim, values):
    """lr_gamma is no population flag and f_distribution is text: both end as dimensions of
    sweep.nc (text as a coordinate of strings)."""
    assert main(["sweep", *SMALL, "--grid", grid, "--out", str(tmp_path / "S")]) == 0
    ds = xr.open_dataset(tmp_path / "S" / "sweep.nc")
    assert dim in ds.test_acc.dims and sorted(ds[dim].values.tolist()) == sorted(values)
    if dim == "lr_gamma":  # the decay after epoch 1 is what differs
        assert list(ds.epoch_lr.isel(epoch=-1).squeeze().values) == pytest.approx([0.01, 0.05])


def test_every_identity_field_is_a_run_coordinate():
    run = pl.train(RunConfig(dataset="synthetic", hidden=(8,), epochs=1, subset=128,
                             device="cpu"), progress=False, traces=False)
    for name in IDENTITY_FIELDS:
        assert run.history[name].dims == ("run",), name
    assert run.history.lr_milestones.item() == "60,90" and run.history.subset.item() == 128


def test_reading_a_run_imports_neither_the_loop_nor_the_bench(tmp_path):
    out = tmp_path / "run"
    pl.train(RunConfig(dataset="synthetic", hidden=(8,), epochs=1, subset=128, device="cpu"),
             out=out, progress=False)
    code = ("import sys; from pepita_lab.cli import main; "
            f"assert main(['inspect', {str(out)!r}]) == 0; "
            f"assert main(['figures', {str(out)!r}, '--format', 'svg']) == 0; "
            # the parser imports the bench's flags (bench.args), never the harness
            "bad = [m for m in sys.modules if m == 'pepita_lab.training' or "
            "m.startswith('pepita_lab.bench.') and m != 'pepita_lab.bench.args']; "
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
