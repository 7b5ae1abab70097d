"""The OpenAI-compatible /v1 routes, called with the official `openai` client against the running app (the same port
as the Gradio app): models, completions, chat with and without streaming, images decoded to PNGs, translations, API
keys, a full queue, a client that goes away."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import threading

import httpx
import numpy as np
import pytest
from PIL import Image

from aigc_hub import hub
from aigc_hub.services import ImageService, ModelRegistry, SamplingSettings, TextService
from tiny_hub_models import make_chat_llama
from conftest import wait_for

openai = pytest.importorskip("openai")
CHAT = "TinyLlama/tiny-chat"


@pytest.fixture(scope="session")
def chat_llama(tmp_path_factory):
    return make_chat_llama(tmp_path_factory.mktemp("chat") / "tiny-chat", context=128)


@pytest.fixture
def app(launched, hf_cache, chat_llama, tiny_gan, long_lm, tiny_mt):
    hf_cache(CHAT, chat_llama)
    hub.push(tiny_gan, "me/tiny-gan")
    hub.push(long_lm, "me/long-lm")
    hub.push(tiny_mt, "me/tiny-mt")
    url, demo = launched(image_model="me/tiny-gan", text_model="me/long-lm", translation_model="me/tiny-mt",
                         extra_models=[CHAT], preload=False)
    return url, demo


def client(url: str, key: str = "unused") -> "openai.OpenAI":
    return openai.OpenAI(base_url=f"{url}v1", api_key=key, max_retries=0, timeout=120)




def test_models_lists_every_hub_model_with_its_task(app):
    url, _ = app
    c = client(url)
    tasks = {m.id: m.task for m in c.models.list()}
    assert tasks["me/tiny-gan"] == "image" and tasks["me/long-lm"] == "text" and tasks[CHAT] == "text"
    assert tasks["me/tiny-mt"] == "translation"
    assert c.models.retrieve("me/tiny-gan").owned_by == "me"
    with pytest.raises(openai.NotFoundError):
        c.models.retrieve("me/nothing")


def test_completions_are_the_services_text_seeded_and_counted(app):
    url, _ = app
    c = client(url)
    out = c.completions.create(model="me/long-lm", prompt="ROMEO:", max_tokens=12, seed=5, n=2, temperature=0.9)
    assert [ch.index for ch in out.choices] == [0, 1]
    assert all(ch.finish_reason == "length" for ch in out.choices)
    assert out.usage.completion_tokens == 24 and out.usage.total_tokens == out.usage.prompt_tokens + 24
    alone, _ = TextService(ModelRegistry()).generate(
        "me/long-lm", "ROMEO:", SamplingSettings(12, 0.9, 0, 1.0, 1.0), seed=5)
    second, _ = TextService(ModelRegistry()).generate(
        "me/long-lm", "ROMEO:", SamplingSettings(12, 0.9, 0, 1.0, 1.0), seed=6)
    assert [out.choices[0].text, out.choices[1].text] == [alone, second]  # choice i: seed + i
    again = c.completions.create(model="me/long-lm", prompt="ROMEO:", max_tokens=12, seed=5, temperature=0.9)
    assert again.choices[0].text == alone


def test_a_streamed_completion_is_the_same_text_in_pieces_with_usage(app):
    # Tokens that pile up while the reader lags come as one piece (test_text.py checks one piece per token when it
    # keeps up), so only "more than one piece" holds on a busy machine; 100 tokens make one piece very unlikely.
    url, _ = app
    c = client(url)
    whole = c.completions.create(model="me/long-lm", prompt="To be", max_tokens=100, seed=3).choices[0].text
    chunks = list(c.completions.create(model="me/long-lm", prompt="To be", max_tokens=100, seed=3, stream=True,
                                       stream_options={"include_usage": True}))
    texts = [ch.choices[0].text for ch in chunks if ch.choices]
    assert "".join(texts) == whole and len([t for t in texts if t]) >= 2
    assert chunks[-1].usage.completion_tokens == 100 and chunks[-2].choices[0].finish_reason == "length"


def test_a_stop_string_ends_the_choice_and_is_left_out(app):
    url, _ = app
    c = client(url)
    free = c.completions.create(model="me/long-lm", prompt="a", max_tokens=40, seed=1).choices[0].text
    stop = free[10:12]  # a string that comes, after some text
    cut = free[:free.index(stop)]
    out = c.completions.create(model="me/long-lm", prompt="a", max_tokens=40, seed=1, stop=[stop])
    assert out.choices[0].text == cut and out.choices[0].finish_reason == "stop"
    streamed = c.completions.create(model="me/long-lm", prompt="a", max_tokens=40, seed=1, stop=stop, stream=True)
    assert "".join(ch.choices[0].text for ch in streamed if ch.choices) == cut


def test_chat_with_and_without_streaming_uses_the_models_template(app):
    url, _ = app
    c = client(url)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]
    out = c.chat.completions.create(model=CHAT, messages=messages, max_tokens=10, seed=7)
    answer = out.choices[0].message.content
    assert out.choices[0].message.role == "assistant" and answer and out.object == "chat.completion"
    expected = TextService(ModelRegistry()).chat(CHAT, messages[1:], SamplingSettings(10, 1.0, 0, 1.0, 1.0), seed=7,
                                                 system="Be brief.")
    assert answer == "".join(expected.chunks) and out.usage.prompt_tokens == expected.prompt_tokens
    chunks = list(c.chat.completions.create(model=CHAT, messages=messages, max_tokens=10, seed=7, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == answer
    with pytest.raises(openai.BadRequestError, match="no chat template"):
        c.chat.completions.create(model="me/long-lm", messages=messages[1:])


def test_images_come_as_pngs_the_service_draws(app):
    url, _ = app
    out = client(url).images.generate(model="me/tiny-gan", prompt="3", n=3, extra_body={"seed": 11})
    pngs = [Image.open(io.BytesIO(base64.b64decode(d.b64_json))) for d in out.data]
    assert [p.format for p in pngs] == ["PNG"] * 3 and pngs[0].size == (32, 32)
    expected = ImageService(ModelRegistry()).generate("me/tiny-gan", 3, 11, label=3).images
    assert np.array_equal(np.stack([np.array(p).reshape(expected.shape[1:]) for p in pngs]), expected)
    with pytest.raises(openai.BadRequestError, match="32x32"):
        client(url).images.generate(model="me/tiny-gan", prompt="", size="1024x1024")


def test_translations_keep_the_order_of_the_lines(app):
    url, _ = app
    lines = ["I have 3 books.", "", "I have 12 books."]
    out = httpx.post(f"{url}v1/translations", json={"model": "me/tiny-mt", "input": lines, "source_language": "en",
                                                     "target_language": "zh", "beams": 2, "n_best": 2}, timeout=120)
    assert out.status_code == 200, out.text
    data = out.json()["data"]
    assert [d["index"] for d in data] == [0, 1, 2] and data[1]["text"] == ""
    assert len(data[0]["alternatives"]) == 2 and data[0]["text"] == data[0]["alternatives"][0]["text"]


def test_a_client_that_goes_away_stops_its_generation(app):
    url, demo = app
    ctx = demo.aigc_context
    service = ctx.service("text")
    started, real = [], service.run

    def recorded(*args, **kwargs):  # the real streams, kept to read their token count afterwards
        streams = real(*args, **kwargs)
        started.extend(streams)
        return streams

    service.run = recorded
    with client(url).completions.create(model="me/long-lm", prompt="x", max_tokens=2048, seed=0,
                                        stream=True) as events:
        for i, _ in enumerate(events):
            if i == 3:
                break
    wait_for(lambda: not ctx.lanes.busy() and started and started[0].stop_event.is_set())
    assert started[0].tokens < 2048  # the lane is given back once the computation has ended


def test_api_keys_protect_v1_and_the_gradio_app(launched, tiny_gan):
    from gradio_client import Client
    from gradio_client.exceptions import AuthenticationError

    hub.push(tiny_gan, "me/tiny-gan")
    url, _ = launched(image_model="me/tiny-gan", api_keys=["key-one-123", "key-two-456"], tabs=["image"])
    with pytest.raises(openai.AuthenticationError):
        client(url, "wrong-key-000").models.list()
    anonymous = httpx.get(f"{url}v1/models", timeout=30)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"
    assert any(m.id == "me/tiny-gan" for m in client(url, "key-two-456").models.list())
    with pytest.raises(AuthenticationError):
        Client(url, verbose=False)  # the Gradio API asks for a login now
    gradio = Client(url, auth=("anyone", "key-one-123"), verbose=False)
    assert gradio.predict("me/tiny-gan", 1, 2, "any", 25, "dpm-solver", api_name="/generate_image")


def test_a_full_queue_is_a_429(launched, long_lm):
    hub.push(long_lm, "me/long-lm")
    url, demo = launched(text_model="me/long-lm", tabs=["text"], lane_concurrency=1, max_batch=1, queue_size=1,
                         preload=False)
    c = client(url)
    holding = [c.completions.create(model="me/long-lm", prompt="x", max_tokens=2048, stream=True)]
    next(iter(holding[0]))  # one in flight

    def waiting() -> None:
        try:
            list(c.completions.create(model="me/long-lm", prompt="y", max_tokens=1))
        except openai.APIError:
            pass

    threading.Thread(target=waiting, daemon=True).start()
    wait_for(lambda: demo.aigc_context.lanes.busy().get("cpu", (0, 0))[1] == 1)  # one waiting: the bound
    with pytest.raises(openai.RateLimitError, match="full"):
        c.completions.create(model="me/long-lm", prompt="z", max_tokens=1)
    holding[0].close()


def test_the_readmes_api_examples_work_against_the_starters(launched, tmp_path, monkeypatch, capsys):
    from conftest import REPO

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("## API: OpenAI-compatible")
    section = readme[start:readme.index("\n## ", start)]
    commands = [line for block in re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)
                for line in block.splitlines() if line.startswith("curl ")]
    assert len(commands) >= 5
    url, _ = launched(preload=False)  # the starters are the default models
    port = url.rstrip("/").rsplit(":", 1)[1]
    for command in commands:
        done = subprocess.run(["bash", "-c", command.replace("127.0.0.1:7860", f"127.0.0.1:{port}")],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{command}\n{done.stdout[-1000:]}\n{done.stderr[-1000:]}"
        if '"stream": true' in command:
            assert done.stdout.rstrip().endswith("data: [DONE]") and done.stdout.count("data: ") > 5
        else:
            assert "error" not in json.loads(done.stdout), done.stdout[:500]
    python = re.findall(r"```python\n(.*?)\n```", section, flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(python.replace("127.0.0.1:7860", f"127.0.0.1:{port}"), names)
    assert Image.open(tmp_path / "seven.png").size == (32, 32) and names["lines"][0]["text"]
    assert capsys.readouterr().out.strip()  # the completion, then the streamed one
