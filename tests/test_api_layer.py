"""The API layer without a server (fast tier): the wire format ↔ the typed request, OpenAI-shaped errors, SSE
framing, the login gate and the throttle, and the /v1 routes on a real app context through Starlette's in-process
test client (no port, no process)."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from aigc_hub.api import Api
from aigc_hub.api.errors import ApiError, api_error
from aigc_hub.api.guards import LoginGate, Throttle
from aigc_hub.api.sse import EventStream, event
from aigc_hub.api.text_routes import COMPLETION_MAX_TOKENS, CHAT_MAX_TOKENS, parse
from aigc_hub.errors import ModelLoadError, UserError
from aigc_hub.services.lanes import QueueFull


def refusal(data: dict, chat: bool = False) -> ApiError:
    with pytest.raises(ApiError) as e:
        parse(data, chat)
    return e.value


def test_a_completions_body_becomes_one_typed_request():
    r = parse({"model": "me/lm", "prompt": ["a", "b"], "n": 2, "seed": 5, "stop": "\n", "top_k": 40,
               "stream": True, "stream_options": {"include_usage": True}, "user": "u1", "logprobs": False}, False)
    assert (r.ref, r.stream, r.include_usage) == ("me/lm", True, True)
    assert [(q.model, q.prompt, q.n, q.seed, q.chat) for q in r.requests] == [("me/lm", "a", 2, 5, False),
                                                                              ("me/lm", "b", 2, 5, False)]
    settings = r.requests[0].settings
    assert settings.stop == ["\n"] and settings.top_k == 40
    assert settings.max_new_tokens == COMPLETION_MAX_TOKENS and settings.temperature == 1.0  # OpenAI's defaults
    chat = parse({"model": "me/chat", "max_completion_tokens": 9, "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}]}, True)
    [asked] = chat.requests
    assert asked.system == "Be brief." and asked.messages == [{"role": "user", "content": "Hi there"}]
    assert asked.chat and asked.settings.max_new_tokens == 9
    hello = [{"role": "user", "content": "hello"}]
    assert parse({"model": "m", "messages": hello}, True).requests[0].settings.max_new_tokens == CHAT_MAX_TOKENS


@pytest.mark.parametrize("body, param, words", [
    ({"prompt": "a"}, "model", "'model' is required"),
    ({"model": "m", "promt": "a"}, "prompt", "'prompt' is required (the body has 'promt': misspelt?)"),
    ({"model": "m", "prompt": "a", "top_k": 5000}, "top_k", "top_k must be between 0 and 1000, got 5000"),
    ({"model": "m", "prompt": "a", "top_p": 0}, "top_p", "top_p must be in (0, 1], got 0"),
    ({"model": "m", "prompt": "a", "max_tokens": 0}, "max_tokens", "max_new_tokens must be between 1 and 2048"),
    ({"model": "m", "prompt": "a", "n": 17}, "n", "n must be between 1 and 16, got 17"),
    ({"model": "m", "prompt": ["a"] * 4, "n": 5}, "n", "4 prompts × n=5 choices; the limit is 16"),
    ({"model": "m", "prompt": "a", "temperature": "hot"}, "temperature", "must be a number, got a string"),
    ({"model": "m", "prompt": "a", "stream_options": {"x": 1}}, "stream_options", "only include_usage"),
    ({"model": "m", "prompt": "a", "frequency_penalty": 0.5}, "frequency_penalty", "not supported"),
    ({"model": "m", "prompt": "a", "tempreature": 1}, "tempreature", "unknown parameter"),
])
def test_a_bad_body_is_refused_naming_its_field(body, param, words):
    e = refusal(body)
    assert e.status == 400 and e.param == param and words in e.message


def test_a_chat_body_refuses_what_the_chat_service_cannot_take():
    for messages, words in [([{"role": "tool", "content": "x"}], "not supported"),
                            ([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}], "before"),
                            ([{"role": "user", "content": [{"type": "image_url"}]}], "only text"),
                            (["hi"], "message 1: expected"), ([], "no messages")]:
        assert words in refusal({"model": "m", "messages": messages}, chat=True).message


def test_errors_take_openais_shape_and_status():
    cases = [(QueueFull("the queue is full"), 429, "queue_full"), (ModelLoadError("gone"), 503, "model_not_loaded"),
             (UserError("bad"), 400, None), (RuntimeError("bug"), 500, "internal_error")]
    for error, status, code in cases:
        e = api_error(error)
        body = e.body()["error"]
        assert (e.status, body["code"]) == (status, code) and set(body) == {"message", "type", "param", "code"}
    assert "internal error" in api_error(RuntimeError("secret detail")).message
    assert "secret detail" not in api_error(RuntimeError("secret detail")).message


def test_sse_frames_each_event_and_closes_the_work_however_it_ends():
    closed = []

    async def events():
        yield event({"text": "你好"})
        yield "data: [DONE]\n\n"

    async def close():
        closed.append(True)

    app = Starlette(routes=[Route("/s", lambda request: EventStream(events(), close))])
    with TestClient(app) as client:
        answer = client.get("/s")
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.text == 'data: {"text": "你好"}\n\ndata: [DONE]\n\n' and closed == [True]


def test_the_login_gate_empties_the_inlined_api_for_anonymous_visitors():
    page = ('<script>window.gradio_config = {};</script><script>window.gradio_api_info = '
            '{"named_endpoints": {"/generate_image": {"model": "me/secret"}}};</script><p>login</p>')

    class FakeGradio(Starlette):  # what the gate reads of Gradio's app: its login tokens and cookie id
        tokens = {"good-token": "me"}
        cookie_id = "abc"

    app = FakeGradio(routes=[Route("/", lambda request: HTMLResponse(page))])
    app.add_middleware(LoginGate, throttle=Throttle())
    with TestClient(app) as client:
        anonymous = client.get("/")
        assert "me/secret" not in anonymous.text and "<p>login</p>" in anonymous.text
        assert int(anonymous.headers["content-length"]) == len(anonymous.content)
        client.cookies.set("access-token-abc", "good-token")
        assert "me/secret" in client.get("/").text


def test_the_throttle_counts_failures_in_a_sliding_window(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("aigc_hub.api.guards.time.monotonic", lambda: now[0])
    throttle = Throttle(failures=3, window_s=60)
    for _ in range(3):
        throttle.check("1.2.3.4")
        throttle.failed("1.2.3.4")
    with pytest.raises(ApiError) as e:
        throttle.check("1.2.3.4")
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "61"
    throttle.check("5.6.7.8")  # another address is not held back
    now[0] += 61
    throttle.check("1.2.3.4")  # the window moved on


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    """The /v1 routes of a real app context (an empty local hub, the starters), served in-process."""
    from aigc_hub.config import AppConfig
    from aigc_hub.services import ModelRegistry
    from aigc_hub.ui.common import AppContext

    env = pytest.MonkeyPatch()
    env.setenv("AIGC_HUB_HOME", str(tmp_path_factory.mktemp("hub")))
    env.setenv("HF_HUB_OFFLINE", "1")
    config = AppConfig.of(preload=False, tabs=["image", "translation"], api_keys=["key-for-tests-1"], engine="inline")
    ctx = AppContext(config, ModelRegistry())
    with TestClient(Starlette(routes=Api(ctx, config.api_keys).routes())) as client:
        yield client
    ctx.close()
    env.undo()


def test_v1_routes_answer_in_process(v1):
    assert v1.get("/v1/models").status_code == 401
    auth = {"Authorization": "Bearer key-for-tests-1"}
    ids = [m["id"] for m in v1.get("/v1/models", headers=auth).json()["data"]]
    assert "aigc-hub/dcgan-mnist" in ids
    images = v1.post("/v1/images/generations", headers=auth, json={"model": "aigc-hub/dcgan-mnist", "prompt": "7",
                                                                    "n": 2, "seed": 3})
    assert images.status_code == 200 and len(images.json()["data"]) == 2
    wrong = v1.post("/v1/completions", headers=auth, json={"model": "aigc-hub/dcgan-mnist", "prompt": "a"})
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_model_task"
    assert v1.put("/v1/completions", headers=auth).status_code == 405
    junk = v1.post("/v1/translations", headers=auth, content=b"{not json")
    assert junk.status_code == 400 and "not valid JSON" in json.loads(junk.text)["error"]["message"]
