"""Plain-Python services (no Gradio): the UI, the CLI, the API and Spaces all call these."""

from ..errors import GenerationError, ModelLoadError
from .image import ImageResult, ImageService
from .lanes import Lanes, QueueFull
from .registry import LoadedModel, ModelRegistry
from .requests import ImageRequest, SamplingSettings, TextRequest, TranslationRequest
from .text import TextService, TextStream
from .translation import TranslatedLine, TranslationResult, TranslationService

__all__ = ["GenerationError", "ImageRequest", "ImageResult", "ImageService", "Lanes", "LoadedModel", "ModelLoadError",
           "ModelRegistry", "QueueFull", "SamplingSettings", "TextRequest", "TextService", "TextStream",
           "TranslatedLine", "TranslationRequest", "TranslationResult", "TranslationService"]


def service_for(task: str, registry: ModelRegistry, **settings):
    """The service object of a task, as the family table names it (families.TASKS[task].service), given the
    settings its table entry lists."""
    import importlib

    from ..families import TASKS

    module, _, cls = TASKS[task].service.partition(":")
    wanted = {k: settings[k] for k in TASKS[task].service_settings if k in settings}
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)(registry, **wanted)
