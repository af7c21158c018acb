"""Fault injection: what a careless user and a failing machine do, case by case, each ending
in one line naming the thing (exit 2) or in correct work. docs/reliability.md lists every case
with the test that shows it ("faults" table)."""

import errno
import gzip
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
import xarray as xr

import pepita_lab as pl
from pepita_lab import records, store
from pepita_lab.cli import main
from pepita_lab.config import ConfigError
from pepita_lab.store import RunFolderError

from conftest import MIRROR, needs_mirror

SMALL = ["--dataset", "synthetic", "--hidden", "8", "--epochs", "2", "--subset", "256",
         "--quiet"]
CFG = pl.RunConfig(dataset="synthetic", hidden=(8,), epochs=2, subset=256, device="cpu")


def cli(capsys, *words) -> tuple[int, str]:
    """Run the command in-process; its exit code and its one line of error (asserted)."""
    try:
        code = main(list(words))
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    if code not in (0, None):
        assert len(err) == 1, err
        assert "Traceback" not in err[0]
    return code, err[0] if err else ""


# ---------------------------------------------------------------- sweeps


@pytest.mark.parametrize("words,dims", [
    (["--seed", "0", "1"], ("epoch", "seed")),
    ([], ("epoch", "seed")),
    (["--grid", "epochs=1,2"], ("epoch", "epochs", "seed")),
    (["--grid", "subset=128,256"], ("epoch", "subset", "seed"))])
def test_sweeps_of_any_shape_assemble(tmp_path, capsys, words, dims):
    code, _ = cli(capsys, "sweep", *SMALL, *words, "--out", str(tmp_path / "S"))
    assert code == 0
    ds = xr.open_dataset(tmp_path / "S" / "sweep.nc")
    assert set(ds.test_acc.dims) == set(dims)
    if "epochs" in dims:  # each point trained for its own epochs
        assert ds.epochs.values.tolist() == [1, 2]
        assert ds.test_acc.sel(epochs=1, epoch=2).isnull().all()
    if "subset" in dims:
        assert ds.subset.values.tolist() == [128, 256]  # integers, not text


@pytest.mark.parametrize("words,match", [
    (["--lr", "0.1", "0.1"], "repeated"),
    (["--grid", "lr=0.1,0.1"], "repeated"),
    (["--seed", "3", "3"], "repeated"),
    (["--random", "lr=0:0.1", "--n-random", "2"], "0 < LOW < HIGH"),
    (["--random", "lr=0.001:0.1"], "n_random"),
    (["--workers", "-1"], "workers=-1"),
    (["--threads", "-1"], "threads=-1"),
    (["--grid", "bias=maybe"], "bias='maybe'"),
    (["--grid", "nonexistent=1"], "nonexistent"),
    (["--resume", "R"], "--resume is not a sweep flag")])
def test_bad_sweeps_are_refused_before_anything_is_written(tmp_path, capsys, words, match):
    out = tmp_path / "S"
    code, err = cli(capsys, "sweep", *SMALL, *words, "--out", str(out))
    assert code == 2 and match in err
    assert not out.exists()


def test_a_sweep_needs_an_out_folder(capsys):
    code, err = cli(capsys, "sweep", *SMALL)
    assert code == 2 and "--out" in err


def test_a_refused_sweep_leaves_nothing_that_blocks_the_corrected_command(tmp_path, capsys):
    out = tmp_path / "S"
    out.mkdir()
    (out / "sweep.json").write_text('{"left": "by an older, different sweep"}')
    code, _ = cli(capsys, "sweep", *SMALL, "--random", "lr=0.001:0.1", "--n-random", "2",
                  "--out", str(out))
    assert code == 0 and (out / "sweep.nc").is_file()
    # a different sweep over finished points is refused, the finished points untouched
    points = sorted((out / "points").iterdir())
    code, err = cli(capsys, "sweep", *SMALL, "--lr", "0.5", "--out", str(out))
    assert code == 2 and "different sweep" in err
    assert sorted((out / "points").iterdir()) == points


@pytest.mark.parametrize("name,text,match", [
    ("bad.yaml", "grid: [\n", "not valid YAML"),
    ("bad.toml", "grid = [\n", "not valid TOML"),
    ("list.yaml", "- 1\n- 2\n", "holds a list"),
    ("scalar.yaml", "grid: {lr: 0.1}\n", "non-empty list"),
    ("typo.yaml", "gird: {lr: [0.1]}\n", "unknown key"),
    ("base.yaml", "base: {lr: fast}\n", "lr='fast'"),
    ("missing.yaml", None, "cannot be read")])
