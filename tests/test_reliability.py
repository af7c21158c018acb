"""Runs you can trust: divergence, interruption and resume, damaged data, busy or damaged run
folders, and memory; each failure ends in one clear line, never in lost results."""

import json
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
import xarray as xr

import pepita_lab as pl
from pepita_lab.cli import main
from pepita_lab.data import DataIntegrityError, load_data
from pepita_lab.store import RunFolderError, lock_folder

CLI = [sys.executable, "-m", "pepita_lab.cli"]
SLOW_RUN = ["train", "--dataset", "synthetic", "--hidden", "256", "128", "--epochs", "8",
            "--batch-size", "16", "--lr", "0.02", "--device", "cpu", "--quiet",
            "--trace-every", "50"]


def assert_same_run(a, b):
    """Equal histories (all but wall times), activations and final weights, bit for bit."""
    ra, rb = pl.load_run(a), pl.load_run(b)
    xr.testing.assert_identical(ra.history.drop_vars("epoch_time"),
                                rb.history.drop_vars("epoch_time"))
    xr.testing.assert_identical(ra.activations, rb.activations)
    for wa, wb in zip(ra.net.weights, rb.net.weights):
        assert torch.equal(wa, wb)
    assert ra.status == rb.status == "completed"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run(CLI + SLOW_RUN + ["--out", str(out)], check=True, timeout=600)
    return out


