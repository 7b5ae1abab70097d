"""Hostile input on every /v1 route: each case gets an OpenAI-shaped error with the status it deserves, the server log
holds no traceback, and the next good request is served."""

from __future__ import annotations

import json

import httpx
import pytest

from aigc_hub import hub

pytestmark = pytest.mark.slow

GOOD = {
    "completions": {"model": "me/long-lm", "prompt": "a", "max_tokens": 2},
    "chat/completions": {"model": "me/chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
    "images/generations": {"model": "me/tiny-gan", "prompt": "", "n": 1},
    "translations": {"model": "me/tiny-mt", "input": ["I have 3 books."], "source_language": "en",
                     "target_language": "zh", "beams": 1},
}


def raw(data: bytes | str) -> bytes:
    return data if isinstance(data, bytes) else data.encode()


def with_(route: str, **changes) -> bytes:
    body = {**GOOD[route], **changes}
    return json.dumps({k: v for k, v in body.items() if v is not DROP}).encode()


DROP = object()
COMMON = [  # (label, body, status) for every route
    ("malformed JSON", raw("{"), 400),
    ("invalid UTF-8", b'{"model": "\xff\xfe"}', 400),
    ("a list, not an object", raw("[]"), 400),
    ("a string, not an object", raw('"hello"'), 400),
    ("an empty body", b"", 400),
    ("NaN", raw('{"model": NaN}'), 400),
    ("nested too deep for the parser", raw("[" * 100_000 + "]" * 100_000), 400),
    ("an oversized body", raw('{"model": "' + "x" * (9 << 20) + '"}'), 413),
    ("a 5000-digit number", raw('{"model": "me/x", "n": 1' + "0" * 5000 + "}"), 400),
]


def per_route(route: str) -> list[tuple[str, bytes, int]]:
    w = lambda **c: with_(route, **c)  # noqa: E731
    cases = [("an unknown model", w(model="me/nothing"), 404), ("the model as a number", w(model=3), 400),
             ("the model as a list", w(model=["me/long-lm"]), 400), ("an unknown field", w(colour="red"), 400),
             ("a path as the model", w(model="../../etc/passwd"), 404)]
    if route == "completions":
        cases += [("a model of another task", w(model="me/tiny-gan"), 400), ("no prompt", w(prompt=DROP), 400),
                  ("the prompt as a number", w(prompt=5), 400), ("token ids as the prompt", w(prompt=[1, 2]), 400),
                  ("a huge max_tokens", w(max_tokens=10**12), 400), ("max_tokens 0", w(max_tokens=0), 400),
                  ("max_tokens as text", w(max_tokens="10"), 400), ("a huge n", w(n=10**6), 400),
                  ("n 0", w(n=0), 400), ("a negative temperature", w(temperature=-1), 400),
                  ("temperature as text", w(temperature="hot"), 400), ("a 400-digit temperature",
                                                                        w(temperature=10**400), 400), ("top_p 2", w(top_p=2), 400),
                  ("a seed out of range", w(seed=2**70), 400), ("stop as numbers", w(stop=[1, 2]), 400),
                  ("100 stop strings", w(stop=["x"] * 100), 400), ("stream as text", w(stream="yes"), 400),
                  ("logprobs asked for", w(logprobs=5), 400), ("an unknown stream option", w(stream_options={"a": 1}),
                                                                 400),
                  ("a prompt over the limit", w(prompt="x" * 300_000), 400), ("a NUL in the prompt", w(prompt="a\0b"),
                                                                              400),
                  ("a lone surrogate", raw('{"model": "me/long-lm", "prompt": "\\ud800"}'), 400),
                  ("17 prompts", w(prompt=["a"] * 17), 400)]
    if route == "chat/completions":
        cases += [("a model without a chat template", w(model="me/long-lm"), 400),
                  ("messages as text", w(messages="hi"), 400), ("no messages", w(messages=[]), 400),
                  ("a message without a role", w(messages=[{"content": "hi"}]), 400),
                  ("a tool message", w(messages=[{"role": "tool", "content": "x"}]), 400),
                  ("content as a number", w(messages=[{"role": "user", "content": 5}]), 400),
                  ("an image part", w(messages=[{"role": "user", "content": [{"type": "image_url"}]}]), 400),
                  ("the assistant last", w(messages=[{"role": "user", "content": "a"},
                                                     {"role": "assistant", "content": "b"}]), 400),
                  ("a system message late", w(messages=[{"role": "user", "content": "a"},
                                                        {"role": "system", "content": "b"}]), 400),
                  ("201 messages", w(messages=[{"role": "user", "content": "a"}] * 201), 400),
                  ("a huge max_completion_tokens", w(max_tokens=DROP, max_completion_tokens=10**9), 400),
                  ("a huge n", w(n=500), 400), ("tools asked for", w(tools=[{"type": "function"}]), 400),
                  ("a message as a list", w(messages=[["user", "hi"]]), 400)]
    if route == "images/generations":
        cases += [("a model of another task", w(model="me/long-lm"), 400), ("a huge n", w(n=10**6), 400),
                  ("n 0", w(n=0), 400), ("n as text", w(n="4"), 400), ("a size it does not draw", w(size="1024x1024"),
                                                                       400),
                  ("a size that is not one", w(size="big"), 400), ("URLs asked for", w(response_format="url"), 400),
                  ("a label out of range", w(label=99), 400), ("a prompt that is no class", w(prompt="a cat"), 400),
                  ("a prompt and a label", w(prompt="3", label=4), 400), ("a seed below -1", w(seed=-2), 400),
                  ("guidance as text", w(guidance_scale="x"), 400), ("HD quality", w(quality="hd"), 400),
                  ("steps 0", w(steps=0), 400)]
    if route == "translations":
        cases += [("a model of another task", w(model="me/long-lm"), 400), ("input as a number", w(input=5), 400),
                  ("input as numbers", w(input=[1, 2]), 400), ("1001 lines", w(input=["a"] * 1001), 400),
                  ("a line over the limit", w(input=["a" * 3000]), 400), ("no input", w(input=DROP), 400),
                  ("an unknown language", w(source_language="xx"), 400), ("no target", w(target_language=DROP), 400),
                  ("beams 0", w(beams=0), 400), ("beams 100", w(beams=100), 400), ("n_best over beams", w(n_best=3),
                                                                                   400),
                  ("only empty lines", w(input=["", " "]), 400), ("a control character", w(input=["a\x07b"]), 400),
                  ("a newline inside a line", w(input=["a\nb"]), 400), ("the language as a number",
                                                                         w(source_language=1), 400)]
    return [*COMMON, *cases]


@pytest.fixture
def hostile_v1(launched, tmp_hub, tiny_gan, long_lm, tiny_mt, tmp_path):
    from tiny_hub_models import make_chat_llama

    hub.push(tiny_gan, "me/tiny-gan")
    hub.push(long_lm, "me/long-lm")
    hub.push(tiny_mt, "me/tiny-mt")
    hub.push(make_chat_llama(tmp_path / "chat", context=128), "me/chat")
    url, _ = launched(image_model="me/tiny-gan", text_model="me/long-lm", translation_model="me/tiny-mt",
                      preload=False)
    return f"{url}v1/"


@pytest.mark.parametrize("route", list(GOOD))
def test_every_v1_route_refuses_hostile_input_and_keeps_serving(hostile_v1, route, capfd):
    cases = per_route(route)
    assert len(cases) >= 15
    with httpx.Client(base_url=hostile_v1, timeout=120) as http:
        assert http.post(route, json=GOOD[route]).status_code == 200
        problems = []
        for label, body, status in cases:
            answer = http.post(route, content=body, headers={"Content-Type": "application/json"})
            try:
                error = answer.json()["error"]
                shaped = isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)
            except (ValueError, KeyError, TypeError):
                shaped = False
            if answer.status_code != status or not shaped:
                problems.append(f"{label}: {answer.status_code} {answer.text[:200]!r} (expected {status})")
            elif "internal error" in error["message"]:
                problems.append(f"{label}: {error['message']}")
            good = http.post(route, json=GOOD[route])
            if good.status_code != 200:
                problems.append(f"{label}: the next good request got {good.status_code} {good.text[:200]}")
    log = capfd.readouterr().err
    if "Traceback" in log:
        problems.append("the server log holds a traceback:\n" + log[log.index("Traceback"):][:3000])
    assert not problems, "\n".join(problems)