def test_bad_spec_files_are_one_line(tmp_path, capsys, name, text, match):
    spec = tmp_path / name
    if text is not None:
        spec.write_text(text)
    code, err = cli(capsys, "sweep", *SMALL, "--spec", str(spec), "--out", str(tmp_path / "S"))
    assert code == 2 and match in err


# ---------------------------------------------------------------- run folders


def test_two_trains_started_together_one_is_refused_one_survives(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "pepita_lab.cli", "train", "--dataset", "synthetic",
           "--hidden", "64", "--epochs", "3", "--quiet", "--out", str(out)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    first_out, first_err = first.communicate(timeout=300)
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 2], (first_err, second.stderr)
    loser = second.stderr if second.returncode == 2 else first_err
    assert "in use" in loser or "already holds" in loser
    assert pl.load_run(out).status == "completed"


def test_a_finished_run_is_never_overwritten_without_asking(tmp_path, capsys):
    out = tmp_path / "run"
    first = pl.train(CFG, out=out, progress=False)
    checkpoint = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(RunFolderError, match="already holds a completed run"):
        pl.train(CFG.replace(lr=0.5), out=out, progress=False)
    code, err = cli(capsys, "train", *SMALL, "--out", str(out))
    assert code == 2 and "--overwrite" in err
    assert (out / "checkpoint.pt").read_bytes() == checkpoint  # untouched
    # replaced on request: no file of the old run stays beside the new config
    pl.train(CFG.replace(lr=0.5), out=out, progress=False, traces=False, overwrite=True)
    assert not (out / "activations.nc").exists()
    assert pl.load_run(out).config.lr == 0.5 and first.config.lr != 0.5


def test_a_folder_of_other_files_is_not_overwritten(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    for overwrite in (False, True):
        with pytest.raises(RunFolderError, match="holds no run|not a run's"):
            pl.train(CFG, out=out, progress=False, overwrite=overwrite)
    assert (out / "thesis.tex").read_text() == "precious"


def test_a_full_disk_before_the_first_epoch_leaves_no_folder(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "checkpoint.pt"))

    monkeypatch.setattr(store, "save_checkpoint", full)
    code, err = cli(capsys, "train", *SMALL, "--out", str(out))
    assert code == 2 and "No space left on device" in err and "checkpoint.pt" in err
    assert not out.exists()  # the next try is not refused as "not empty"
    monkeypatch.undo()
    code, _ = cli(capsys, "train", *SMALL, "--out", str(out))
    assert code == 0


