"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with the HTTP status clients expect.

The project's error base decides the status: a `UserError` is the client's (400), except a full queue (429) and a
model that cannot be loaded (503); a model the hub does not list is 404 and a missing or wrong key 401 (raised here
as `ApiError`). Anything else is a bug of ours: logged with a short id (errors.report_internal), 500.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse

from ..errors import ModelLoadError, UserError, report_internal
from ..services.lanes import QueueFull

logger = logging.getLogger("aigc_hub.api")

TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
         413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "server_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": TYPES.get(self.status, "invalid_request_error"),
                          "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def api_error(error: BaseException, where: str = "request") -> ApiError:
    """The ApiError a client gets for `error`."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, QueueFull):
        return ApiError(429, str(error), code="queue_full")
    if isinstance(error, ModelLoadError):
        return ApiError(503, str(error), param="model", code="model_not_loaded")
    if isinstance(error, UserError):
        return ApiError(400, str(error))
    return ApiError(500, report_internal(logger, error, where), code="internal_error")
