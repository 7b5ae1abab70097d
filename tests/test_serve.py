"""`python app.py` launch options a Gradio user expects: Gradio's own variables, --root-path, --share offline, a port
in use, and `pip install -e .` giving an `aigc-hub` command that works from any folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import REPO, free_port, run, wait_until_serving

pytestmark = pytest.mark.slow  # each test starts the app or pip in a subprocess
LIGHT = ["--tabs", "models", "--no-preload"]


@pytest.fixture
def app_started(tmp_path, tmp_hub):
    procs = []

    def start(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"app-{len(procs)}.log"
        with open(log, "w") as out:  # the child keeps its own copy of the descriptor
            proc = subprocess.Popen([sys.executable, "app.py", *LIGHT, *args], cwd=REPO, stdout=out,
                                    stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        procs.append(proc)
        return proc, log

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def test_gradio_server_port_and_root_path_are_honoured(app_started):
    port = free_port()
    proc, log = app_started("--root-path", "/aigc", env={"GRADIO_SERVER_PORT": str(port)})
    url = wait_until_serving(proc, f"http://127.0.0.1:{port}/", log)
    config = httpx.get(f"{url}config", timeout=10).json()
    assert config["root"].endswith("/aigc"), config["root"]


def test_share_without_internet_says_so_and_serves_locally(app_started):
    port = free_port()
    proc, log = app_started("--share", "--port", str(port))
    wait_until_serving(proc, f"http://127.0.0.1:{port}/", log)
    deadline = time.time() + 120
    while "could not create a public link" not in log.read_text():
        assert time.time() < deadline and proc.poll() is None, log.read_text()[-2000:]
        time.sleep(0.2)
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).status_code == 200


def test_a_port_in_use_names_what_works(tmp_hub):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run([sys.executable, "app.py", *LIGHT, "--port", str(port)], timeout=180)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"port {port}" in proc.stderr and "--port" in proc.stderr and "Traceback" not in proc.stderr


def test_pip_install_editable_gives_a_command_that_works_from_any_folder(tmp_path, tmp_hub):
    import site
    import sysconfig

    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    # The new environment sees this one's packages (a .pth line), so only AIGC Hub itself is installed.
    purelib = sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)})
    (Path(purelib) / "parent-env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    pip = run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "-e", str(REPO)], timeout=600)
    assert pip.returncode == 0, pip.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    listed = run([str(venv / "bin" / "aigc-hub"), "list"], cwd=elsewhere, env={"HF_HUB_OFFLINE": "1"})
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "aigc-hub/dcgan-mnist" in listed.stdout, "the starters are found from any working folder"