def test_a_full_disk_later_keeps_the_resumable_run(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    real = store.save_checkpoint
    calls = []

    def fails_in_epoch_2(trainer, path):
        calls.append(trainer.epoch)
        if trainer.epoch == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(trainer, path)

    monkeypatch.setattr(store, "save_checkpoint", fails_in_epoch_2)
    code, err = cli(capsys, "train", *SMALL, "--out", str(out))
    assert code == 2 and "No space left" in err
    monkeypatch.undo()
    code, _ = cli(capsys, "train", "--resume", str(out), "--quiet")
    assert code == 0 and pl.load_run(out).status == "completed"


@pytest.mark.parametrize("where", ["file", "below"])
def test_out_that_is_a_file_or_below_one(tmp_path, capsys, where):
    f = tmp_path / "f"
    f.write_text("x")
    out = f if where == "file" else f / "run"
    code, err = cli(capsys, "train", *SMALL, "--out", str(out))
    assert code == 2 and ("is a file" in err or "which is a file" in err)


def test_out_that_cannot_be_written(tmp_path, capsys, monkeypatch):
    # as root permissions do not bind, so the check's answer is injected
    monkeypatch.setattr(store.os, "access", lambda path, mode: False)
    out = tmp_path / "ro"
    out.mkdir()
    code, err = cli(capsys, "train", *SMALL, "--out", str(out))
    assert code == 2 and "not writable" in err


def test_files_are_written_with_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        pl.train(CFG, out=tmp_path / "run", progress=False)
    finally:
        os.umask(old)
    for name in ("config.json", "history.nc", "checkpoint.pt"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


# ---------------------------------------------------------------- resume


@pytest.fixture
def two_epoch_run(tmp_path):
    out = tmp_path / "run"
    pl.train(CFG, out=out, progress=False)
    return out


def test_flags_with_resume_are_refused(two_epoch_run, capsys):
    config = (two_epoch_run / "config.json").read_text()
    for words in (["--lr", "0.5"], ["--rule", "bp"], ["--preset", "paper-mnist"],
                  ["--overwrite"]):
        code, err = cli(capsys, "train", "--resume", str(two_epoch_run), *words)
        assert code == 2 and "cannot be used with --resume" in err
    assert (two_epoch_run / "config.json").read_text() == config


@pytest.mark.parametrize("field,value", [("rule", "bp"), ("hidden", [16]),
                                         ("dataset", "mnist"), ("f_scale", 0.5)])
def test_an_edited_config_is_refused_against_the_checkpoint(two_epoch_run, capsys, field,
                                                             value):
    file = two_epoch_run / "config.json"
    doc = json.loads(file.read_text())
    doc["config"][field] = value
    file.write_text(json.dumps(doc))
    code, err = cli(capsys, "train", "--resume", str(two_epoch_run), "--epochs", "3")
    assert code == 2 and f"{field}=" in err and "checkpoint" in err


def test_resume_cannot_shorten_a_run(two_epoch_run, capsys):
    before = (two_epoch_run / "config.json").read_text()
    code, err = cli(capsys, "train", "--resume", str(two_epoch_run), "--epochs", "1")
    assert code == 2 and "2 epochs done" in err
    assert (two_epoch_run / "config.json").read_text() == before


def test_extending_a_run_keeps_config_history_and_snapshots_consistent(two_epoch_run, capsys):
    code, _ = cli(capsys, "train", "--resume", str(two_epoch_run), "--epochs", "4", "--quiet")
    assert code == 0
    run = pl.load_run(two_epoch_run)
    assert run.config.epochs == 4
    assert run.history.epoch.values.tolist() == [0, 1, 2, 3, 4]
    assert run.activations.epoch.values.tolist() == [0, 1, 2, 3, 4]


# ---------------------------------------------------------------- damaged files


@pytest.mark.parametrize("name,damage", [
    ("history.nc", "truncate"), ("history.nc", "garbage"), ("activations.nc", "truncate"),
    ("checkpoint.pt", "garbage"), ("checkpoint.pt", "foreign")])
def test_damaged_files_are_named_in_one_line(two_epoch_run, capsys, name, damage):
    file = two_epoch_run / name
    if damage == "truncate":
        file.write_bytes(file.read_bytes()[:200])
    elif damage == "garbage":
        file.write_bytes(b"\x00garbage" * 50)
    else:
        torch.save({"weights": [torch.zeros(2)]}, file)
    code, err = cli(capsys, "inspect", str(two_epoch_run))
    assert code == 2 and name in err
    with pytest.raises(ConfigError, match=name):
        pl.load_run(two_epoch_run)


def test_a_config_value_beyond_float_range(two_epoch_run, capsys):
    file = two_epoch_run / "config.json"
    file.write_text(file.read_text().replace('"lr": 0.1', '"lr": 1e400'))
    code, err = cli(capsys, "inspect", str(two_epoch_run))
    assert code == 2 and "config.json" in err and "finite" in err


# ---------------------------------------------------------------- the operating system


def test_an_unreadable_dataset_file(tmp_path, capsys, monkeypatch):
    from pepita_lab import data

    path = str(tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte")

    def denied(*args, **kwargs):  # root reads anything: the refusal is injected
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr(data, "load_data", denied)
    code, err = cli(capsys, "train", "--dataset", "mnist", "--epochs", "1", "--quiet")
    assert code == 2 and "Permission denied" in err and path in err


def test_inspect_into_a_closed_pipe(two_epoch_run):
    done = subprocess.run(f"{sys.executable} -m pepita_lab.cli inspect {two_epoch_run} | "
                          "head -c 10 > /dev/null", shell=True, capture_output=True, text=True)
    assert done.stderr == "" and done.returncode == 0


@needs_mirror
def test_a_truncated_gz_in_the_mirror(tmp_path, capsys):
    mirror = tmp_path / "mirror"
    shutil.copytree(MIRROR / "MNIST", mirror / "MNIST")
    gz = mirror / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    gz.write_bytes(gz.read_bytes()[:500])
    dst = tmp_path / "data"
    code, err = cli(capsys, "data", "--mirror", str(mirror), "--data-dir", str(dst))
    assert code == 2 and ("damaged" in err or "t10k-labels" in err)
    leftovers = [p.name for p in dst.rglob("*") if p.suffix in (".part", ".tmp")]
    assert not leftovers


# ---------------------------------------------------------------- smaller


@pytest.mark.parametrize("words,match", [
    (["train", "--seed", str(2**64)], "seed="),
    (["train", "--epochs", "1e20"], "--epochs"),
    (["train", *SMALL, "--snapshot-epochs", "-5"], "snapshot_epochs"),
    (["train", *SMALL, "--conv-channels", "4"], "--model conv"),
    (["train", *SMALL, "--kernel-size", "3"], "--model conv"),
    (["cost", "--hidden", "-5", "--no-measure"], "hidden=-5"),
    (["train", "--lr", "0.1", "0.1"], "repeated")])
def test_small_refusals(capsys, words, match):
    code, err = cli(capsys, *words)
    assert code == 2 and match in err


def test_compare_by_a_setting_that_does_not_exist(two_epoch_run, capsys):
    code, err = cli(capsys, "compare", str(two_epoch_run), "--by", "nonexistent")
    assert code == 2 and "nonexistent" in err and "allowed" in err


def test_api_refusals_are_the_projects_errors(tmp_path):
    assert pl.train(CFG.to_dict(), progress=False, traces=False).status == "completed"
    with pytest.raises(ConfigError, match="expected a RunConfig"):
        pl.train("paper-mnist")
    with pytest.raises(ConfigError, match="non-empty list"):
        pl.grid(CFG, lr=[])
    with pytest.raises(ConfigError, match="non-empty list"):
        pl.train_population([])
    a = pl.train(CFG, out=tmp_path / "a", progress=False)
    b = pl.train(CFG.replace(dataset="mnist", subset=64), out=tmp_path / "b", progress=False,
                 data=_tiny_mnist())
    assert a.activations is not None and b.activations is not None
    with pytest.raises(ConfigError, match="cannot be combined"):
        pl.load_runs([tmp_path / "a", tmp_path / "b"], what="activations")


def _tiny_mnist():
    from pepita_lab.data import TensorData

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(96, 784, generator=g), torch.randint(0, 10, (96,), generator=g)
    return TensorData("mnist", x[:64], y[:64], x[64:], y[64:], (1, 28, 28), 10)


def test_reproduce_waits_for_the_lock_instead_of_removing_a_busy_folder(tmp_path):
    from pepita_lab.reproduce import run_plan, table1_plan

    plan = table1_plan("synthetic", seeds=1, out=tmp_path, epochs=1, subset=128)
    busy = plan.out / "runs" / plan.runs[0][0]
    busy.mkdir(parents=True)
    (busy / "config.json").write_text("{}")  # an unfinished run another process writes
    lock = store.lock_folder(busy)
    try:
        with pytest.raises(RunFolderError, match="in use"):
            run_plan(plan, progress=False)
        assert (busy / "config.json").read_text() == "{}"
    finally:
        store.unlock_folder(lock)


def test_history_files_read_back_after_gzip_of_nothing(tmp_path):
    """read_netcdf names the file for any unreadable content (here: a gzip stream)."""
    file = tmp_path / "history.nc"
    file.write_bytes(gzip.compress(b"not netcdf"))
    with pytest.raises(records.DamagedFileError, match="history.nc"):
        records.read_netcdf(file)


# ---------------------------------------------------------------- more bad input


def files_of(folder):
    """Every file below `folder` with its bytes (what a refusal must leave as it was)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("command", ["train", "sweep"])
@pytest.mark.parametrize("out", ["", "   "])
def test_an_empty_out_is_refused(tmp_path, capsys, monkeypatch, command, out):
    monkeypatch.chdir(tmp_path)
    code, err = cli(capsys, command, *SMALL, "--out", out)
    assert code == 2 and err.startswith("pepita-lab: error: --out '") and "folder name" in err
    assert list(tmp_path.iterdir()) == []


def test_an_integer_beyond_float_range_in_config_json(two_epoch_run, capsys):
    file = two_epoch_run / "config.json"
    file.write_text(file.read_text().replace('"lr": 0.1', '"lr": 1' + "0" * 400))
    before = files_of(two_epoch_run)
    for words in (["inspect", str(two_epoch_run)], ["train", "--resume", str(two_epoch_run)]):
        code, err = cli(capsys, *words)
        assert code == 2 and str(file) in err and "lr=<an integer of 401 digits>" in err
        assert "finite" in err
    assert files_of(two_epoch_run) == before


@pytest.mark.parametrize("name", [n for n in pl.config.field_names()
                                  if pl.config.field_kind(n) == "float"])
def test_every_float_field_refuses_an_integer_beyond_float_range(name):
    with pytest.raises(ConfigError, match=rf"^{name}=<an integer of 401 digits> is not allowed"):
        pl.RunConfig(**{name: 10**400}).replace()
    with pytest.raises(ConfigError, match=rf"^{name}=-<an integer of 401 digits>"):
        pl.RunConfig(**{name: -10**400}).replace()


@needs_mirror
@pytest.mark.parametrize("damage", ["truncated", "byte flipped", "not gzip", "empty"])
def test_a_damaged_gz_in_the_mirror_is_named_and_nothing_is_written(tmp_path, capsys, damage):
    mirror = tmp_path / "mirror"
    shutil.copytree(MIRROR / "MNIST", mirror / "MNIST")
    gz = mirror / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    data = bytearray(gz.read_bytes())
    if damage == "byte flipped":
        data[len(data) // 2] ^= 0x40
    gz.chmod(0o644)
    gz.write_bytes({"truncated": bytes(data[:len(data) // 2]), "byte flipped": bytes(data),
                    "not gzip": b"<html>not found</html>", "empty": b""}[damage])
    dst = tmp_path / "data"
    code, err = cli(capsys, "data", "--mirror", str(mirror), "--data-dir", str(dst))
    assert code == 2 and f"{gz} is damaged" in err
    assert [p for p in dst.rglob("*") if p.is_file() and p.suffix != ".lock"] == []


@pytest.mark.parametrize("words,match", [
    (["--pack-size", "0"], "--pack-size=0 is not allowed: expected an integer >= 1"),
    (["--pack-size", "-2"], "--pack-size=-2 is not allowed"),
    (["--halving-epochs", "1", "--halving-keep", "0"], "--halving-keep=0.0 is not allowed"),
    (["--halving-epochs", "1", "--halving-keep", "1"], "--halving-keep=1.0 is not allowed"),
    (["--threads", "0"], "--threads=0 is not allowed")])
def test_sweep_settings_of_zero_are_refused_not_replaced(tmp_path, capsys, words, match):
    out = tmp_path / "S"
    code, err = cli(capsys, "sweep", *SMALL, *words, "--out", str(out))
    assert code == 2 and match in err
    assert not out.exists()


@pytest.mark.parametrize("key,value", [("pack_size", 0), ("halving_keep", 0),
                                       ("halving_keep", 1.5), ("threads", 0)])
def test_sweep_settings_of_zero_are_refused_in_spec_files_and_python(tmp_path, capsys, key,
                                                                     value):
    from pepita_lab.sweep import SweepSpec

    spec = tmp_path / "spec.yaml"
    spec.write_text(f"{key}: {value}\nhalving_epochs: [1]\n")
    out = tmp_path / "S"
    code, err = cli(capsys, "sweep", *SMALL, "--spec", str(spec), "--out", str(out))
    assert code == 2 and f"spec={str(spec)!r}: {key}={value!r} is not allowed" in err
    assert not out.exists()
    with pytest.raises(ConfigError, match=f"^{key}={value!r} is not allowed"):
        SweepSpec(base=CFG, halving_epochs=[1], **{key: value})


@pytest.mark.parametrize("finished", [True, False])
@pytest.mark.parametrize("damage", ["truncated", "not JSON"])
def test_a_damaged_sweep_json_is_named_and_the_folder_left_alone(tmp_path, capsys, finished,
                                                                 damage):
    out = tmp_path / "S"
    if finished:
        assert cli(capsys, "sweep", *SMALL, "--lr", "0.1", "0.2", "--out", str(out))[0] == 0
    else:
        out.mkdir()
        (out / "sweep.json").write_text('{"base": {"lr": 0.1}, "grid": {}}\n')
    file = out / "sweep.json"
    text = file.read_text()
    file.write_text(text[:len(text) // 2] if damage == "truncated" else "not JSON at all")
    before = files_of(out)
    code, err = cli(capsys, "sweep", *SMALL, "--lr", "0.1", "0.2", "--out", str(out))
    assert code == 2 and f"{file} is damaged (not valid JSON" in err
    assert files_of(out) == before
