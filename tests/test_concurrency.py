"""First use of a fresh data folder from many processes at once: each dataset's lock and
atomic renames mean every process finds whole files or waits for them (docs/reliability.md).

The data folders hold only the mirror's MNIST `.gz` files, as a fresh copy of a dataset does:
the first process to load MNIST decompresses them, and the others must not read half files.
"""

import json
import shutil
import subprocess
import sys
import time

import pytest
import torchvision

from conftest import MIRROR, needs_mirror
from pepita_lab.cli import main
from pepita_lab.data import _IDX_SIZES

pytestmark = needs_mirror


def gz_only_copy(root):
    """`root` made a data folder holding only MNIST's `.gz` files, as copied from the mirror."""
    shutil.copytree(MIRROR / "MNIST", root / "MNIST")
    return root


@pytest.fixture
def gz_only(tmp_path):
    """A fresh data folder holding only MNIST's `.gz` files."""
    root = gz_only_copy(tmp_path / "data")
    assert sorted(p.suffix for p in (root / "MNIST" / "raw").iterdir()) == [".gz"] * 4
    return root


def dataset_files(root):
    """Every file in the data folder but the locks, by path relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and not p.name.endswith(".lock"))


# Each process imports everything, then for each round says it is ready, waits for the round's
# go file and, after its delay in the round, trains on the round's data folder: round 0 starts
# every process within a millisecond, later rounds one after the other at intervals shorter
# than decompressing MNIST takes (a start in the middle of another's work).
STARTER = """
import json, sys, time
from pathlib import Path
import torchvision.datasets  # noqa: F401  (imported before the start, like the CLI's)
from pepita_lab.cli import main
me, sync, plan = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
for r, (delay, words) in enumerate(plan):
    (sync / f"ready-{r}-{me}").touch()
    waited = time.monotonic()
    while not (sync / f"go-{r}").exists():
        if time.monotonic() - waited > 600:  # the test is gone: do not outlive it
            sys.exit("no start signal")
        time.sleep(0.001)
    time.sleep(delay)
    if main(words) != 0:
        sys.exit(f"round {r} failed")
"""
DELAYS = [0.0, 0.1, 0.25]  # between one process's start and the next's, in each round


@pytest.mark.slow
def test_processes_started_together_on_a_fresh_data_folder_all_train(tmp_path):
    n, sync = 3, tmp_path / "sync"
    sync.mkdir()
    folders = [gz_only_copy(tmp_path / f"data{r}") for r in range(len(DELAYS))]
    words = ["train", "--dataset", "mnist", "--subset", "500", "--epochs", "1", "--hidden",
             "32", "--batch-size", "100", "--device", "cpu", "--quiet", "--data-dir"]
    procs = [subprocess.Popen(
        [sys.executable, "-c", STARTER, str(i), str(sync),
         json.dumps([(i * delay, [*words, str(root)]) for delay, root in zip(DELAYS, folders)])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
    try:
        for r in range(len(DELAYS)):
            deadline = time.monotonic() + 300
            while not all((sync / f"ready-{r}-{i}").exists() for i in range(n)):
                if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                    break  # a process failed (the others wait for a start that never comes)
                time.sleep(0.01)
            else:
                (sync / f"go-{r}").touch()
                continue
            break
        else:
            for p in procs:
                p.wait(timeout=300)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()  # SIGKILL: a process that trained once stops only between steps
        results = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0] * n, "\n".join(err for _, err in results)
    for out, err in results:
        assert sum(line.startswith("test_acc=") for line in out.splitlines()) == len(DELAYS)
        assert err.strip() == ""
    for root in folders:
        raw = root / "MNIST" / "raw"
        assert dataset_files(root) == sorted(
            [f"MNIST/raw/{name}" for name in _IDX_SIZES]
            + [f"MNIST/raw/{name}.gz" for name in _IDX_SIZES])  # no temporary file left
        assert all((raw / name).stat().st_size == size for name, size in _IDX_SIZES.items())


@pytest.mark.slow
def test_a_sweep_on_dask_workers_prepares_a_fresh_data_folder_once(gz_only, tmp_path):
    out = tmp_path / "S"
    done = subprocess.run(
        [sys.executable, "-m", "pepita_lab.cli", "sweep", "--dataset", "mnist", "--subset",
         "2000", "--f-scale", "0.01", "0.1", "1", "--lr", "0.01", "0.1", "--epochs", "1",
         "--device", "cpu", "--workers", "2", "--out", str(out), "--data-dir", str(gz_only),
         "--quiet"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((out / "points").glob("*.nc"))) == 6 and (out / "sweep.nc").is_file()
    assert len(dataset_files(gz_only)) == 8


@pytest.mark.parametrize("damage", ["decompressed file truncated", ".gz byte flipped"])
def test_a_damaged_file_is_named_and_not_replaced(gz_only, capsys, monkeypatch, damage):
    # a download would replace the damaged file: point torchvision at a closed port, so that
    # one is noticed (refused at once) rather than made
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    raw = gz_only / "MNIST" / "raw"
    if damage == ".gz byte flipped":
        bad = raw / "train-labels-idx1-ubyte.gz"
        data = bytearray(bad.read_bytes())
        data[len(data) // 2] ^= 0x01
        bad.chmod(0o644)
        bad.write_bytes(bytes(data))
        expected = (f"{bad} exists but fails torchvision's md5 check (md5 ", "expected "
                    "d53e105ee54ea40749a09fcbcd1e9432")
    else:
        bad = raw / "train-images-idx3-ubyte"
        bad.write_bytes(b"\0" * 1000)
        expected = (f"{bad} is damaged: 1000 bytes, expected 47040016",)
    before = {name: (raw / name).read_bytes() for name in dataset_files(raw)}
    code = main(["train", "--dataset", "mnist", "--subset", "500", "--epochs", "1", "--hidden",
                 "32", "--device", "cpu", "--data-dir", str(gz_only), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert all(part in err[0] for part in expected), err[0]
    assert {name: (raw / name).read_bytes() for name in dataset_files(raw)} == before


def test_a_download_is_renamed_into_place_whole(tmp_path, monkeypatch):
    """The download path: torchvision fetches into a temporary folder in the data folder (here
    from a local HTTP server holding the mirror), then the files are renamed into place."""
    import functools
    import http.server
    import threading

    from pepita_lab.data import load_data

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(MIRROR / "MNIST" / "raw"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors",
                            [f"http://127.0.0.1:{server.server_address[1]}/"])
        root = tmp_path / "data"
        data = load_data("mnist", data_dir=root, subset=10)
    finally:
        server.shutdown()
    assert data.x_train.shape == (10, 784) and data.y_test.shape == (10000,)
    assert dataset_files(root) == sorted(
        [f"MNIST/raw/{name}" for name in _IDX_SIZES]
        + [f"MNIST/raw/{name}.gz" for name in _IDX_SIZES])
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == [".mnist.lock"]
