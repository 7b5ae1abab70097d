"""The OpenAI-compatible REST face of the app, served by the Gradio server on its port (`routes`), and its API keys.

Thin: each route reads and checks its body (body.py), then calls the same services, device lanes and queue bounds as
the tabs. Blocking work (waiting for a lane, a stream's next piece) runs on the API's own threads, so that many open
streams do not take the threads Gradio's handlers run on.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from typing import Any, Awaitable, Callable, Iterator

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..core import UnknownModel, WrongTask
from . import media_routes, text_routes, timeouts
from .errors import ApiError, api_error
from .guards import LoginGate, Throttle, client_of

__all__ = ["Api", "LoginGate", "McpKeys", "Throttle", "check_bearer", "gradio_auth", "openai_routes", "timeouts"]
logger = logging.getLogger("aigc_hub.api")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
Handler = Callable[[Any, Request], Awaitable[Response]]


def key_matches(given: str, keys: list[str]) -> bool:
    return any(hmac.compare_digest(given.encode(), key.encode()) for key in keys)


def gradio_auth(keys: list[str]) -> Callable[[str, str], bool] | None:
    """Gradio's `auth` for an app with API keys: any user name, an API key as the password."""
    return (lambda user, password: key_matches(password, keys)) if keys else None


class Api:
    def __init__(self, ctx: Any, keys: list[str] | None = None, throttle: Throttle | None = None) -> None:
        self.ctx, self.keys = ctx, list(keys or [])
        self.throttle = throttle or Throttle()
        # Threads for blocking work: one per request in flight or waiting on a lane, and a few for the listings.
        self.limiter = anyio.CapacityLimiter(ctx.capacity.api_threads)

    async def work(self, fn: Callable, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def model(self, ref: object, task: str) -> str:
        """`ref` when the hub lists it for `task` (blocking: reads the hub listing); the core's refusal in
        OpenAI's words otherwise."""
        if not isinstance(ref, str) or not ref.strip():
            raise ApiError(400, "'model' must name a model (GET /v1/models lists them)", param="model")
        try:
            return self.ctx.check(ref, task)
        except WrongTask as e:
            raise ApiError(400, f"{ref} is a model for {e.serves}; this route serves {task} models", param="model",
                           code="wrong_model_task") from None
        except UnknownModel:
            raise ApiError(404, f"the hub lists no {task} model {ref[:100]!r} (GET /v1/models lists them)",
                           param="model", code="model_not_found") from None

    @contextlib.contextmanager
    def admit(self, ref: object, task: str) -> Iterator[str]:
        """The core's admit: the listing check (`model`, its refusal in OpenAI's words), then a slot on the model's
        lane for the block (blocking: in a thread)."""
        checked = self.model(ref, task)
        with self.ctx.lane(checked):
            yield checked

    def authorize(self, request: Request) -> None:
        if not self.keys:
            return
        check_bearer(request.headers.get("authorization", ""), self.keys, self.throttle, client_of(request.scope))

    def endpoint(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            try:
                self.authorize(request)
                return await handler(self, request)
            except Exception as e:
                return api_error(e, request.url.path).response()

        return serve

    def routes(self) -> list[Route]:
        table = [("/v1/models", "GET", media_routes.list_models),
                 ("/v1/models/{model:path}", "GET", media_routes.get_model),
                 ("/v1/completions", "POST", text_routes.completions),
                 ("/v1/chat/completions", "POST", text_routes.chat_completions),
                 ("/v1/images/generations", "POST", media_routes.images),
                 ("/v1/images/edits", "POST", media_routes.image_edits),
                 ("/v1/translations", "POST", media_routes.translations)]
        routes = [Route(path, self.endpoint(handler), methods=[method]) for path, method, handler in table]
        exact = {path: method for path, method, _ in table if "{" not in path}

        async def elsewhere(api: Any, request: Request) -> Response:  # OpenAI-shaped 404 / 405 under /v1
            method = exact.get(request.url.path.rstrip("/"))
            if method:
                raise ApiError(405, f"{request.url.path} takes {method}")
            raise ApiError(404, f"no route {request.url.path[:100]} (this server has {', '.join(exact)})")

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
        return [*routes, Route("/v1/{rest:path}", self.endpoint(elsewhere), methods=methods)]


def check_bearer(header: str, keys: list[str], throttle: Throttle, client: str) -> None:
    """A 401 ApiError unless `header` is `Bearer <one of keys>`; a 429 while `client` has failed too often."""
    throttle.check(client)
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not key_matches(given.strip(), keys):
        throttle.failed(client)
        raise ApiError(401, "a valid API key is needed: send 'Authorization: Bearer <key>'", code="invalid_api_key")


class McpKeys:
    """ASGI middleware: with API keys, Gradio's MCP endpoint (under /gradio_api/mcp) needs `Authorization: Bearer
    <key>` as /v1 does; Gradio's own login covers only its UI and API."""

    def __init__(self, app: Any, keys: list[str], throttle: Throttle) -> None:
        self.app, self.keys, self.throttle = app, keys, throttle

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and "/gradio_api/mcp" in scope.get("path", ""):
            header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            try:
                check_bearer(header, self.keys, self.throttle, client_of(scope))
            except ApiError as refusal:
                await refusal.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def openai_routes(ctx: Any, keys: list[str] | None = None, throttle: Throttle | None = None) -> list[Route]:
    """The /v1 routes for an app context (core.AppContext), protected by `keys` when there are any."""
    return Api(ctx, keys, throttle).routes()
