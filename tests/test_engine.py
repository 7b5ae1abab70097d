"""Model work in an engine process (`engine: process`): the typed requests cross the pipe and come back as the same
text, images and translations as in one process (the seed rule included); Stop and errors cross it; an engine that
is killed fails only its requests, with a clear message, and the next request is served by a fresh one."""

from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from aigc_hub import hub
from aigc_hub.config import AppConfig
from aigc_hub.core import AppContext
from aigc_hub.engine import EngineStopped
from aigc_hub.engine.client import CRASH_LIMIT
from aigc_hub.errors import UserError
from aigc_hub.services import (ImageRequest, ModelRegistry, SamplingSettings, TextRequest, TranslationRequest)
from conftest import wait_for

pytestmark = pytest.mark.slow  # each test starts engine processes
SETTINGS = SamplingSettings(max_new_tokens=40, temperature=0.8, top_k=50, top_p=0.95, stop=["e"])


@pytest.fixture
def contexts(tmp_hub):
    made = []

    def make(**settings) -> AppContext:
        ctx = AppContext(AppConfig.of(**settings), ModelRegistry())
        made.append(ctx)
        return ctx

    yield make(engine="process"), make()
    for ctx in made:
        ctx.close()


def _texts(ctx: AppContext, request: TextRequest) -> list[tuple[str, int, str]]:
    streams = ctx.service("text").run(request)
    return [("".join(s.chunks), s.seed, s.finish_reason) for s in streams]


def test_text_crosses_the_boundary_unchanged(contexts, long_lm):
    engine, inline = contexts
    hub.push(long_lm, "me/lm")
    request = dict(prompt="ROMEO:", settings=SETTINGS, seed=11, n=3)
    apart = _texts(engine, TextRequest("me/lm", **request))
    assert apart == _texts(inline, TextRequest("me/lm", **request))
    assert [seed for _, seed, _ in apart] == [11, 12, 13]  # choice i: seed + i, resolved in the engine
    assert all("e" not in text for text, _, _ in apart) and "stop" in {reason for _, _, reason in apart}
    assert [m.ref for m in engine.registry.loaded()] == ["me/lm"]
    assert engine.registry.unload("me/lm") and engine.registry.loaded() == []


def test_a_refusal_crosses_the_boundary_as_the_same_error(contexts, long_lm):
    engine, inline = contexts
    hub.push(long_lm, "me/lm")
    for bad in [dict(settings=SamplingSettings(top_k=5000)), dict(seed=-2), dict(n=17)]:
        answers = []
        for ctx in (engine, inline):
            with pytest.raises(UserError) as refused:
                ctx.service("text").run(TextRequest("me/lm", prompt="x", **bad))
            answers.append((type(refused.value).__name__, str(refused.value)))
        assert answers[0] == answers[1]


def test_stop_crosses_the_boundary_and_ends_the_generation(contexts, long_lm):
    engine, _ = contexts
    hub.push(long_lm, "me/lm")
    event = threading.Event()
    stream, = engine.service("text").run(TextRequest("me/lm", prompt="A", settings=SamplingSettings(
        max_new_tokens=2000), seed=1), [event])
    pieces = iter(stream.chunks)
    next(pieces)
    event.set()  # as the tab's Stop does: only the flag
    rest = list(pieces)
    assert stream.tokens < 2000 and stream.finish_reason == "stop", (stream.tokens, len(rest))
    again, = engine.service("text").run(TextRequest("me/lm", prompt="A", settings=SamplingSettings(
        max_new_tokens=5), seed=1))
    assert "".join(again.chunks) and again.tokens == 5


def test_images_and_translations_cross_the_boundary_unchanged(contexts, tiny_gan, tiny_mt):
    engine, inline = contexts
    hub.push(tiny_gan, "me/gan")
    hub.push(tiny_mt, "me/mt")
    progress: list[tuple[int, int]] = []
    apart = engine.service("image").run(ImageRequest("me/gan", 6, seed=5), lambda d, t: progress.append((d, t)))
    here = inline.service("image").run(ImageRequest("me/gan", 6, seed=5))
    assert np.array_equal(apart.images, here.images) and apart.seeds == here.seeds == list(range(5, 11))
    assert apart.png(0) == here.png(0) and progress[-1] == (6, 6)
    frames, gif = engine.service("image").interpolate("me/gan", 1, 2, 4)
    assert np.array_equal(frames, inline.service("image").interpolate("me/gan", 1, 2, 4)[0]) and gif
    asked = TranslationRequest("me/mt", "Hello.\n\nHow are you?", "en", "zh", 4, 2)
    assert engine.service("translation").run(asked) == inline.service("translation").run(asked)


