"""TextService: streamed, seeded, stoppable generation from a causal LM. No Gradio here.

- Streaming: generation runs on the device's worker thread (see registry) and queues token ids; the caller decodes.
  Concurrent streams of one model are decoded together, joining and leaving between tokens (decoding.py).
- Stop: a `threading.Event` checked after every token, so the computation itself ends (cancelling only the consumer
  would leave the worker generating); one stream's Stop never ends another.
- Limits, documented and applied before any work, from the one parameter spec every front end reads (params.py):
  a value out of its range is refused with the same message wherever it came from; a prompt longer than the context
  is cut from the left (a notice says so); temperature 0 means greedy decoding; empty prompts are refused.
- Longer than the context: generation slides its window (a notice says so). When the window is full, it keeps its
  last half and goes on, as llama.cpp's context shift does: nanoGPT crops to the last `context` tokens before every
  token, which with a KV cache would mean a full re-read per token; half a window re-read per half a window of new
  tokens costs one extra forward pass per token on average and the model always sees at least half its context.
- Seeds: −1 becomes a concrete seed, returned; the same seed and settings give the same text. A request of `n`
  choices (`run`) gives choice i the seed + i, and starts them together so that the decode loop batches them.
- Chat messages are normalised here (chat.check_messages: OpenAI's system / developer messages and text parts
  included), for the chat view and /v1 alike.
- Stop strings end the generation and are cut from its text here (stops.py), streaming included, so the tabs, the
  CLI, /v1 and MCP show the same text; `finish_reason` says how a stream ended ("stop" or "length").
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from transformers import StopStringCriteria

from .. import hub
from ..errors import GenerationError
from ..models import adapters
from ..models.ct2_text import CT2Generator
from ..remote import KEY
from ..validation import MAX_SEED, check_text, check_unicode, resolve_seed
from .chat import chat_prompt, check_messages, template_in_folder
from .decoding import DecodeJob, DecodeLoop
from .params import TEXT
from .registry import ModelRegistry
from .requests import SamplingSettings, TextRequest
from .stops import StopTrim, trimmed

TASK = "text"

MAX_PROMPT_CHARS = 200_000  # longer prompts are refused before tokenizing
STREAM_TIMEOUT_S = 120  # a worker that produces nothing for this long is treated as failed


class _TokenQueue:
    """The decode loop only queues new token ids; the consumer decodes them (decoding inside the loop cost ~15 % of
    the tokens/s here)."""

    def __init__(self) -> None:
        self.queue: queue.Queue[list[int] | None] = queue.Queue()

    def end(self) -> None:
        self.queue.put(None)

    def text(self, tokenizer, timeout: float, pace: Callable[[], float] = lambda: 0.0) -> Iterator[str]:
        """New text as it becomes printable (a multi-byte character waits for its last byte), at most one piece per
        `pace()` seconds: the tokens that arrive in between come together."""
        cache: list[int] = []
        printed, done, last = 0, False, 0.0
        while not done:
            batch = [self.queue.get(timeout=timeout)]
            wait = last + pace() - time.monotonic()
            while wait > 0 and batch[-1] is not None:
                try:
                    batch.append(self.queue.get(timeout=wait))
                except queue.Empty:
                    break
                wait = last + pace() - time.monotonic()
            while not self.queue.empty():  # when the consumer lags, decode what piled up at once
                batch.append(self.queue.get_nowait())
            for ids in batch:
                if ids is None:
                    done = True
                else:
                    cache.extend(ids)
            text = tokenizer.decode(cache, skip_special_tokens=True)
            if not done and (text.endswith("\ufffd") or _ends_in_byte_token(tokenizer, cache)):
                continue
            if len(text) > printed:
                last = time.monotonic()
                yield text[printed:]
            printed = len(text)
            if text.endswith("\n"):  # a line is final: start the next decode window here
                cache, printed = [], 0


BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")


def _ends_in_byte_token(tokenizer, ids: list[int]) -> bool:
    """Whether `ids` end in a byte-fallback token (`<0x72>`, sentencepiece / Llama). Such a run of bytes decodes as a
    whole, and as one `\ufffd` per byte if the run is not valid UTF-8, so a byte that printed as "r" on its own could
    become "\ufffd" once the next bytes arrive: the run is decoded only once it has ended."""
    return bool(ids) and bool(BYTE_TOKEN.fullmatch(str(tokenizer.convert_ids_to_tokens(ids[-1]))))


@dataclass
class TextStream:
    """A running generation: iterate `chunks` for the new text; `stop()` ends it; `tokens` counts what came.
    `pace` (seconds, asked before each piece; 0: every token its own piece) lets a consumer that pays per piece
    (Gradio: an update each) take the tokens of a short interval together."""

    seed: int
    prompt_tokens: int
    max_new_tokens: int
    notices: list[str]
    chunks: Iterator[str]
    stop_event: threading.Event
    tokens: int = 0
    pace: Callable[[], float] = lambda: 0.0
    on_close: Callable[[], None] | None = None  # what a stream nobody iterated must still release (a connection)
    trim: StopTrim | None = None  # its stop strings (None: none)
    ended: Callable[[], str | None] = lambda: None  # how its computation ended, once it has: "stop" or "length"

    @property
    def finish_reason(self) -> str:
        """"stop" (the end of the text, a stop string, Stop) or "length" (max_new_tokens came first)."""
        if self.trim is not None and self.trim.hit:
            return "stop"
        return self.ended() or ("length" if self.tokens >= self.max_new_tokens else "stop")

    def cut_at_stops(self, stops: list[str]) -> None:
        """Cut the text at the first of `stops`, streaming included (see stops.py)."""
        if stops:
            self.trim = StopTrim(stops)
            self.chunks = trimmed(self.chunks, self.trim)

    def stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        """Stop, and wait until the computation has ended (also for a stream that was never iterated)."""
        self.stop()
        self.chunks.close()
        if self.on_close is not None:
            self.on_close()


def prompt_room(context: int, max_new_tokens: int) -> int:
    """How many prompt tokens are kept: the context less the answer's room, at most half the context."""
    return max(1, context - min(max_new_tokens, context // 2))


def context_length(config: dict) -> int:
    for key in ("n_positions", "max_position_embeddings", "n_ctx"):
        if isinstance(config.get(key), int):
            return config[key]
    return 1024


class TextService:
    def __init__(self, registry: ModelRegistry | None = None) -> None:
        self.registry = registry or ModelRegistry()
        self._loops: dict[tuple, DecodeLoop] = {}  # (device, ref, model id) → its streams' decode loop
        self._lock = threading.Lock()

    def run(self, request: TextRequest, stop_events: list[threading.Event] | None = None) -> list[TextStream]:
        """The streams of a request, one per choice (choice i with seed + i), each with its own stop flag (one
        choice's end must not end the others; `stop_events`: the caller's, one per choice). Everything is checked
        before any work; a failure closes the streams already started."""
        n = TEXT["n"].check(request.n)
        settings = request.settings.checked()
        base = resolve_seed(request.seed)
        if base + n - 1 > MAX_SEED:
            raise GenerationError(f"seed + n - 1 must be at most {MAX_SEED}, got {base} + {n - 1}")
        if request.chat:
            messages, system = check_messages(request.messages, request.system)
        else:
            check_text(request.prompt, "prompt", MAX_PROMPT_CHARS)
        events = list(stop_events) if stop_events else [threading.Event() for _ in range(n)]
        streams: list[TextStream] = []
        try:
            for i in range(n):
                if request.chat:
                    streams.append(self._chat(request.model, messages, system, settings, base + i, events[i]))
                else:
                    streams.append(self._continue(request.model, request.prompt, settings, base + i, events[i]))
        except BaseException:
            for stream in streams:
                stream.close()
            raise
        return streams

    def stream(self, ref: str, prompt: str, settings: SamplingSettings | None = None, seed: object = -1,
               stop_event: threading.Event | None = None) -> TextStream:
        """Start generating; the returned stream yields text pieces as tokens arrive (a request of one choice)."""
        request = TextRequest(ref, prompt=prompt, settings=settings or SamplingSettings(), seed=seed)
        return self.run(request, [stop_event] if stop_event else None)[0]

    def chat(self, ref: str, messages: list[dict], settings: SamplingSettings | None = None, seed: object = -1,
             system: str | None = None, stop_event: threading.Event | None = None) -> TextStream:
        """The assistant's next message after `messages` (user / assistant turns, the last one the user's), with the
        model's own chat template; the oldest turns are left out when the history outgrows the context."""
        request = TextRequest(ref, messages=messages, system=system, settings=settings or SamplingSettings(),
                              seed=seed)
        return self.run(request, [stop_event] if stop_event else None)[0]

    def _continue(self, ref: str, prompt: str, s: SamplingSettings, seed: int,
                  stop_event: threading.Event) -> TextStream:
        entry = self.registry.get_for(ref, TASK)
        if entry.family.remote:
            return _remote_stream(entry, s, seed, stop_event, prompt=prompt)
        ids = entry.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        context = context_length(entry.config)
        keep, notices = prompt_room(context, s.max_new_tokens), []
        if ids.shape[1] > keep:
            notices.append(f"prompt cut to its last {keep} of {ids.shape[1]} tokens (context {context})")
            ids = ids[:, -keep:]
        return self._start(entry, ids, s, seed, notices, stop_event)

    def _chat(self, ref: str, messages: list[dict], system: str | None, s: SamplingSettings, seed: int,
              stop_event: threading.Event) -> TextStream:
        entry = self.registry.get_for(ref, TASK)
        if entry.family.remote:  # the server applies its model's own template
            head = [{"role": "system", "content": system}] if system else []
            return _remote_stream(entry, s, seed, stop_event, messages=head + messages)
        context = context_length(entry.config)
        ids, notices = chat_prompt(entry.tokenizer, messages, system, prompt_room(context, s.max_new_tokens), ref)
        return self._start(entry, ids, s, seed, notices, stop_event)

    def _decode(self, entry, job: DecodeJob) -> None:
        """Hand the stream to its model's decode loop (one per loaded model; a new one once the old went idle)."""
        key = (entry.device, entry.ref, id(entry.model))
        batcher = self.registry.batcher
        while True:
            with self._lock:
                loop = self._loops.get(key)
                if loop is None:
                    loop = self._loops[key] = DecodeLoop(entry.model, self.registry.submit, entry.device,
                                                         batcher.enabled, batcher.max_rows,
                                                         on_idle=lambda idle, k=key: self._forget(k, idle))
            if loop.add(job):
                return
            self._forget(key, loop)

    def _forget(self, key: tuple, loop: DecodeLoop) -> None:
        with self._lock:
            if self._loops.get(key) is loop:  # not a newer loop that took its place
                self._loops.pop(key, None)

    def has_chat(self, ref: str) -> bool:
        """Whether `ref`'s tokenizer ships a chat template (read from its folder, without loading the model)."""
        family, path, config = self.registry.folder_of(ref)
        if family.remote:
            return bool(config[KEY].get("chat", True))
        if family.base_families and not (path / "tokenizer_config.json").is_file():  # an adapter without its own
            path = hub.resolve(adapters.base_ref(config, ref), offline=True)  # tokenizer uses its base's
        return family.task == TASK and template_in_folder(path)

    def _start(self, entry, ids: torch.Tensor, s: SamplingSettings, seed: int, notices: list[str],
               stop_event: threading.Event | None) -> TextStream:
        """Queue the generation of `ids`' continuation on the model's device; the stream yields its text."""
        tok, model = entry.tokenizer, entry.model
        context = context_length(entry.config)
        max_new = s.max_new_tokens
        slide_keep = max(1, context // 2)
        if ids.shape[1] + max_new > context:
            notices.append(f"longer than the context ({context} tokens): the window slides, keeping its last "
                           f"{slide_keep} tokens each time it fills")
        event = stop_event or threading.Event()
        streamer = _TokenQueue()
        stop_strings = None
        if s.stop:
            for stop in s.stop:
                check_unicode(stop, "stop string")
            try:
                stop_strings = StopStringCriteria(tok, s.stop)
            except ValueError:  # transformers refuses strings no token sequence of this vocabulary can spell
                raise GenerationError(f"a stop string holds characters this model's tokenizer cannot produce: "
                                      f"{', '.join(repr(x[:20]) for x in s.stop)}") from None
        stream = TextStream(seed, ids.shape[1], max_new, notices, iter(()), event)

        def emit(token: int) -> None:  # on the worker, as each token is sampled
            stream.tokens += 1
            streamer.queue.put([token])

        job = DecodeJob(ids.to(model.device), max_new, s.temperature, s.top_k, s.top_p, s.repetition_penalty, seed,
                        context, event, emit, stop_strings)
        job.future.add_done_callback(lambda _: streamer.end())
        if isinstance(model, CT2Generator):  # a runtime that decodes each stream on a thread of its own
            model.start(job)
        else:
            self._decode(entry, job)
        done = job.future

        def chunks() -> Iterator[str]:
            try:
                yield from streamer.text(tok, STREAM_TIMEOUT_S, lambda: stream.pace())
                error = done.exception()
                if error is not None:
                    raise GenerationError(f"generation failed: {type(error).__name__}: {error}")
            finally:  # the consumer went away (Stop, a closed connection): end the computation too. After a
                # normal end the flag stays clear: it means "stopped" to whoever reads it (the tab's notice).
                if not done.done():
                    event.set()
                with contextlib.suppress(Exception):
                    done.result(timeout=STREAM_TIMEOUT_S)

        stream.chunks, stream.ended = chunks(), lambda: job.finish_reason
        stream.cut_at_stops(s.stop)
        return stream

    def generate(self, ref: str, prompt: str, settings: SamplingSettings | None = None,
                 seed: object = -1) -> tuple[str, TextStream]:
        """The whole text at once (CLI, tests): the same path as streaming."""
        stream = self.stream(ref, prompt, settings, seed)
        return "".join(stream.chunks), stream


def _remote_stream(entry, s: SamplingSettings, seed: int, stop_event: threading.Event | None,
                   prompt: str | None = None, messages: list[dict] | None = None) -> TextStream:
    """A stream from a model on an OpenAI-compatible server (remote.py): the request is sent now, so that a refusal
    is raised here; Stop or a consumer that goes away closes the connection, which ends the generation there."""
    event = stop_event or threading.Event()
    stream = TextStream(seed, 0, s.max_new_tokens, [], iter(()), event)
    response = entry.model.open(s, seed, prompt=prompt, messages=messages)
    stream.chunks, stream.on_close = entry.model.pieces(response, stream), response.close
    stream.cut_at_stops(s.stop)  # the server cuts them too; cutting here again changes nothing then
    return stream
