"""One seeded text request with a stop string gives byte-identical text through every front end: the Text tab's
endpoint, the CLI, /v1/completions (streamed and not), and for a chat model the chat endpoint and
/v1/chat/completions. The stop string is cut by the text service, so none of them decides it on its own."""

from __future__ import annotations

import sys

import pytest
from gradio_client import Client

from aigc_hub import hub
from aigc_hub.services import ModelRegistry, SamplingSettings, TextService
from conftest import run
from tiny_hub_models import make_chat_llama

openai = pytest.importorskip("openai")
SAMPLING = dict(max_new_tokens=40, temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.0)
SEED = 7


def _stop_and_cut(free: str) -> tuple[str, str]:
    stop = free[12:14]  # a string that comes after some text
    return stop, free[:free.index(stop)]


@pytest.fixture
def served(launched, long_lm, tmp_path):
    hub.push(long_lm, "me/long-lm")
    hub.push(make_chat_llama(tmp_path / "chat", context=128), "me/chat")
    url, _ = launched(text_model="me/long-lm", tabs=["text"], extra_models=["me/chat"], preload=False)
    return url


def test_a_stop_string_is_cut_the_same_way_by_every_front_end(served):
    url = served
    service = TextService(ModelRegistry())
    free, _ = service.generate("me/long-lm", "ROMEO:", SamplingSettings(**SAMPLING), seed=SEED)
    stop, expected = _stop_and_cut(free)
    assert stop not in expected and expected

    tab, seed, _ = Client(url, verbose=False).predict("me/long-lm", "ROMEO:", *SAMPLING.values(), stop, SEED,
                                                      api_name="/generate_text")
    proc = run([sys.executable, "-m", "aigc_hub", "generate", "text", "--model", "me/long-lm", "--prompt", "ROMEO:",
                "--max-new-tokens", "40", "--temperature", "0.8", "--top-k", "50", "--top-p", "0.95",
                "--stop", stop, "--seed", str(SEED), "--device", "cpu"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    cli = proc.stdout[len("ROMEO:"):-1]
    api = openai.OpenAI(base_url=f"{url}v1", api_key="none")
    body = dict(model="me/long-lm", prompt="ROMEO:", max_tokens=40, temperature=0.8, top_p=0.95, seed=SEED,
                stop=[stop], extra_body={"top_k": 50, "repetition_penalty": 1.0})
    whole = api.completions.create(**body).choices[0]
    streamed = "".join(ch.choices[0].text for ch in api.completions.create(**body, stream=True) if ch.choices)
    assert {"tab": tab, "cli": cli, "/v1": whole.text, "/v1 streamed": streamed} == dict.fromkeys(
        ["tab", "cli", "/v1", "/v1 streamed"], expected)
    assert whole.finish_reason == "stop" and seed == SEED


def test_a_chat_stop_string_is_cut_the_same_way_by_the_chat_endpoint_and_v1(served):
    url = served
    service = TextService(ModelRegistry())
    turn = [{"role": "user", "content": "Hello!"}]
    free = "".join(service.chat("me/chat", turn, SamplingSettings(**SAMPLING), seed=SEED).chunks)
    stop, expected = _stop_and_cut(free)
    history, _, _, _ = Client(url, verbose=False).predict("me/chat", "Hello!", [], "", *SAMPLING.values(), stop,
                                                          SEED, api_name="/chat")
    api = openai.OpenAI(base_url=f"{url}v1", api_key="none")
    body = dict(model="me/chat", messages=turn, max_tokens=40, temperature=0.8, top_p=0.95, seed=SEED, stop=stop,
                extra_body={"top_k": 50, "repetition_penalty": 1.0})
    whole = api.chat.completions.create(**body).choices[0]
    streamed = "".join(ch.choices[0].delta.content or "" for ch in api.chat.completions.create(**body, stream=True)
                       if ch.choices)
    answer = history[-1]["content"]
    answer = answer if isinstance(answer, str) else "".join(part.get("text", "") for part in answer)
    assert [answer, whole.message.content, streamed] == [expected] * 3
    assert whole.finish_reason == "stop"
