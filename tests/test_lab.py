"""The README's first command: `make lab` starts JupyterLab serving the notebooks, on localhost,
to whoever has the token it prints (a new random one each time, or `TOKEN=...`), and to nobody
else: a request without it gets the login page."""

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


URL = re.compile(r"^\s+(http://127\.0\.0\.1:(\d+))/lab\?token=(\S+)$", re.M)


@dataclasses.dataclass
class Lab:
    url: str  # http://127.0.0.1:<port>
    token: str
    printed: str  # what `make lab` printed before Jupyter's own log

    def open(self, path: str, token: bool = True):
        """GET `path` as a client that gives the token (in its header) or does not; the
        response, redirects not followed (so the login page's redirect is seen)."""
        request = urllib.request.Request(f"{self.url}{path}", headers={
            "Authorization": f"token {self.token}"} if token else {})
        opener = urllib.request.build_opener(NoRedirect)
        try:
            return opener.open(request, timeout=10)
        except urllib.error.HTTPError as err:  # 3xx, 4xx: the answer itself
            return err


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@contextlib.contextmanager
def running_lab(env: dict, *make_args: str):
    """`make lab` (the README's first command) on a free port with `env`; yields a `Lab` (its
    URL and the token it printed) once JupyterLab answers, and stops it (its whole process
    group) at the end."""
    port = free_port()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(["make", "-s", "lab", f"PORT={port}", "LAB_ARGS=--no-browser",
                                 *make_args], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            deadline, lab = time.monotonic() + 300, None
            while True:
                assert proc.poll() is None, "make lab exited"
                assert time.monotonic() < deadline, "JupyterLab did not answer"
                out.seek(0)
                printed = out.read()
                if lab is None and (found := URL.search(printed)):
                    assert int(found.group(2)) == port, printed
                    lab = Lab(found.group(1), found.group(3), printed)
                if lab is not None:
                    try:
                        if lab.open("/api/status").status == 200:
                            break
                    except OSError:
                        pass
                time.sleep(0.5)
            yield lab
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


def lab_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TOKEN", "JUPYTER_TOKEN")}
    return {**env, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
            "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}  # no password of the user's


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lab_serves_the_notebooks_to_whoever_has_its_token(tmp_path):
    with running_lab(lab_env(tmp_path)) as lab:
        assert "open JupyterLab at this URL" in lab.printed and len(lab.token) >= 32
        with lab.open("/api/contents") as r:
            listing = json.load(r)
        names = {item["name"] for item in listing["content"]}
        assert "00_quickstart.ipynb" in names
        assert {p.name for p in (ROOT / "notebooks").glob("*.ipynb")} <= names
        with lab.open("/api/kernelspecs") as r:
            assert "python3" in json.load(r)["kernelspecs"]
        # the printed URL opens the lab (the token in the URL, as a person's browser sends it)
        with urllib.request.urlopen(f"{lab.url}/lab?token={lab.token}", timeout=10) as r:
            assert r.status == 200 and "JupyterLab" in r.read().decode()
        # without the token: the login page, never a notebook or the files
        for path in ("/lab", "/lab/tree/00_quickstart.ipynb", "/files/00_quickstart.ipynb"):
            answer = lab.open(path, token=False)
            assert answer.status == 302, (path, answer.status)
            assert answer.headers["Location"].startswith("/login"), answer.headers["Location"]
        assert lab.open("/files/00_quickstart.ipynb").status == 200
        login = urllib.request.urlopen(f"{lab.url}/login", timeout=10).read().decode()
        assert 'name="password"' in login and "00_quickstart" not in login
        for path in ("/api/contents", "/api/kernels", "/api/sessions"):
            assert lab.open(path, token=False).status == 403, path
        assert lab.open("/api/contents", token=True).status == 200
        wrong = Lab(lab.url, lab.token[::-1], "")
        assert wrong.open("/api/contents").status == 403


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lab_takes_the_token_given_and_a_new_one_each_time(tmp_path):
    with running_lab(lab_env(tmp_path), "TOKEN=chosen-token-1234") as lab:
        assert lab.token == "chosen-token-1234"
        assert lab.open("/api/contents").status == 200
        assert lab.open("/api/contents", token=False).status == 403
        first = lab
    with running_lab(lab_env(tmp_path)) as lab:
        assert lab.token != first.token
        with running_lab(lab_env(tmp_path)) as other:
            assert other.token != lab.token


def test_a_local_sweep_clusters_dashboard_listens_on_localhost_unless_asked(monkeypatch):
    pytest.importorskip("dask.distributed")
    import psutil

    from pepita_lab.sweep.engine import Engine

    def listening(engine) -> set[str]:
        port = urllib.parse.urlparse(engine.dashboard).port
        return {c.laddr.ip for c in psutil.net_connections("tcp")
                if c.status == "LISTEN" and c.laddr.port == port}

    monkeypatch.delenv("PEPITA_LAB_DASHBOARD", raising=False)
    engine = Engine(workers=1)
    try:
        assert urllib.parse.urlparse(engine.dashboard).hostname == "127.0.0.1"
        assert listening(engine) == {"127.0.0.1"}
    finally:
        engine.close()
    monkeypatch.setenv("PEPITA_LAB_DASHBOARD", ":0")  # asked for: every interface
    engine = Engine(workers=1)
    try:
        assert listening(engine) & {"0.0.0.0", "::"}
    finally:
        engine.close()
