"""The engine process: one per device, it owns that device's models, batches and decode loops (the services of
aigc_hub.services, run as in the app's own process) and answers the web server over one pipe.

Messages (tuples, pickled by multiprocessing's Connection) — from the server:
  ("call", id, op, args)   op: "text" | "image" | "interpolate" | "translate" | "load" | "unload" | "loaded"
  ("stop", id, i)          stop choice i of call id (a text stream, or an image run: i = 0)
  ("close",)               the server is closing: the engine ends
and to it:
  ("started", id, streams) a text call's streams: [(seed, prompt tokens, max new tokens, notices)]
  ("piece", id, i, text, tokens)   new text of choice i, and its token count so far
  ("end", id, i, finish_reason, tokens)
  ("progress", id, done, total)
  ("result", id, value)    the answer of any other call (an ImageResult, a TranslationResult, ...)
  ("error", id, i, kind, message)  kind: the UserError class's name, or "internal" (logged here with its id)
  ("ready", 0)             once, when the engine has started

Each call runs on its own thread; the server's device lanes bound how many there are. The decode loop and the
batcher join concurrent calls exactly as in one process.
"""

from __future__ import annotations

import logging
import threading
from multiprocessing.connection import Connection
from typing import Any

from ..errors import UserError, report_internal

logger = logging.getLogger("aigc_hub.engine")


class _Engine:
    def __init__(self, conn: Connection, device: str, settings: dict) -> None:
        from ..services import ImageService, ModelRegistry, TextService, TranslationService

        self.conn, self.device = conn, device
        self.registry = ModelRegistry({"*": device}, settings["batching"], settings["batch_window_ms"],
                                      settings["max_batch"], settings["backends"])
        self.text = TextService(self.registry)
        self.image = ImageService(self.registry, settings["max_images"])
        self.translation = TranslationService(self.registry)
        self.stops: dict[int, list[threading.Event]] = {}
        self._send_lock = threading.Lock()

    def send(self, *message: Any) -> None:
        with self._send_lock:
            try:
                self.conn.send(message)
            except (OSError, ValueError, TypeError):  # the server went away or closed its end: nobody to tell, and
                for events in list(self.stops.values()):  # nobody to work for
                    for event in events:
                        event.set()

    def serve(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):  # the server went away: so does its engine
                return
            if message[0] == "close":  # the server closes its end: the pipe's end alone would not reach here
                return  # while the server's reader thread still waits on it
            if message[0] == "stop":
                _, cid, i = message
                events = self.stops.get(cid)
                if events and i < len(events):
                    events[i].set()
            elif message[0] == "call":
                _, cid, op, args = message
                events = [threading.Event() for _ in range(_choices(op, args))]
                self.stops[cid] = events
                threading.Thread(target=self._call, args=(cid, op, args, events), daemon=True,
                                 name=f"engine-{op}-{cid}").start()

    def _call(self, cid: int, op: str, args: tuple, events: list[threading.Event]) -> None:
        try:
            if op == "text":
                self._text(cid, args[0], events)
            else:
                self.send("result", cid, self._answer(cid, op, args, events[0]))
        except BaseException as e:
            self.send("error", cid, None, *_described(e, op))
        finally:
            self.stops.pop(cid, None)

    def _answer(self, cid: int, op: str, args: tuple, stop: threading.Event) -> Any:
        def progress(done: int, total: int) -> None:
            self.send("progress", cid, done, total)

        if op == "image":
            return self.image.run(args[0], progress, stop)
        if op == "interpolate":
            return self.image.interpolate(*args[0], stop=stop, **args[1])
        if op == "translate":
            return self.translation.run(args[0], progress)
        if op == "load":
            return _loaded(self.registry.load(args[0], self.device, *args[1:]))
        if op == "unload":
            return self.registry.unload(args[0])
        if op == "loaded":
            return [_loaded(m) for m in self.registry.loaded()]
        raise ValueError(f"unknown engine call {op!r}")

    def _text(self, cid: int, request: Any, events: list[threading.Event]) -> None:
        streams = self.text.run(request, events)
        self.send("started", cid, [(s.seed, s.prompt_tokens, s.max_new_tokens, s.notices) for s in streams])
        threads = [threading.Thread(target=self._pieces, args=(cid, i, s), daemon=True)
                   for i, s in enumerate(streams[1:], 1)]
        for thread in threads:
            thread.start()
        self._pieces(cid, 0, streams[0])
        for thread in threads:
            thread.join()

    def _pieces(self, cid: int, i: int, stream: Any) -> None:
        try:
            for piece in stream.chunks:
                self.send("piece", cid, i, piece, stream.tokens)
            self.send("end", cid, i, stream.finish_reason, stream.tokens)
        except BaseException as e:
            self.send("error", cid, i, *_described(e, "text"))
        finally:
            stream.close()


def _choices(op: str, args: tuple) -> int:
    if op != "text":
        return 1
    from ..services.params import TEXT

    try:
        return int(TEXT["n"].check(args[0].n))
    except UserError:
        return 1  # the service refuses it, with its message


def _loaded(entry: Any) -> tuple[str, str, str]:
    return entry.ref, entry.device, entry.describe()


def _described(error: BaseException, where: str) -> tuple[str, str]:
    """(kind, message) of an error for the server: a user's error by its class, anything else logged here."""
    if isinstance(error, UserError):
        return type(error).__name__, str(error)
    return "internal", report_internal(logger, error, f"engine {where}")


def main(conn: Connection, device: str, settings: dict) -> None:
    """The engine process's entry point (multiprocessing spawns it with the server's end of the pipe)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s engine %(levelname)s %(message)s")
    engine = _Engine(conn, device, settings)
    engine.send("ready", 0)
    engine.serve()
