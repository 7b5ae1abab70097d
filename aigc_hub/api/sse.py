"""Server-sent events whose generator is closed as soon as the client goes away.

Starlette's StreamingResponse notices a closed connection only when it next writes (ASGI 2.4 servers) and leaves
the generator suspended until it is garbage-collected, so a generation for nobody would run on. Here a task listens
for the disconnect beside the writer; when either ends, the generator is closed and `on_close` stops the work.
"""

from __future__ import annotations

import json
from typing import AsyncIterator, Awaitable, Callable

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


def event(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


class EventStream(StreamingResponse):
    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[str], on_close: Callable[[], Awaitable[object]]) -> None:
        """`on_close` runs however the response ends, even when the client left before the first event (a
        generator that never started has no `finally` to run)."""
        super().__init__(events, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def write() -> None:
                    try:
                        await self.stream_response(send)
                    except OSError:  # the connection closed under a write
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(write)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()  # type: ignore[attr-defined]
                await self.on_close()