GET_CASES = [  # (label, method, path, status) on the listing routes
    ("an unknown model", "GET", "models/me/nothing", 404), ("a path that climbs", "GET", "models/..%2F..%2Fetc", 404),
    ("an id with a tail", "GET", "models/me/tiny-gan/extra", 404), ("a very long id", "GET", "models/" + "a" * 5000, 404),
    ("unicode", "GET", "models/%E2%98%83/%F0%9F%98%80", 404), ("a NUL", "GET", "models/a%00b", 404),
    ("invalid UTF-8 escapes", "GET", "models/%ff%fe", 404), ("an empty id", "GET", "models/", 404),
    ("POST to the listing", "POST", "models", 405), ("DELETE a model", "DELETE", "models/me/tiny-gan", 404),
    ("PUT a model", "PUT", "models/me/tiny-gan", 404), ("an unknown route", "GET", "engines", 404),
    ("GET a POST route", "GET", "completions", 405), ("a query string flood", "GET", "models?" + "a=1&" * 2000, 200),
    ("a deep unknown route", "GET", "a/" * 500, 404), ("PATCH the chat route", "PATCH", "chat/completions", 405),
]


def test_the_listing_routes_refuse_odd_paths_and_methods(hostile_v1, capfd):
    problems = []
    with httpx.Client(base_url=hostile_v1, timeout=60) as http:
        for label, method, path, status in GET_CASES:
            answer = http.request(method, path)
            shaped = status == 200 or "message" in answer.json().get("error", {})
            if answer.status_code != status or not shaped:
                problems.append(f"{label}: {answer.status_code} {answer.text[:200]!r} (expected {status})")
        assert any(m["id"] == "me/tiny-gan" for m in http.get("models").json()["data"])
    assert "Traceback" not in capfd.readouterr().err
    assert not problems, "\n".join(problems)
