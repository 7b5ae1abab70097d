"""Model work in its own process per device (`--engine process`): worker.py is the engine process, client.py the
web server's handle on it (calls, answers, crashes and restarts), services.py the registry and services the app
uses in its place. The typed requests of services/requests.py cross the pipe as they are."""

from .client import Engine, EngineStopped
from .services import (EngineImageService, EngineRegistry, EngineTextService, EngineTranslationService)

__all__ = ["Engine", "EngineImageService", "EngineRegistry", "EngineStopped", "EngineTextService",
           "EngineTranslationService"]
