"""Train a few steps → push to a temporary local hub → `python app.py` started for real → gradio_client → images."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from gradio_client import Client

from conftest import REPO, free_port, wait_until_serving

pytestmark = pytest.mark.slow  # every test here runs the CLI or an app in a subprocess
from test_training import train


@pytest.fixture
def app_process(tmp_hub):
    procs = []

    def start(*args):
        port = free_port()
        log = open(tmp_hub.parent / f"app-{port}.log", "w")
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *args], cwd=REPO, stdout=log,
                                stderr=subprocess.STDOUT, env={**os.environ, "AIGC_HUB_HOME": str(tmp_hub)})
        procs.append(proc)
        return wait_until_serving(proc, f"http://127.0.0.1:{port}/", tmp_hub.parent / f"app-{port}.log")

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def test_train_push_serve_generate(digits_npz, tmp_path, tmp_hub, app_process):
    train(digits_npz, tmp_path / "run", "--max_train_steps", "4", "--push_to_hub", "--hub_model_id", "me/e2e-gan",
          env={"AIGC_HUB_HOME": str(tmp_hub)})
    url = app_process("--image-model", "me/e2e-gan")
    client = Client(url, verbose=False)
    gallery, seed, files = client.predict("me/e2e-gan", 11, 4, "5", api_name="/generate_image")
    assert seed == 11 and len(gallery) == 4
    table, _, _ = client.predict(api_name="/list_models")
    assert "me/e2e-gan" in [row[0] for row in table["data"]]
