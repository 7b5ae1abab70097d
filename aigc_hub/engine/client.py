"""The web server's handle on one engine process: start it, send calls, route its answers to the waiting callers,
and notice when it dies.

Transport: a multiprocessing pipe (a socketpair on Linux) carrying pickled tuples. Requests are small dataclasses
and results numpy arrays (pickled as raw buffers), so the bytes are few next to the model work; no broker and no
extra dependency. One reader thread per engine hands each message to its call's queue.

Crash isolation: when the engine dies (kill -9, a segfault, the OOM killer), the pipe reaches its end; every call
in flight fails with EngineStopped, which says so, and the next call starts a fresh engine. A model whose calls were
in flight at CRASH_LIMIT deaths within CRASH_WINDOW_S is refused from then on, rather than restarted forever.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing as mp
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..errors import ModelLoadError

logger = logging.getLogger("aigc_hub.engine")
START_TIMEOUT_S = 120
POLL_S = 0.05  # how often a waiting caller looks at its stop flag
CRASH_LIMIT = 3
CRASH_WINDOW_S = 600


_SPAWNING = threading.Lock()


@contextlib.contextmanager
def main_script_hidden() -> Iterator[None]:
    """While an engine starts, the server's main *script* is hidden from multiprocessing's spawn, which would run it
    again in the child (as `__mp_main__`): the engine's entry point is importable and needs nothing of it, and a
    script that builds its app at import (a Space's app.py keeps `demo` at module level) would start a second app
    there. A main *module* (`python -m aigc_hub`) is re-imported by name instead, under its `__main__` guard."""
    main = sys.modules.get("__main__")
    hide = main is not None and getattr(main, "__spec__", None) is None and "__file__" in vars(main)
    with _SPAWNING:
        saved = vars(main).pop("__file__") if hide else None
        try:
            yield
        finally:
            if hide:
                main.__file__ = saved


class EngineStopped(ModelLoadError):
    """The engine process ended while it worked on the request (its models are gone with it)."""


@dataclass
class Call:
    id: int
    ref: str
    engine: "Engine"
    generation: int  # which start of the engine it was sent to
    inbox: dict[int | None, queue.Queue] = field(default_factory=dict)  # choice → its messages; None: the call's
    lost: int | None | bool = False  # the engine's exit code once it died under this call
    _stopped: set = field(default_factory=set)

    def box(self, i: int | None) -> queue.Queue:
        return self.inbox.setdefault(i, queue.Queue())

    def next(self, i: int | None = None, stop: threading.Event | None = None, timeout: float = 600) -> tuple:
        """The next message for choice `i` (None: the call's own). A `stop` flag set meanwhile is passed to the
        engine once (it ends the work within a step); the engine's death raises EngineStopped."""
        deadline = time.monotonic() + timeout
        while True:
            if stop is not None and stop.is_set() and i not in self._stopped:
                self._stopped.add(i)
                self.engine.send("stop", self.id, i or 0)
            try:
                return self.box(i).get(timeout=POLL_S)
            except queue.Empty:
                if self.lost is not False:
                    raise EngineStopped(self.engine.stopped_message(self.lost)) from None
                if time.monotonic() > deadline:
                    raise EngineStopped(f"the {self.engine.device} engine sent nothing for {timeout:.0f} s") from None

    def done(self) -> None:
        self.engine.calls.pop(self.id, None)


@dataclass
class Crash:
    at: float
    exitcode: int | None
    refs: set[str]


class Engine:
    """One engine process for `device` (replica `replica` of its engines), started at once and again after a crash
    (at the next call)."""

    def __init__(self, device: str, settings: dict, replica: int = 0) -> None:
        self.device, self.settings, self.replica = device, settings, replica
        self.calls: dict[int, Call] = {}
        self.crashes: list[Crash] = []
        self.restarts = 0
        self._ids = itertools.count(1)
        self._lock = threading.Lock()  # starting, sending
        self._process: Any = None
        self._conn: Any = None
        self._closing = False
        self._generation = 0
        self._start()

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _start(self) -> None:
        from . import worker

        ctx = mp.get_context("spawn")  # a fresh interpreter: no threads, locks or CUDA state of the server's
        here, there = ctx.Pipe()
        process = ctx.Process(target=worker.main, args=(there, self.device, self.settings), daemon=True,
                              name=f"aigc-engine-{self.device}-{self.replica}")
        with main_script_hidden():
            process.start()
        there.close()  # the engine holds the only other end: its death ends the pipe
        if not here.poll(START_TIMEOUT_S):
            process.kill()
            raise EngineStopped(f"the {self.device} engine did not start within {START_TIMEOUT_S} s")
        try:
            here.recv()  # ("ready", 0)
        except (EOFError, OSError):
            raise EngineStopped(f"the {self.device} engine could not start (exit code {process.exitcode})") from None
        self._process, self._conn = process, here
        self._generation += 1
        threading.Thread(target=self._read, args=(here, process, self._generation), daemon=True,
                         name=f"aigc-engine-{self.device}-reader").start()

    def call(self, op: str, ref: str, *args: Any) -> Call:
        """Send `op(*args)` for the model `ref`; its answers come to the returned Call."""
        with self._lock:
            self._check(ref)
            if not self.alive:
                self.restarts += 1
                logger.warning("restarting the %s engine (restart %d)", self.device, self.restarts)
                self._start()
            call = Call(next(self._ids), ref, self, self._generation)
            self.calls[call.id] = call
            try:
                self._conn.send(("call", call.id, op, args))
            except OSError:  # it died a moment ago; its reader has not noticed yet
                self.calls.pop(call.id, None)
                raise EngineStopped(self.stopped_message(self._process.exitcode)) from None
        return call

    def send(self, *message: Any) -> None:
        with self._lock:
            try:
                self._conn.send(message)
            except (OSError, ValueError, TypeError):  # it died, or was closed: its calls are told by the reader
                pass

    def _check(self, ref: str) -> None:
        recent = [c for c in self.crashes if c.at > time.monotonic() - CRASH_WINDOW_S and ref in c.refs]
        if len(recent) >= CRASH_LIMIT:
            raise EngineStopped(f"{ref} stopped the {self.device} engine {len(recent)} times in the last "
                                f"{CRASH_WINDOW_S // 60} minutes (last exit code {recent[-1].exitcode}); it is "
                                "refused until the app restarts")

    def _read(self, conn: Any, process: Any, generation: int) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            call = self.calls.get(message[1])
            if call is None:
                continue
            kind = message[0]
            choice = message[2] if kind in ("piece", "end") or kind == "error" and message[2] is not None else None
            call.box(choice).put(message)
        process.join(5)
        if self._closing:
            return
        with self._lock:  # only its own calls: a restarted engine may have new ones already
            lost = [c for c in self.calls.values() if c.generation == generation]
            for call in lost:
                self.calls.pop(call.id, None)
        now = time.monotonic()  # (older deaths no longer count: only the window's are kept)
        self.crashes = [c for c in self.crashes if c.at > now - CRASH_WINDOW_S] + [
            Crash(now, process.exitcode, {c.ref for c in lost})]
        logger.error("the %s engine stopped (exit code %s) with %d request(s) in flight", self.device,
                     process.exitcode, len(lost))
        for call in lost:
            call.lost = process.exitcode

    def describe(self) -> str:
        state = f"pid {self.pid}" if self.alive else "stopped (starts again at the next request)"
        restarts = f", restarted {self.restarts}×" if self.restarts else ""
        last = f" (last exit code {self.crashes[-1].exitcode})" if self.crashes else ""
        name = f"{self.device}#{self.replica}" if self.replica else self.device
        return f"{name} {state}{restarts}{last}"

    def stopped_message(self, exitcode: int | None) -> str:
        return (f"the {self.device} engine stopped (exit code {exitcode}) while it worked on this request; it starts "
                "again for the next one")

    def close(self) -> None:
        self._closing = True
        with self._lock:
            if self._conn is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._conn.send(("close",))  # closing our end does not end the engine's recv while our
                self._conn.close()  # reader thread is blocked in one on the same socket
            if self._process is not None:
                self._process.join(5)
                if self._process.is_alive():
                    self._process.kill()
