"""Remote OpenAI-compatible backends: a second instance of this app on another loopback port plays the serving cluster
(a vLLM, TGI or Ollama server); the first lists its models as remote entries and serves them through the Text tab,
the CLI and its own /v1, with streaming and Stop."""

from __future__ import annotations

import sys

import httpx
import pytest
from gradio_client import Client

from aigc_hub import hub
from aigc_hub.errors import ModelLoadError, UserError
from aigc_hub.added_models import add_remote as add
from aigc_hub.services import ModelRegistry, SamplingSettings, TextService
from conftest import run, wait_for
from tiny_hub_models import make_chat_llama

pytest.importorskip("openai")
SETTINGS = SamplingSettings(16, 0.9, 0, 1.0, 1.0)




@pytest.fixture
def cluster(launched, tmp_hub, long_lm, tmp_path):
    """The 'server elsewhere' (an app with a text and a chat model), and remote entries for its models here."""
    hub.push(long_lm, "me/long-lm")
    hub.push(make_chat_llama(tmp_path / "chat", context=128), "me/chat")
    far_url, far = launched(text_model="me/long-lm", tabs=["text"], extra_models=["me/chat"], preload=False)
    add("cluster/long-lm", f"{far_url}v1", "me/long-lm", chat=False)
    add("cluster/chat", f"{far_url}v1", "me/chat")
    return far_url, far


def test_a_remote_model_streams_the_servers_own_text(cluster):
    far_url, _ = cluster
    service = TextService(ModelRegistry())
    here = service.stream("cluster/long-lm", "ROMEO:", SETTINGS, seed=9)
    pieces = list(here.chunks)
    direct, _ = service.generate("me/long-lm", "ROMEO:", SETTINGS, seed=9)  # the same model, loaded here
    assert "".join(pieces) == direct and len(pieces) > 1 and here.tokens == 16 and here.prompt_tokens == 6
    assert not service.has_chat("cluster/long-lm") and service.has_chat("cluster/chat")
    loaded = service.registry.get("cluster/long-lm")
    assert loaded.device == f"remote:{far_url.split('/')[2]}" and "served there" in loaded.describe()
    messages = [{"role": "user", "content": "Hello!"}]
    answer = "".join(service.chat("cluster/chat", messages, SETTINGS, seed=2, system="Be brief.").chunks)
    assert answer == "".join(service.chat("me/chat", messages, SETTINGS, seed=2, system="Be brief.").chunks)


def test_stop_closes_the_connection_and_ends_the_remote_generation(cluster):
    _, far = cluster
    stream = TextService(ModelRegistry()).stream("cluster/long-lm", "x", SamplingSettings(2000, 1.0, 0, 1.0, 1.0),
                                                 seed=0)
    for i, _ in enumerate(stream.chunks):
        if i == 2:
            stream.stop()
    wait_for(lambda: not far.aigc_context.lanes.busy())  # the far server's lane is free: its generation ended
    assert stream.tokens < 2000


def test_the_text_tab_the_cli_and_v1_serve_a_remote_model(cluster, launched):
    url, _ = launched(text_model="cluster/long-lm", tabs=["text"], preload=False)
    text, seed, notice = Client(url, verbose=False).predict("cluster/long-lm", "ROMEO:", 16, 0.9, 0, 1.0, 1.0, "", 9,
                                                            api_name="/generate_text")
    expected, _ = TextService(ModelRegistry()).generate("me/long-lm", "ROMEO:", SETTINGS, seed=9)
    assert (text, seed, notice) == (expected, 9, "")
    cli = run([sys.executable, "-m", "aigc_hub", "generate", "text", "--model", "cluster/long-lm", "--prompt",
               "ROMEO:", "--max-new-tokens", "16", "--temperature", "0.9", "--top-k", "0", "--top-p", "1",
               "--seed", "9"])
    assert cli.returncode == 0 and cli.stdout.rstrip("\n") == "ROMEO:" + expected, cli.stderr[-2000:]  # the prompt, then its continuation
    out = httpx.post(f"{url}v1/chat/completions", json={"model": "cluster/chat", "seed": 2, "max_tokens": 16,
                                                        "messages": [{"role": "user", "content": "Hello!"}]},
                     timeout=120)
    assert out.status_code == 200 and out.json()["usage"]["completion_tokens"] == 16, out.text


def test_a_server_that_cannot_be_reached_or_lacks_the_model_is_a_clear_load_error(tmp_hub, cluster):
    from conftest import free_port

    far_url, _ = cluster
    add("cluster/gone", f"http://127.0.0.1:{free_port()}/v1", "me/long-lm")
    add("cluster/missing", f"{far_url}v1", "me/not-there")
    registry = ModelRegistry()
    with pytest.raises(ModelLoadError, match="cannot be reached"):
        registry.get("cluster/gone")
    with pytest.raises(ModelLoadError, match="does not serve 'me/not-there'"):
        registry.get("cluster/missing")
    answer = httpx.post(f"{far_url}v1/completions", json={"model": "cluster/gone", "prompt": "a"}, timeout=60)
    assert answer.status_code == 503 and "cannot be reached" in answer.json()["error"]["message"]
    for bad in [("ftp://x/v1", "m"), ("http:///v1", "m"), ("http://x/v1?a=1", "m"), ("http://x/v1", "two words")]:
        with pytest.raises(UserError):
            add("cluster/bad", *bad)
    with pytest.raises(UserError, match="environment variable"):
        add("cluster/bad", "http://x/v1", "m", api_key_env="$(rm -rf /)")
