"""What the tabs share: turning service errors into messages the user sees, and the hub listing."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

import gradio as gr

from .. import hub
from ..config import AppConfig
from ..services import ImageService, ModelRegistry

logger = logging.getLogger("aigc_hub.ui")


@dataclass
class AppContext:
    """Everything a tab needs, built once per app: settings, the shared model registry, the services."""

    config: AppConfig
    registry: ModelRegistry
    image: ImageService
    extra: dict[str, Any] = field(default_factory=dict)

    def models(self, pipeline_tag: str | None = None) -> list[hub.ModelEntry]:
        entries = hub.list_models(self.config.extra_models)
        return [e for e in entries if pipeline_tag is None or e.card.pipeline_tag == pipeline_tag]


def user_errors(fn: Callable) -> Callable:
    """Bad input and unloadable models become a visible gr.Error; anything else is logged and reported briefly."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except ValueError as e:  # HubError, ModelLoadError, GenerationError, DeviceError
            raise gr.Error(str(e), print_exception=False) from None
        except Exception as e:
            logger.exception("request failed")
            raise gr.Error(f"internal error ({type(e).__name__}); the server log has details",
                           print_exception=False) from None

    return wrapper


def card_markdown(entry: hub.ModelEntry | None) -> str:
    if entry is None:
        return "_Model not found in the hub listing._"
    return f"**{entry.card.title or entry.ref}** ({entry.source}) — {entry.card.summary()}"
