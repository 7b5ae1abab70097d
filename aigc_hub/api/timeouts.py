"""Request read timeouts for the app's HTTP server: a client has `header_s` seconds to send a request's headers and
at most `body_s` seconds between two pieces of its body; past either, the connection is closed (408 when nothing was
answered yet). Without them one client holding many half-sent requests open (slowloris) keeps a connection and its
buffers each for ever: uvicorn, which Gradio starts, times out only idle keep-alive connections.

Gradio builds uvicorn's Config itself, with the default protocol ("auto": httptools, else h11), so `install` puts a
subclass of that protocol with the timers in its place, for the servers this process starts from then on. Both of
uvicorn's HTTP/1.1 protocols keep the request in flight as `cycle` (`more_body` while its body is still coming,
`response_complete` once answered): that is all the timers read.
"""

from __future__ import annotations

import asyncio
from typing import Any

HEADER_S = 20.0  # nginx's client_header_timeout is 60 s; a browser sends its headers in one piece
BODY_S = 60.0  # nginx's client_body_timeout: between two reads, not for the whole body (uploads may be large)
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


class ReadTimeouts:
    """Mixin for a uvicorn HTTP protocol class."""

    header_s = HEADER_S
    body_s = BODY_S

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._read_timer: asyncio.TimerHandle | None = None
        self._seen_cycle: Any = None
        self._arm(self.header_s)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self.transport.is_closing() or self.transport.get_protocol() is not self:  # closed, or upgraded
            self._disarm()
            return
        cycle = getattr(self, "cycle", None)
        if cycle is not None and cycle is not self._seen_cycle:  # a new request's headers are complete
            self._seen_cycle = cycle
            self._disarm()
        if cycle is not None and not cycle.response_complete and cycle is self._seen_cycle:
            if cycle.more_body:
                self._arm(self.body_s)  # again at each piece: the time between two pieces is bounded
            else:
                self._disarm()
        elif self._read_timer is None:  # the first bytes of the next request on a kept-alive connection
            self._arm(self.header_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = asyncio.get_running_loop().call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        timer = getattr(self, "_read_timer", None)
        if timer is not None:
            timer.cancel()
            self._read_timer = None

    def _timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        cycle = getattr(self, "cycle", None)
        if cycle is None or cycle.response_complete:  # headers never finished: nothing was answered
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


def install(header_s: float | None = None, body_s: float | None = None) -> None:
    """Make uvicorn's default ("auto") HTTP protocol the timed one, for the servers this process starts next
    (HEADER_S and BODY_S unless given)."""
    from uvicorn import config
    from uvicorn.importer import import_from_string

    name = __name__ + ":TimedHTTPProtocol"
    if config.HTTP_PROTOCOLS["auto"] != name:
        base = import_from_string(config.HTTP_PROTOCOLS["auto"])
        globals()["TimedHTTPProtocol"] = type("TimedHTTPProtocol", (ReadTimeouts, base), {})
        config.HTTP_PROTOCOLS["auto"] = name
    protocol = globals()["TimedHTTPProtocol"]
    protocol.header_s, protocol.body_s = header_s or HEADER_S, body_s or BODY_S
