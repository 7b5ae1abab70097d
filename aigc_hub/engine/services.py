"""The services and registry the app uses when model work runs in engine processes (`--engine process`): the same
faces as aigc_hub.services, so the tabs, /v1 and MCP do not know the difference. A request is the services' typed
request (services/requests.py), sent as it is to the engine of the device its model is on (or will be placed on);
what needs no weights (a model's facts, its chat template, its directions, placement) is read here from its folder.
A model served by a remote server (remote.py) is no device's work: it runs here, as without engines.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

from .. import errors
from ..services import ImageService, ModelRegistry, TextService, TranslationService
from ..services.image import GenerationStopped
from ..services.lanes import QueueFull
from ..backends import check as check_backend
from ..services.text import TextStream
from .client import Call, Engine, EngineStopped

KINDS = {cls.__name__: cls for cls in (errors.UserError, errors.GenerationError, errors.ModelLoadError,
                                       errors.DeviceError, errors.HubError, GenerationStopped, QueueFull,
                                       EngineStopped)}


class EngineError(RuntimeError):
    """A bug of ours inside the engine; its message names the engine log's id."""


def raise_from(message: tuple) -> None:
    """The error an engine reported (("error", id, i, kind, text)), or its death, raised here."""
    if message[0] == "error":
        kind, text = message[3], message[4]
        raise KINDS.get(kind, errors.UserError)(text) if kind != "internal" else EngineError(text)
    raise EngineError(f"unexpected engine message {message[0]!r}")


@dataclass
class Loaded:
    """A model loaded in an engine, as the Models tab lists it."""

    ref: str
    device: str
    text: str

    def describe(self) -> str:
        return self.text


class EngineRegistry:
    """ModelRegistry's face over engine processes: `replicas` per device, started when the device is first asked
    for (the tabs' preload asks at start-up). `local` reads folders and plans placement, as the in-process registry
    does."""

    def __init__(self, local: ModelRegistry, settings: dict, replicas: int = 1) -> None:
        self.local, self.settings, self.replicas = local, settings, replicas
        self._engines: dict[str, list[Engine]] = {}  # device → its engine processes (replicas)
        self._placed: dict[str, str] = {}  # ref → the device it is (or goes) on
        self._lock = threading.Lock()

    def of(self, device: str) -> list[Engine]:
        """The engines of `device`, started the first time it is asked for."""
        with self._lock:
            if device not in self._engines:
                self._engines[device] = [Engine(device, self.settings, k) for k in range(self.replicas)]
            return self._engines[device]

    def engine(self, device: str) -> Engine:
        """The engine of `device` with the fewest calls in flight: replicas share a device's requests."""
        return min(self.of(device), key=lambda e: len(e.calls))

    def engines(self) -> list[Engine]:
        with self._lock:
            return [e for group in self._engines.values() for e in group]

    def folder_of(self, ref: str) -> Any:
        return self.local.folder_of(ref)

    def base_folder_of(self, ref: str) -> Any:
        return self.local.base_folder_of(ref)

    def planned_device(self, ref: str, device: str | None = None) -> str:
        """Where `ref` is, or goes: planned once (reading its folder costs milliseconds a request), then kept
        until it is loaded elsewhere or unloaded."""
        if device not in (None, "auto"):
            return self.local.planned_device(ref, device)
        placed = self._placed.get(ref)
        if placed is None:
            placed = self._placed[ref] = self.local.planned_device(ref)
        return placed

    @staticmethod
    def ask(engine: Engine, op: str, ref: str, *args: Any) -> Any:
        """A call about `ref` that answers once ("result"), waited for."""
        call = engine.call(op, ref, ref, *args)
        try:
            message = call.next()
        finally:
            call.done()
        if message[0] != "result":
            raise_from(message)
        return message[2]

    def load(self, ref: str, device: str | None = None, backend: str | None = None) -> Loaded:
        """Load `ref` in every engine of its device (each replica holds its own copy); a model moved to another
        device leaves the old one. `backend`: its runtime from now on, in every engine that loads it."""
        if backend is not None:
            self.settings["backends"] = {**self.settings.get("backends", {}), ref: check_backend(backend)}
        target = self.local.planned_device(ref, device)
        if target.startswith("remote:"):
            entry = self.local.load(ref, device)
            return Loaded(entry.ref, entry.device, entry.describe())
        for other in self.engines():
            if other.device != target and other.alive:
                self.ask(other, "unload", ref)
        loaded = [Loaded(*self.ask(engine, "load", ref, backend)) for engine in self.of(target)]
        self._placed[ref] = target
        return loaded[0]

    def get(self, ref: str, device: str | None = None) -> Loaded:
        return self.load(ref, device)

    def loaded(self) -> list[Loaded]:
        """What each engine holds (a model in N replicas: listed once, "× N"), and the remote entries."""
        out = [Loaded(m.ref, m.device, m.describe()) for m in self.local.loaded()]
        copies: dict[tuple[str, str], list[Loaded]] = {}
        for engine in self.engines():
            if engine.alive:
                for row in self.ask(engine, "loaded", ""):
                    copies.setdefault((row[0], row[1]), []).append(Loaded(*row))
        for same in copies.values():
            first = same[0]
            out.append(first if len(same) == 1 else Loaded(first.ref, first.device, f"{first.text} × {len(same)}"))
        return out

    def unload(self, ref: str) -> bool:
        if self.local.unload(ref):
            return True
        self._placed.pop(ref, None)
        done = [self.ask(e, "unload", ref) for e in self.engines() if e.alive]  # wherever it was loaded
        return any(done)

    def remote(self, ref: str) -> bool:
        return self.planned_device(ref).startswith("remote:")

    def close(self) -> None:
        for engine in self.engines():
            engine.close()


