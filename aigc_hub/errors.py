"""One base for every error the user caused, and one way to report everything else.

`UserError` and its subclasses carry a message meant for the person who made the request (a bad argument, an unknown
model, a checkpoint that cannot be loaded, a device that is not there). The UI, the CLI and any other face show that
message as it is. Anything else is a bug of ours: `report_internal` logs it with its traceback under a short id and
returns the message the user sees, which names that id so the log line can be found.
"""

from __future__ import annotations

import logging
import uuid


class UserError(ValueError):
    """The request cannot be served as asked; `str(error)` tells the user why, in words they can act on."""


class HubError(UserError):
    """A reference that cannot be resolved, or a push that cannot be done."""


class ModelLoadError(UserError):
    """The model cannot be loaded (pickle-only weights, a broken config, truncated files, an unknown family)."""


class DeviceError(UserError):
    """An unknown or unusable device was asked for."""


class GenerationError(UserError):
    """Bad generation parameters, or a generation that failed for a reason the user can change."""


class ConfigError(UserError):
    """Settings the app cannot start with."""


class SpaceError(UserError):
    """A Space that cannot be built or deployed."""


def report_internal(logger: logging.Logger, error: BaseException, where: str = "request") -> str:
    """Log `error` with its traceback under a short id; return the one-line message the user sees."""
    log_id = uuid.uuid4().hex[:8]
    logger.error("%s failed [log id %s]", where, log_id, exc_info=error)
    return f"internal error ({type(error).__name__}, log id {log_id}); the server log has the details"