def test_a_killed_engine_fails_its_request_and_the_next_one_is_served(contexts, long_lm):
    engine, _ = contexts
    hub.push(long_lm, "me/lm")
    before = sorted(p.name for p in hub.hub_home().rglob("*"))
    stream, = engine.service("text").run(TextRequest("me/lm", prompt="A", settings=SamplingSettings(
        max_new_tokens=2000), seed=1))
    pieces = iter(stream.chunks)
    next(pieces)
    [process] = engine.registry.engines()
    os.kill(process.pid, signal.SIGKILL)  # (how soon it ends: benchmarks/bench_engine.py)
    with pytest.raises(EngineStopped, match="engine stopped .exit code -9. while it worked on this request"):
        list(pieces)
    text, seed, _ = _texts(engine, TextRequest("me/lm", prompt="A", settings=SamplingSettings(max_new_tokens=5),
                                               seed=1))[0]
    assert text and process.restarts == 1 and process.alive
    assert sorted(p.name for p in hub.hub_home().rglob("*")) == before  # nothing in the hub changed


def test_a_model_that_keeps_killing_its_engine_is_refused(contexts, long_lm):
    engine, _ = contexts
    hub.push(long_lm, "me/lm")
    service = engine.service("text")
    for _ in range(CRASH_LIMIT):
        stream, = service.run(TextRequest("me/lm", prompt="A", settings=SamplingSettings(max_new_tokens=2000)))
        next(iter(stream.chunks))
        [process] = engine.registry.engines()
        os.kill(process.pid, signal.SIGKILL)
        with pytest.raises(EngineStopped):
            list(stream.chunks)
    wait_for(lambda: not process.alive)
    with pytest.raises(EngineStopped, match=f"stopped the cpu engine {CRASH_LIMIT} times"):
        service.run(TextRequest("me/lm", prompt="A"))


def test_the_app_serves_its_tabs_v1_and_models_tab_from_engines(launched, long_lm, tiny_gan):
    """The same app with `engine: process`: the Text tab's endpoint and /v1 (streamed) give the in-process text,
    the Image tab draws, the Models tab lists what the engine loaded and shows the engine."""
    import openai
    from gradio_client import Client

    hub.push(long_lm, "me/lm")
    hub.push(tiny_gan, "me/gan")
    url, demo = launched(engine="process", text_model="me/lm", image_model="me/gan", tabs=["image", "text", "models"])
    sampling = dict(max_new_tokens=30, temperature=0.8, top_k=50, top_p=0.95, repetition_penalty=1.0)
    expected = _texts(AppContext(AppConfig.of(), ModelRegistry()), TextRequest(
        "me/lm", prompt="ROMEO:", settings=SamplingSettings(**sampling, stop=["e"]), seed=4))[0][0]
    tab = Client(url, verbose=False)
    text, seed, _ = tab.predict("me/lm", "ROMEO:", *sampling.values(), "e", 4, api_name="/generate_text")
    api = openai.OpenAI(base_url=f"{url}v1", api_key="none")
    streamed = "".join(c.choices[0].text for c in api.completions.create(
        model="me/lm", prompt="ROMEO:", max_tokens=30, temperature=0.8, top_p=0.95, seed=4, stop=["e"],
        extra_body={"top_k": 50}, stream=True) if c.choices)
    assert text == streamed == expected and seed == 4
    images, used, _ = tab.predict(model="me/gan", seed=3, num_images=2, label="any", api_name="/generate_image")
    assert len(images) == 2 and used == 3
    status, table, devices = tab.predict("me/gan", "auto", api_name="/load_model")
    assert "me/gan on cpu" in status and "engines: cpu pid" in devices
    assert {row[0]: row[2] for row in table["data"]}["me/lm"].startswith("cpu")
    demo.aigc_context.close()


def test_replicas_share_a_device_and_outlive_each_other(tmp_hub, long_lm):
    """`engines: 2`: two engine processes for the CPU, each with its own copy; requests in flight at once go to
    different ones, and one killed leaves the other serving."""
    hub.push(long_lm, "me/lm")
    ctx = AppContext(AppConfig.of(engine="process", engines=2), ModelRegistry())
    try:
        loaded = ctx.registry.load("me/lm")
        assert loaded.device == "cpu" and [m.describe() for m in ctx.registry.loaded()][0].endswith("× 2")
        long = SamplingSettings(max_new_tokens=2000)
        first, = ctx.service("text").run(TextRequest("me/lm", prompt="A", settings=long, seed=1))
        second, = ctx.service("text").run(TextRequest("me/lm", prompt="A", settings=long, seed=1))
        busy = [len(e.calls) for e in ctx.registry.engines()]
        assert busy == [1, 1]  # one each
        one, other = ctx.registry.engines()  # the first stream went to the first engine (both had none)
        os.kill(one.pid, signal.SIGKILL)
        with pytest.raises(EngineStopped):  # (after the pieces it had already sent)
            list(first.chunks)
        assert next(iter(second.chunks))
        second.close()
        wait_for(lambda: not one.alive)
        text = _texts(ctx, TextRequest("me/lm", prompt="A", settings=SamplingSettings(max_new_tokens=5), seed=1))
        assert text[0][0] and other.alive
    finally:
        ctx.close()
