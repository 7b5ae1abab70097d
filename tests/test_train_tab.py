"""The Train tab's API endpoints from gradio_client: start, watch, stop, resume, refuse; a running job in the device
view; a killed app restarted mid-job. (The tab in a browser: tests/test_browser.py.)"""

from __future__ import annotations

import time

import pytest
from gradio_client import Client, handle_file

from aigc_hub.errors import UserError
from conftest import wait_for

TEXT = "".join(f"ROMEO: thou art my lord {i}, and the king shall speak now.\n" for i in range(400))


@pytest.mark.slow  # an app and training subprocesses
def test_training_endpoints_start_watch_and_refuse(launched, tmp_path, tmp_hub):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    url, _ = launched(tabs=["train", "text"], preload=False)
    client = Client(url, verbose=False)
    job = client.predict("text", handle_file(str(corpus)), "nano", 12, "me/api-lm", api_name="/start_training")
    states = []

    def done() -> bool:
        states.append(client.predict(job, api_name="/training_status"))
        return states[-1]["state"] in ("finished", "failed")

    wait_for(done)
    assert states[-1]["state"] == "finished" and states[-1]["published"] == "me/api-lm", states[-1]
    assert states[-1]["step"] == 12 and "loss" in states[-1]["figures"]
    assert client.predict(api_name="/list_jobs")[0]["job_id"] == job
    for args, words in [(("poetry", "x", "", 5, "me/x"), "unknown recipe"), (("text", "x", "huge", 5, "me/x"), "preset"),
                        (("text", "x", "", 0, "me/x"), "steps"), (("text", "x", "", 5, "../x"), "owner/name|invalid"),
                        (("text", "../../etc/passwd", "", 5, "me/x"), "neither a file")]:
        with pytest.raises(Exception, match=words):
            client.predict(*args, api_name="/start_training")
    assert [p.name for p in (tmp_hub.parent / "jobs").iterdir()] == [job]  # the refused ones left nothing behind
    with pytest.raises(Exception, match="only a queued or running job"):
        client.predict(job, api_name="/stop_training")
    with pytest.raises(Exception, match="no job"):
        client.predict("20990101-000000-abcdef", api_name="/training_status")


