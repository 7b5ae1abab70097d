"""What the tabs share: turning service errors into messages the user sees, and the hub listing."""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gradio as gr

from .. import hub
from ..config import AppConfig
from ..services import ImageService, ModelRegistry, TextService, TranslationService

logger = logging.getLogger("aigc_hub.ui")
SCRATCH_TTL_S = 3600


@dataclass
class AppContext:
    """Everything a tab needs, built once per app: settings, the shared model registry, the services."""

    config: AppConfig
    registry: ModelRegistry
    image: ImageService
    text: TextService
    translation: TranslationService
    scratch_root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="aigc-hub-")))

    def __post_init__(self) -> None:
        atexit.register(shutil.rmtree, self.scratch_root, True)

    def scratch(self, prefix: str) -> Path:
        """A fresh folder for one request's files; Gradio copies what it serves, so folders older than an hour
        are deleted here and the whole root when the app exits."""
        cutoff = time.time() - SCRATCH_TTL_S
        for old in self.scratch_root.iterdir():
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.scratch_root))

    def models(self, pipeline_tag: str | None = None) -> list[hub.ModelEntry]:
        entries = hub.list_models(self.config.extra_models)
        return [e for e in entries if pipeline_tag is None or e.card.pipeline_tag == pipeline_tag]


def user_errors(fn: Callable) -> Callable:
    """Bad input and unloadable models become a visible gr.Error; anything else is logged and reported briefly."""

    def translate(e: Exception) -> gr.Error:
        if isinstance(e, gr.Error):
            return e
        if isinstance(e, ValueError):  # HubError, ModelLoadError, GenerationError, DeviceError
            return gr.Error(str(e), print_exception=False)
        logger.exception("request failed")
        return gr.Error(f"internal error ({type(e).__name__}); the server log has details", print_exception=False)

    if inspect.isgeneratorfunction(fn):  # streaming handlers fail while iterated, not when called

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:
                raise translate(e) from None

        return stream

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:
            raise translate(e) from None

    return wrapper


def on_gpu(fn: Callable) -> Callable:
    """`spaces.GPU(fn)` where the `spaces` package is importable (ZeroGPU Spaces attach a GPU only inside such
    functions, and it is a no-op on other hardware); `fn` itself everywhere else."""
    try:
        import spaces  # type: ignore[import-not-found]
    except ImportError:
        return fn
    gpu = getattr(spaces, "GPU", None)  # (this repository's own spaces/ folder is importable from its root)
    return gpu(fn) if callable(gpu) else fn


def known_model(ctx: AppContext, ref: object, pipeline_tag: str) -> str:
    """`ref` if the hub lists it for this task now (models pushed while the app runs count); else a clear error."""
    if not isinstance(ref, str) or ref not in {e.ref for e in ctx.models(pipeline_tag)}:
        raise gr.Error(f"unknown model {str(ref)[:100]!r} for this tab: pick one from the list (↻ refreshes it)",
                       print_exception=False)
    return ref


def card_markdown(entry: hub.ModelEntry | None) -> str:
    if entry is None:
        return "_Model not found in the hub listing._"
    return f"**{entry.card.title or entry.ref}** ({entry.source}) — {entry.card.summary()}"
