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


OUT_OF_RANGE = [("max_new_tokens", 0), ("max_new_tokens", 5000), ("temperature", 3.0), ("top_k", -1),
                ("top_k", 5000), ("top_p", 0.0), ("top_p", 1.5), ("repetition_penalty", 0.0),
                ("repetition_penalty", 11.0), ("seed", -2), ("seed", 2**32)]
TAB_ORDER = ["max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty"]


def test_an_out_of_range_value_gets_the_same_refusal_from_every_front_end(served):
    """The spec (services/params.py) is the one check: the service, the Text tab's endpoint, the CLI and /v1 answer
    an out-of-range value with the same message (the CLI's and /v1's names for a field are the spec's)."""
    from aigc_hub.errors import UserError
    from aigc_hub.services.params import TEXT

    url = served
    tab = Client(url, verbose=False)
    api = openai.OpenAI(base_url=f"{url}v1", api_key="none", max_retries=0)
    service = TextService(ModelRegistry())
    answers = {}
    for name, value in OUT_OF_RANGE:
        with pytest.raises(UserError) as spec:
            TEXT[name].check(value)
        expected = str(spec.value)
        settings = dict(SAMPLING, **({name: value} if name != "seed" else {}))
        with pytest.raises(UserError) as by_service:
            service.generate("me/long-lm", "ROMEO:", SamplingSettings(**settings),
                             seed=value if name == "seed" else SEED)
        with pytest.raises(Exception) as by_tab:
            tab.predict("me/long-lm", "ROMEO:", *settings.values(), "", value if name == "seed" else SEED,
                        api_name="/generate_text")
        proc = run([sys.executable, "-m", "aigc_hub", "generate", "text", "--model", "me/long-lm", "--prompt", "x",
                    f"--{name.replace('_', '-')}={value}", "--device", "cpu"])
        field = {"max_new_tokens": "max_tokens"}.get(name, name)
        with pytest.raises(openai.BadRequestError) as by_api:
            api.completions.create(model="me/long-lm", prompt="x", extra_body={field: value})
        answers[(name, value)] = {"service": str(by_service.value), "tab": str(by_tab.value),
                                  "cli": proc.stderr.strip().removeprefix("error: "),
                                  "/v1": by_api.value.body["message"], "expected": expected}
        assert proc.returncode == 2
    wrong = {case: got for case, got in answers.items() if len(set(got.values())) != 1}
    assert not wrong, wrong
    with pytest.raises(openai.BadRequestError) as too_many:
        api.completions.create(model="me/long-lm", prompt="x", n=17)
    assert too_many.value.body["message"] == "n must be between 1 and 16, got 17"


IMAGE_CASES = [("n", 0), ("n", 65), ("seed", -2), ("seed", 2**32), ("steps", 0), ("steps", 5000),
               ("guidance_scale", 31.0)]  # width and height: /v1 takes a size (a text-to-image test checks it)
TRANSLATION_CASES = [("beams", 0), ("beams", 9), ("n_best", 9), ("n_best", 5)]  # n_best 5 with 4 beams


def test_image_and_translation_values_get_one_refusal_from_every_front_end(launched, tmp_hub, tiny_gan, tiny_mt,
                                                                          tmp_path):
    """The image and translation specs (params.IMAGE, params.TRANSLATION) are the one check too: the service, the
    tab's endpoint, /v1 and (for what it takes) the CLI give one refusal per value. The count's bound is the app's
    max_images (64) in the app and on /v1; the CLI has no such setting, so only its other values are compared."""
    import httpx

    from aigc_hub.errors import UserError
    from aigc_hub.services import ImageService, TranslationService

    hub.push(tiny_gan, "me/gan")
    hub.push(tiny_mt, "me/mt")
    url, _ = launched(image_model="me/gan", translation_model="me/mt", tabs=["image", "translation"],
                      preload=False)
    tab = Client(url, verbose=False)
    (tmp_path / "in.txt").write_text("Hi.\n", encoding="utf-8")
    answers = {}
    for name, value in IMAGE_CASES:
        asked = {"n": 1, "seed": 0, name: value}
        with pytest.raises(UserError) as by_service:
            ImageService(ModelRegistry(), max_images=64).generate("me/gan", asked.pop("n"), **asked)
        asked = {"n": 1, "seed": 0, name: value}
        tab_args = {"num_images" if k == "n" else k: v for k, v in asked.items()}
        with pytest.raises(Exception) as by_tab:
            tab.predict(model="me/gan", label="any", **tab_args, api_name="/generate_image")
        v1 = httpx.post(f"{url}v1/images/generations", json={"model": "me/gan", **asked}, timeout=60)
        got = {"service": str(by_service.value), "tab": str(by_tab.value), "/v1": v1.json()["error"]["message"]}
        if name != "n":
            flag = {"guidance_scale": "guidance"}.get(name, name)
            proc = run([sys.executable, "-m", "aigc_hub", "generate", "image", "--model", "me/gan",
                        f"--{flag}={value}", "--out", str(tmp_path / "x.png")])
            got["cli"] = proc.stderr.strip().removeprefix("error: ")
        answers[(name, value)] = got
    for name, value in TRANSLATION_CASES:
        asked = {"beams": 4, "n_best": 1, name: value}
        with pytest.raises(UserError) as by_service:
            TranslationService(ModelRegistry()).translate("me/mt", "Hi.", "en", "zh", **asked)
        with pytest.raises(Exception) as by_tab:
            tab.predict("me/mt", "Hi.", "en", "zh", asked["beams"], asked["n_best"], api_name="/translate")
        v1 = httpx.post(f"{url}v1/translations", json={"model": "me/mt", "input": "Hi.", "source_language": "en",
                                                       "target_language": "zh", **asked}, timeout=60)
        got = {"service": str(by_service.value), "tab": str(by_tab.value), "/v1": v1.json()["error"]["message"]}
        if name == "beams":
            proc = run([sys.executable, "-m", "aigc_hub", "translate", "--model", "me/mt", "--src", "en", "--tgt",
                        "zh", f"--beams={value}", "--input", str(tmp_path / "in.txt")])
            got["cli"] = proc.stderr.strip().removeprefix("error: ")
        answers[(name, value)] = got
    wrong = {case: got for case, got in answers.items() if len(set(got.values())) != 1}
    assert not wrong, wrong
    assert answers[("n", 65)]["/v1"] == "n must be between 1 and 64, got 65"
    assert answers[("n_best", 5)]["tab"] == "n_best must be at most the beam size (4), got 5"
