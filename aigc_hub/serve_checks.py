"""What `serve` checks before it loads anything, and what it prints once the app serves."""

from __future__ import annotations

import socket

from .config import AppConfig
from .errors import ConfigError
from .families import TASKS


def busy_port(config: AppConfig) -> str:
    return (f"port {config.port} on {config.host} is in use: choose another with --port N (or AIGC_HUB_PORT / "
            "GRADIO_SERVER_PORT)")


def before_loading(config: AppConfig) -> None:
    """Refuse, in one line, a port that is in use and a tab model the hub does not list for that tab (it was
    silently replaced by the tab's first model)."""
    with socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is free
        try:
            probe.bind((config.host, config.port))
        except OSError:
            raise ConfigError(busy_port(config)) from None
    from . import added_models

    listed = {e.ref: e for e in added_models.listed([*config.models.values(), *config.extra_models])}
    for task, ref in config.models.items():
        if task not in config.tabs or ref == TASKS[task].default_model:  # a starter a Space left out: the tab's
            continue  # first model stands in, as before
        entry = listed.get(ref)
        flag = f"--{task}-model {ref}"
        if entry is not None and entry.task == task:
            continue
        if entry is not None and entry.task:
            raise ConfigError(f"{flag}: that is a {entry.task} model, not a {task} model")
        raise ConfigError(f"{flag}: no such model in the local hub, the starters or the Hugging Face cache "
                          f"(`python -m aigc_hub list`; `python -m aigc_hub add {ref}` downloads a Hub model first)")


def banner(config: AppConfig, local_url: str, share_url: str | None) -> str:
    lines = [f"* Running on {local_url} (Ctrl-C stops it)"]
    if share_url:
        lines.append(f"* Public link: {share_url}")
    else:
        lines.append("* A public link for a while: --share; for good: python -m aigc_hub space build (README)")
    mcp = f" · MCP: {local_url}gradio_api/mcp/" if config.mcp else ""
    lines.append(f"* OpenAI-compatible API: {local_url}v1{mcp}")
    return "\n".join(lines)
