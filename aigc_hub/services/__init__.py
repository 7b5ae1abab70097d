"""Plain-Python services (no Gradio): the UI, the CLI, the API and Spaces all call these."""

from .image import GenerationError, ImageResult, ImageService
from .registry import LoadedModel, ModelLoadError, ModelRegistry
from .text import SamplingSettings, TextService, TextStream
from .translation import TranslatedLine, TranslationResult, TranslationService

__all__ = ["GenerationError", "ImageResult", "ImageService", "LoadedModel", "ModelLoadError", "ModelRegistry",
           "SamplingSettings", "TextService", "TextStream", "TranslatedLine", "TranslationResult",
           "TranslationService"]