def test_a_file_the_client_did_not_upload_is_refused():
    from aigc_hub.ui.train_tab import _data

    with pytest.raises(UserError, match="uploaded to this server"):
        _data({"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}})
    assert _data("owner/dataset") == "owner/dataset"


@pytest.mark.slow  # an app and training subprocesses
def test_the_models_tab_shows_a_running_job_and_stop_keeps_its_step(launched, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    url, _ = launched(tabs=["train", "models"], preload=False)
    client = Client(url, verbose=False)
    job = client.predict("text", handle_file(str(corpus)), "nano", 5000, "me/long-job", api_name="/start_training")
    wait_for(lambda: client.predict(job, api_name="/training_status")["step"] >= 3)
    _, devices, _ = client.predict(api_name="/list_models")
    assert f"training job {job} (text)" in devices
    assert client.predict(job, api_name="/stop_training")["state"] == "stopping"
    wait_for(lambda: client.predict(job, api_name="/training_status")["state"] == "stopped")
    status = client.predict(job, api_name="/training_status")
    assert 3 <= status["step"] < 5000 and "checkpoint" in status["message"]
    assert client.predict(job, api_name="/resume_training")["state"] in ("queued", "running")
    client.predict(job, api_name="/stop_training")
    wait_for(lambda: client.predict(job, api_name="/training_status")["state"] == "stopped")


@pytest.mark.slow  # two app processes and a training subprocess
def test_a_killed_app_restarted_mid_job_shows_it_interrupted_and_resumes_it(tmp_path, tmp_hub):
    import os
    import signal
    import subprocess
    import sys

    from conftest import REPO, free_port, wait_until_serving

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)

    def app() -> tuple[subprocess.Popen, Client]:
        port, log = free_port(), tmp_path / f"app-{time.monotonic_ns()}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "app.py", "--tabs", "train", "--no-preload", "--port", str(port)],
                                    cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
        return proc, Client(wait_until_serving(proc, f"http://127.0.0.1:{port}/", log), verbose=False)

    first, client = app()
    job = client.predict("text", handle_file(str(corpus)), "nano", 100, "me/survivor", api_name="/start_training")
    wait_for(lambda: client.predict(job, api_name="/training_status")["step"] >= 5)
    first.send_signal(signal.SIGKILL)  # no shutdown of any kind
    first.wait()
    second, client = app()
    try:
        wait_for(lambda: client.predict(job, api_name="/training_status")["state"] == "interrupted")
        client.predict(job, api_name="/resume_training")
        wait_for(lambda: client.predict(job, api_name="/training_status")["state"] in ("finished", "failed"))
        status = client.predict(job, api_name="/training_status")
        assert status["state"] == "finished" and status["step"] == 100, status
    finally:
        second.terminate()
        second.wait(timeout=60)


@pytest.mark.slow  # an app and a training subprocess
def test_a_job_adapts_a_listed_model_with_lora_and_the_text_tab_serves_it_at_once(launched, tmp_path, tmp_hub):
    import json

    from aigc_hub import hub
    from tiny_hub_models import make_chat_llama

    hub.push(make_chat_llama(tmp_path / "base"), "me/chat-base")
    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Say {i}."},
                                                      {"role": "assistant", "content": f"{i}, as you asked."}]}) + "\n"
                             for i in range(60)))
    url, _ = launched(tabs=["train", "text", "models"], preload=False)
    client = Client(url, verbose=False)
    for base, rank, words in [("me/nothing", 8, "unknown model"), ("aigc-hub/dcgan-mnist", 8, "adapts causal-lm"),
                              ("me/chat-base", -1, "LoRA rank")]:
        with pytest.raises(Exception, match=words):
            client.predict("text", handle_file(str(chats)), "", 5, "me/x", False, False, False, base, rank,
                           api_name="/start_training")
    job = client.predict("text", handle_file(str(chats)), "", 6, "me/chat-lora", False, False, False, "me/chat-base",
                         4, api_name="/start_training")
    wait_for(lambda: client.predict(job, api_name="/training_status")["state"] in ("finished", "failed"))
    status = client.predict(job, api_name="/training_status")
    assert status["state"] == "finished" and status["preset"] == "me/chat-base, LoRA rank 4", status
    assert (hub.resolve("me/chat-lora") / "adapter_config.json").is_file()
    table, _, _ = client.predict(api_name="/list_models")
    row = next(r for r in table["data"] if r[0] == "me/chat-lora")
    assert "on me/chat-base" in row[3]
    history, _, seed, _ = client.predict("me/chat-lora", "Say 3.", [], "", 8, 0.0, 50, 1.0, 1.0, "", 1,
                                         api_name="/chat")
    assert history[-1]["role"] == "assistant" and history[-1]["content"]
    import httpx  # the same adapter over /v1, as OpenAI clients ask

    v1 = httpx.post(f"{url}v1/chat/completions", timeout=120, json={
        "model": "me/chat-lora", "messages": [{"role": "user", "content": "Say 3."}], "max_tokens": 8, "seed": 1})
    assert v1.status_code == 200 and v1.json()["model"] == "me/chat-lora", v1.text
    assert "me/chat-lora" in [m["id"] for m in httpx.get(f"{url}v1/models", timeout=60).json()["data"]]


def test_the_preview_shows_what_the_model_learns(tmp_path, tmp_hub):
    import json

    from aigc_hub import hub
    from aigc_hub.config import AppConfig
    from aigc_hub.services import ModelRegistry
    from aigc_hub.ui.common import AppContext
    from aigc_hub.ui.train_tab import data_preview
    from tiny_hub_models import make_chat_llama

    hub.push(make_chat_llama(tmp_path / "base"), "me/chat-base")
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                             {"role": "assistant", "content": "Hello"}]}) + "\n")
    ctx = AppContext(AppConfig.of(engine="inline", preload=False), ModelRegistry())
    shown = data_preview(ctx, "text", "me/chat-base", rows)
    assert "**Hello" in shown and "Hi" in shown and "**Hi" not in shown
    assert data_preview(ctx, "text", None, rows) == ""
    assert "not a model this recipe can start from" in data_preview(ctx, "text", str(tmp_path / "base"), rows)
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"text": "Some text."}) + "\n")
    assert "every character" in data_preview(ctx, "text", "me/chat-base", plain)
    ctx.close()