def start(out):
    return subprocess.Popen(CLI + SLOW_RUN + ["--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_file(path, proc, timeout=120):
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end
        time.sleep(0.02)


# ---------------------------------------------------------------- divergence


def test_divergence_stops_records_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--dataset", "synthetic", "--hidden", "32", "--epochs", "3",
                 "--f-scale", "100", "--lr", "1", "--quiet", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 3 and len(err) == 1 and "diverged" in err[0], err
    run = pl.load_run(out)
    assert run.status == "diverged"
    a = run.history.attrs
    assert a["diverged_epoch"] == 1 and a["diverged_step"] >= 1 and "nats" in a["diverged_reason"]
    assert all(torch.isfinite(W).all() for W in run.net.weights)  # the last good checkpoint
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == int(run.history.epoch[-1]) == 0


def test_a_diverging_grid_member_is_marked_and_the_rest_carry_on():
    base = pl.RunConfig(dataset="synthetic", hidden=(32,), epochs=2, device="cpu")
    ds = pl.train_grid(base, f_scale=[0.05, 100.0], lr=[1.0], progress=False)
    assert list(ds.status.values) == ["completed", "diverged"]


# ---------------------------------------------------------------- interruption and resume


@pytest.mark.numerics
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_at_a_random_moment_then_resume_equals_uninterrupted(tmp_path, uninterrupted,
                                                                     seed):
    out = tmp_path / "run"
    proc = start(out)
    wait_for_file(out / "checkpoint.pt", proc)
    time.sleep(random.Random(seed).uniform(0.0, 2.5))
    proc.kill()
    proc.wait()
    subprocess.run(CLI + ["train", "--resume", str(out), "--quiet"], check=True, timeout=600)
    assert_same_run(out, uninterrupted)


@pytest.mark.numerics
def test_sigint_saves_exits_cleanly_and_resumes(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = start(out)
    wait_for_file(out / "checkpoint.pt", proc)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130), err
    if proc.returncode == 130:
        assert "interrupted" in err and "--resume" in err
        assert pl.load_run(out).status == "stopped"
    subprocess.run(CLI + ["train", "--resume", str(out), "--quiet"], check=True, timeout=600)
    assert_same_run(out, uninterrupted)


def test_sigterm_also_saves(tmp_path):
    out = tmp_path / "run"
    proc = start(out)
    wait_for_file(out / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode in (0, 130)
    assert pl.load_run(out).status in ("stopped", "completed")


# ---------------------------------------------------------------- damaged data


@pytest.fixture
def mnist_copy(tmp_path, data_dir):
    shutil.copytree(data_dir / "MNIST", tmp_path / "MNIST")
    return tmp_path


def test_truncated_dataset_file_gives_a_clear_error(mnist_copy, capsys):
    f = mnist_copy / "MNIST/raw/train-images-idx3-ubyte"
    with open(f, "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(DataIntegrityError, match="train-images-idx3-ubyte is damaged"):
        load_data("mnist", data_dir=mnist_copy, download=False)
    assert main(["train", "--dataset", "mnist", "--data-dir", str(mnist_copy), "--epochs", "1",
                 "--no-download", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(f) in err[0]


def test_byte_flipped_dataset_file_gives_a_clear_error(mnist_copy):
    f = mnist_copy / "MNIST/raw/t10k-labels-idx1-ubyte"
    data = bytearray(f.read_bytes())
    data[5000] ^= 0x01  # same size, one label changed
    f.write_bytes(bytes(data))
    with pytest.raises(DataIntegrityError, match=r"t10k-labels-idx1-ubyte is damaged: md5"):
        load_data("mnist", data_dir=mnist_copy, download=False)


# ---------------------------------------------------------------- run folders


def test_a_busy_run_folder_is_refused_and_left_untouched(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from pepita_lab.store import lock_folder; "
        f"lock_folder(Path({str(out)!r})); print('locked', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = sorted(p.name for p in out.iterdir())
        with pytest.raises(RunFolderError, match="in use by another"):
            pl.train(pl.RunConfig(dataset="synthetic", hidden=(8,), epochs=1), out=out,
                     progress=False)
        assert sorted(p.name for p in out.iterdir()) == before
    finally:
        holder.kill()
        holder.wait()
    lock_folder(out)  # released when its holder died


def test_two_cli_runs_on_one_out_the_second_is_refused(tmp_path):
    out = tmp_path / "run"
    first = start(out)
    wait_for_file(out / "checkpoint.pt", first)
    second = subprocess.run(CLI + SLOW_RUN + ["--out", str(out)], capture_output=True,
                            text=True, timeout=120)
    assert second.returncode == 2 and "--out" not in second.stderr.splitlines()[0][:5]
    assert "not empty" in second.stderr or "in use" in second.stderr
    first.wait(timeout=600)
    assert first.returncode == 0 and pl.load_run(out).status == "completed"


def test_corrupt_or_foreign_run_folders_give_clear_errors(tmp_path, capsys):
    out = tmp_path / "run"
    pl.train(pl.RunConfig(dataset="synthetic", hidden=(8,), epochs=1), out=out, progress=False)
    config = out / "config.json"
    doc = json.loads(config.read_text())
    config.write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(RunFolderError, match="incompatible version"):
        pl.load_run(out)
    config.write_text(json.dumps({**doc, "config": {**doc["config"], "lr": -1}}))
    with pytest.raises(RunFolderError, match="lr=-1"):
        pl.load_run(out)
    config.write_text('{"format_version": 1, "config": {')
    with pytest.raises(RunFolderError, match="not valid JSON"):
        pl.load_run(out)
    assert main(["inspect", str(out)]) == 2
    assert "config.json is corrupt" in capsys.readouterr().err
    config.write_text(json.dumps(doc))
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main(["train", "--resume", str(out)]) == 2
    assert "checkpoint.pt is corrupt" in capsys.readouterr().err


# ---------------------------------------------------------------- memory


def test_a_net_too_large_for_memory_is_refused_before_training(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--hidden", "200000", "200000", "--epochs",
                 "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "GiB" in err and "available" in err
    assert not out.exists()


def test_a_conv_net_too_large_for_memory_is_refused_before_training(tmp_path, capsys):
    """Conv maps count: 4096 channels of 24x24 at batch 60000 are 566 GB a map."""
    out = tmp_path / "run"
    assert main(["train", "--preset", "paper-mnist-conv", "--conv-channels", "4096",
                 "--batch-size", "60000", "--epochs", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "conv_channels=[4096]" in err and "needs about" in err and "available" in err
    assert not out.exists()
