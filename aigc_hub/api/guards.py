"""What stands between an anonymous client and the app when it has API keys: a failed-login throttle, and a login
page that tells nothing about the app (ASGI middleware; no Gradio import).

- `Throttle`: failed key checks and logins per client address in a sliding window; past the limit, that address is
  answered 429 until the window has room again, so a key cannot be guessed at network speed.
- `LoginGate`: Gradio renders its page for an anonymous visitor with `window.gradio_api_info` inlined: every
  endpoint, every model id in its dropdowns' choices, the folders of added models. With keys, the gate empties it on
  the pages that inline it for anyone who has not logged in (`/gradio_api/info` itself already needs the login).
"""

from __future__ import annotations

import collections
import re
import threading
import time
from typing import Any

from .errors import ApiError

LOGIN_PATH = "/login"
# The pages Gradio renders with the API inlined (the app, its run-history page).
API_PAGES = ("", "/gradio_api/runs")
_API_INFO = re.compile(rb"(window\.gradio_api_info = ).*?(;</script>)", re.DOTALL)
_NO_API = rb'\1{"named_endpoints": {}, "unnamed_endpoints": {}}\2'


class Throttle:
    """At most `failures` failed attempts per client address within `window_s` seconds."""

    def __init__(self, failures: int = 10, window_s: float = 60.0, max_clients: int = 10_000) -> None:
        self.failures, self.window_s, self.max_clients = failures, window_s, max_clients
        self._seen: dict[str, collections.deque] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> collections.deque:
        times = self._seen.get(client)
        if times is None:
            if len(self._seen) >= self.max_clients:  # forget addresses with no recent failure first
                for key in [k for k, v in self._seen.items() if not v or v[-1] < now - self.window_s]:
                    del self._seen[key]
            times = self._seen[client] = collections.deque()
        while times and times[0] < now - self.window_s:
            times.popleft()
        return times

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            times = self._recent(client, now)
            return int(times[0] + self.window_s - now) + 1 if len(times) >= self.failures else 0

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client, time.monotonic()).append(time.monotonic())

    def check(self, client: str) -> None:
        """Raise a 429 ApiError while `client` is over the limit."""
        wait = self.retry_after(client)
        if wait:
            raise ApiError(429, f"too many failed attempts with a key from this address: try again in {wait} s",
                           code="too_many_failed_attempts", headers={"Retry-After": str(wait)})


def client_of(scope: dict) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class LoginGate:
    """ASGI middleware for an app with keys: the throttle on Gradio's /login, and the API emptied from the pages
    an anonymous visitor gets."""

    def __init__(self, app: Any, throttle: Throttle) -> None:
        self.app, self.throttle = app, throttle

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "").rstrip("/")
        if path == LOGIN_PATH and scope.get("method") == "POST":
            await self._login(scope, receive, send)
        elif path in API_PAGES and scope.get("method") in ("GET", "HEAD") and not _logged_in(scope):
            await self._anonymous_page(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _login(self, scope: dict, receive: Any, send: Any) -> None:
        client = client_of(scope)
        try:
            self.throttle.check(client)
        except ApiError as e:
            await e.response()(scope, receive, send)
            return

        async def counted(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                self.throttle.failed(client)  # Gradio answers a wrong password 400
            await send(message)

        await self.app(scope, receive, counted)

    async def _anonymous_page(self, scope: dict, receive: Any, send: Any) -> None:
        start: dict = {}
        body = bytearray()

        async def buffered(message: dict) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body", False):
                    page = _API_INFO.sub(_NO_API, bytes(body))
                    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
                    headers.append((b"content-length", str(len(page)).encode()))
                    await send({**start, "headers": headers})
                    await send({"type": "http.response.body", "body": page if scope["method"] == "GET" else b""})
                return
            await send(message)

        await self.app(scope, receive, buffered)


def _logged_in(scope: dict) -> bool:
    """Whether the request carries a token of Gradio's login (Gradio's App keeps them in `tokens`)."""
    app = scope.get("app")
    tokens, cookie_id = getattr(app, "tokens", None), getattr(app, "cookie_id", None)
    if tokens is None or cookie_id is None:
        return False  # not Gradio's app: nothing to tell anyone
    cookies = {}
    for name, value in scope.get("headers") or []:
        if name == b"cookie":
            for part in value.decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                cookies[key] = val
    token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
    return bool(token) and token in tokens
