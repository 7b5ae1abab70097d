"""POST /v1/completions and /v1/chat/completions: TextService's streams behind OpenAI's request and response shapes.

The body becomes the text service's typed request (services/requests.TextRequest), one per prompt; the service owns
what it means, as for every other front end: `n` choices decoded together, choice `i` with seed `seed + i`; stop
strings end a choice and are left out of its text (as OpenAI does); each stream's finish reason; the normalisation
of chat messages. A client that goes away stops every stream of its request (EventStream's `on_close`).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..errors import UserError
from ..services.chat import check_messages
from ..services.params import MAX_CHOICES, TEXT
from ..services.requests import SamplingSettings, TextRequest
from ..services.text import MAX_PROMPT_CHARS, TextStream
from .body import Fields, anything, only, read_json
from .errors import ApiError, api_error
from .sse import EventStream, event

COMPLETION_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
CHAT_MAX_TOKENS = 256  # OpenAI's is "until the model ends"; a bound keeps a model that never ends from running on
IGNORED = {"user": anything, "logprobs": only(False), "top_logprobs": only(0), "echo": only(False),
           "presence_penalty": only(0), "frequency_penalty": only(0), "logit_bias": only({}), "best_of": only(1),
           "suffix": only(""), "store": only(False), "metadata": anything, "parallel_tool_calls": anything,
           "tools": only([]), "tool_choice": only("none", "auto"), "response_format": only({"type": "text"})}


@dataclass
class Generation:
    """The streams of one request, each with its own stop flag (one choice's end must not end the others)."""

    streams: list[TextStream]
    events: list[threading.Event]
    lane: contextlib.ExitStack
    seed: int
    created: int = field(default_factory=lambda: int(time.time()))

    def pieces(self) -> Iterator[tuple[int, str | None]]:
        """(choice, new text) as it comes, round robin; (choice, None) when a choice has ended."""
        live = list(range(len(self.streams)))
        while live:
            for i in list(live):
                piece = next(self.streams[i].chunks, None)
                if piece is None:
                    live.remove(i)
                yield i, piece

    def finish_reason(self, i: int) -> str:
        return self.streams[i].finish_reason

    def usage(self, prompts: int) -> dict:
        per_prompt = len(self.streams) // prompts
        prompt = sum(s.prompt_tokens for s in self.streams[::per_prompt])
        completion = sum(s.tokens for s in self.streams)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def stop(self) -> None:
        for e in self.events:
            e.set()

    def close(self) -> None:
        """Stop every stream, wait for them to end, give the lane back (blocking: in a thread)."""
        self.stop()
        try:
            for stream in self.streams:
                stream.close()  # waits for its computation to end
        finally:
            self.lane.close()


@dataclass
class Body:
    """A /v1 text body: the service's requests (one per prompt) and how the answer is sent."""

    chat: bool
    requests: list[TextRequest]
    stream: bool
    include_usage: bool

    @property
    def ref(self) -> str:
        return self.requests[0].model


def parse(data: dict, chat: bool) -> Body:
    f = Fields(data, IGNORED)
    ref = f.get("model", str)
    messages, system, prompts = None, None, [None]
    if chat:
        try:  # the service's one normalisation (system and developer messages, text parts); refused here already
            messages, system = check_messages(f.get("messages", list))
        except UserError as e:
            raise ApiError(400, str(e), param="messages") from None
    else:
        prompts = f.strings("prompt", most=MAX_CHOICES, longest=MAX_PROMPT_CHARS)
    # The bounds are the spec's (services/params.py), as the tabs and the CLI have them; the defaults OpenAI's.
    max_tokens = f.param(TEXT["max_new_tokens"], "max_tokens", CHAT_MAX_TOKENS if chat else COMPLETION_MAX_TOKENS,
                         aliases=("max_completion_tokens",) if chat else ())
    temperature = f.param(TEXT["temperature"], default=1.0)
    top_p = f.param(TEXT["top_p"], default=1.0)
    top_k = f.param(TEXT["top_k"], default=0)  # extra fields, as vLLM takes them
    penalty = f.param(TEXT["repetition_penalty"], default=1.0)
    stops = f.strings("stop", [], most=16, longest=500)
    seed = f.param(TEXT["seed"])
    n = f.param(TEXT["n"])
    if n * len(prompts) > MAX_CHOICES:
        raise ApiError(400, f"{len(prompts)} prompts × n={n} choices; the limit is {MAX_CHOICES} in all", param="n")
    stream = f.get("stream", bool, False)
    options = f.get("stream_options", dict, {})
    include_usage = options.get("include_usage", False)
    if set(options) - {"include_usage"} or not isinstance(include_usage, bool):
        raise ApiError(400, "stream_options takes only include_usage (true or false)", param="stream_options")
    f.done()
    settings = SamplingSettings(max_tokens, temperature, top_k, top_p, penalty, stops)
    requests = [TextRequest(ref, prompt, messages, system, settings, seed, n) for prompt in prompts]
    return Body(chat, requests, stream, include_usage)


def start(api: Any, body: Body) -> Generation:
    """Hold a slot on the model's lane and start every request's streams (blocking: in a thread)."""
    ref, service = body.ref, api.ctx.service("text")  # ref: checked by api.model
    if body.chat and not service.has_chat(ref):
        raise ApiError(400, f"{ref} has no chat template: use /v1/completions", param="model",
                       code="model_not_chat")
    lane = contextlib.ExitStack()
    streams: list[TextStream] = []
    events: list[threading.Event] = []
    try:
        lane.enter_context(api.admit(ref, "text"))
        for request in body.requests:
            if streams:  # every prompt with the same seeds: -1 is resolved once, by the first request
                request.seed = streams[0].seed
            mine = [threading.Event() for _ in range(int(request.n))]  # type: ignore[call-overload]
            events += mine
            streams += service.run(request, mine)
    except BaseException:
        Generation(streams, events, lane, 0).close()
        raise
    return Generation(streams, events, lane, streams[0].seed)


async def completions(api: Any, request: Request) -> Response:
    return await _serve(api, parse(await read_json(request), chat=False))


async def chat_completions(api: Any, request: Request) -> Response:
    return await _serve(api, parse(await read_json(request), chat=True))


async def _serve(api: Any, r: Body) -> Response:
    ref = await api.work(api.model, r.ref, "text")
    for request in r.requests:
        request.model = ref
    gen = await api.work(start, api, r)
    shape = _Shape(r, gen)
    if r.stream:
        return EventStream(_events(api, gen, shape, r), on_close=lambda: api.work(gen.close))
    try:
        texts = await api.work(lambda: ["".join(s.chunks) for s in gen.streams])
    finally:
        await api.work(gen.close)
    choices = [shape.choice(i, t, gen.finish_reason(i)) for i, t in enumerate(texts)]
    return JSONResponse({**shape.head(final=True), "choices": choices, "usage": gen.usage(len(r.requests)),
                         "seed": gen.seed, "notices": sorted({n for s in gen.streams for n in s.notices})})


async def _events(api: Any, gen: Generation, shape: "_Shape", r: Body) -> AsyncIterator[str]:
    pieces = gen.pieces()
    try:
        if r.chat:
            for i in range(len(gen.streams)):
                yield event(shape.chunk(i, role=True))
        while True:
            item = await api.work(next, pieces, None)
            if item is None:
                break
            i, piece = item
            if piece is None:
                yield event(shape.chunk(i, finish=gen.finish_reason(i)))
            elif piece:
                yield event(shape.chunk(i, piece))
        if r.include_usage:
            yield event({**shape.head(), "choices": [], "usage": gen.usage(len(r.requests))})
        yield "data: [DONE]\n\n"
    except Exception as e:  # after the first byte the status is sent: the error goes as an event, as OpenAI does
        yield event(api_error(e, "streamed completion").body())
    finally:
        gen.stop()  # at once; EventStream's on_close then waits for the streams to end and frees the lane


class _Shape:
    """The JSON of completion objects and chunks (text_completion or chat.completion)."""

    def __init__(self, r: Body, gen: Generation) -> None:
        self.chat, self.ref, self.created = r.chat, r.ref, gen.created
        self.id = ("chatcmpl-" if r.chat else "cmpl-") + uuid.uuid4().hex[:24]

    def head(self, final: bool = False) -> dict:
        kind = ("chat.completion" if final else "chat.completion.chunk") if self.chat else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.ref,
                "system_fingerprint": None}

    def choice(self, i: int, text: str, finish: str) -> dict:
        if self.chat:
            return {"index": i, "message": {"role": "assistant", "content": text}, "logprobs": None,
                    "finish_reason": finish}
        return {"index": i, "text": text, "logprobs": None, "finish_reason": finish}

    def chunk(self, i: int, text: str = "", finish: str | None = None, role: bool = False) -> dict:
        if self.chat:
            delta: dict = {"role": "assistant", "content": ""} if role else {"content": text} if text else {}
            one = {"index": i, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            one = {"index": i, "text": text, "logprobs": None, "finish_reason": finish}
        return {**self.head(), "choices": [one]}