def _wait(call: Call, progress: Any = None, stop: threading.Event | None = None) -> Any:
    """The result of a one-answer call, reporting its progress and passing Stop on."""
    try:
        while True:
            message = call.next(None, stop)
            if message[0] == "progress":
                if progress:
                    progress(message[2], message[3])
            elif message[0] == "result":
                return message[2]
            else:
                raise_from(message)
    finally:
        call.done()


class EngineImageService(ImageService):
    registry: EngineRegistry  # type: ignore[assignment]

    def run(self, request: Any, progress: Any = None, stop: threading.Event | None = None) -> Any:
        ref = request.model
        call = self.registry.engine(self.registry.planned_device(ref)).call("image", ref, request)
        return _wait(call, progress, stop)

    def interpolate(self, ref: str, *args: Any, stop: threading.Event | None = None, **kwargs: Any) -> Any:
        call = self.registry.engine(self.registry.planned_device(ref)).call("interpolate", ref, (ref, *args), kwargs)
        return _wait(call, None, stop)


class EngineTranslationService(TranslationService):
    registry: EngineRegistry  # type: ignore[assignment]

    def run(self, request: Any, progress: Any = None) -> Any:
        ref = request.model
        return _wait(self.registry.engine(self.registry.planned_device(ref)).call("translate", ref, request),
                     progress)


class EngineTextService(TextService):
    registry: EngineRegistry  # type: ignore[assignment]

    def __init__(self, registry: EngineRegistry) -> None:
        super().__init__(registry)  # type: ignore[arg-type]
        self.here = TextService(registry.local)  # remote models: their HTTP stream runs in this process

    def run(self, request: Any, stop_events: list[threading.Event] | None = None) -> list[TextStream]:
        ref = request.model
        device = self.registry.planned_device(ref)
        if device.startswith("remote:"):
            return self.here.run(request, stop_events)
        call = self.registry.engine(device).call("text", ref, request)
        try:
            message = call.next()
            if message[0] != "started":
                raise_from(message)
        except BaseException:
            call.done()
            raise
        events = list(stop_events) if stop_events else [threading.Event() for _ in message[2]]
        streams = [TextStream(seed, prompt_tokens, max_new, notices, iter(()), events[i])
                   for i, (seed, prompt_tokens, max_new, notices) in enumerate(message[2])]
        left = _Left(call, len(streams))
        for i, stream in enumerate(streams):
            stream.chunks = _pieces(call, i, stream, left)
            stream.on_close = lambda i=i: left.close(i)
        return streams


class _Left:
    """The choices of a text call not finished with yet; the call is forgotten when none is left. Closing a stream
    that was never iterated stops its choice in the engine (an iterated one was stopped by its pieces' end)."""

    def __init__(self, call: Call, n: int) -> None:
        self.call, self.open = call, set(range(n))

    def finish(self, i: int) -> None:
        self.open.discard(i)
        if not self.open:
            self.call.done()

    def close(self, i: int) -> None:
        if i in self.open:
            self.call.engine.send("stop", self.call.id, i)
            self.finish(i)


def _pieces(call: Call, i: int, stream: TextStream, left: _Left) -> Iterator[str]:
    """Choice i's text as the engine sends it, pieces that arrived together joined, at most one piece per
    `stream.pace()` seconds; Stop (its flag) is passed on; a stream closed early stops its choice there."""
    ended: list[str] = []  # its finish reason, once the engine said it ended
    over = False  # ended, failed or lost: nothing more will come
    stream.ended = lambda: ended[0] if ended else None

    def take(message: tuple) -> str:
        nonlocal over
        if message[0] == "piece":
            stream.tokens = message[4]
            return message[3]
        over = True
        if message[0] == "end":
            ended.append(message[3])
            stream.tokens = message[4]
            return ""
        raise_from(message)
        return ""

    box = call.box(i)
    try:
        while not over:
            try:
                text = take(call.next(i, stream.stop_event))
            except EngineStopped:
                over = True
                raise
            deadline = time.monotonic() + stream.pace()
            while not over:
                wait = deadline - time.monotonic()
                try:
                    text += take(box.get(timeout=wait) if wait > 0 else box.get_nowait())
                except queue.Empty:
                    break
            if text:
                yield text
    finally:
        if not over:  # the consumer went away: end the computation, and wait for its end
            stream.stop_event.set()
            try:
                while call.next(i, stream.stop_event, timeout=120)[0] == "piece":
                    pass
            except (EngineStopped, EngineError, errors.UserError):
                pass
        left.finish(i)


def engine_services(local: ModelRegistry, config: Any) -> tuple[EngineRegistry, dict[str, Any]]:
    """The registry and the services of an app whose model work runs in engine processes."""
    settings = {"batching": config.batching, "batch_window_ms": config.batch_window_ms,
                "max_batch": config.max_batch, "max_images": config.max_images, "backends": config.backends}
    registry = EngineRegistry(local, settings, config.engines)
    return registry, {"image": EngineImageService(registry, config.max_images),  # type: ignore[arg-type]
                      "text": EngineTextService(registry),
                      "translation": EngineTranslationService(registry)}  # type: ignore[arg-type]
