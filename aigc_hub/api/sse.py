"""Server-sent events whose generator is closed as soon as the client goes away.

Starlette's StreamingResponse notices a closed connection only when it next writes (ASGI 2.4 servers) and leaves
the generator suspended until it is garbage-collected, so a generation for nobody would run on. Here a task listens
for the disconnect beside the writer, and the generator is closed when either ends: its `finally` stops the work.
"""

from __future__ import annotations

import json
from typing import AsyncIterator

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send


def event(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


class EventStream(StreamingResponse):
    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[str]) -> None:
        super().__init__(events, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

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
