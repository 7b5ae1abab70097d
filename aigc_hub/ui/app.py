"""`build_demo`: compose the tabs into one Gradio app (the local app, the CLI's `serve` and Spaces all use it).

The tabs are those of the family table (families.TASKS: one per task, each built by its module under aigc_hub.ui),
then the admin tabs.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import gradio as gr

from .. import hub
from ..config import AppConfig
from ..errors import ConfigError
from ..families import ADMIN_TABS, TASKS, tab_keys
from ..services import ModelRegistry
from .common import ui_context

logger = logging.getLogger("aigc_hub.ui")


def tab_builders() -> dict[str, tuple[str, str]]:
    """tab key → (title, module under aigc_hub.ui)."""
    return {**{key: (task.title, task.tab) for key, task in TASKS.items()}, **ADMIN_TABS}


class CheckedBlocks(gr.Blocks):
    """Blocks that refuse a raw-API call with too few input values in one line (Gradio raises a ValueError and
    prints its traceback, with every component's repr, in the server log)."""

    def validate_inputs(self, block_fn: Any, inputs: list[Any]) -> None:
        if len(inputs) < len(block_fn.inputs):
            raise gr.Error(f"{block_fn.name or 'this endpoint'} takes {len(block_fn.inputs)} input values, got "
                           f"{len(inputs)}", print_exception=False)
        super().validate_inputs(block_fn, inputs)


def build_demo(config: AppConfig | None = None, registry: ModelRegistry | None = None,
               tabs: list[str] | None = None) -> gr.Blocks:
    config = config or AppConfig.load()
    registry = registry or ModelRegistry(config.devices, config.batching, config.batch_window_ms, config.max_batch,
                                         config.backends)
    try:  # finish what pushes killed mid-way left behind, once, before anything reads the hub
        hub.recover()
    except OSError as e:  # a read-only hub (a Space's baked-in models) is served as it is
        logger.warning("could not tidy the local hub %s: %s", hub.hub_home(), e)
    ctx = ui_context(config, registry)
    tabs = tabs or config.tabs
    builders = tab_builders()
    unknown = [t for t in tabs if t not in builders]
    if unknown:
        raise ConfigError(f"unknown tab(s) {unknown}: choose from {', '.join(tab_keys())}")
    with CheckedBlocks(title="AIGC Hub", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# AIGC Hub\nGenerate with the models in your hub. Every result carries its seed.")
        with gr.Tabs():
            for key in tabs:
                title, module = builders[key]
                with gr.Tab(title, id=key, elem_id=f"tab-{key}") as tab:
                    importlib.import_module(f"{__package__}.{module}").build(ctx, tab)
    # Bounded: requests beyond it are refused at once (core.Capacity sizes it beside the lanes).
    demo.queue(max_size=ctx.capacity.queue, default_concurrency_limit=1)
    demo.aigc_context = ctx  # for launch(): the /v1 routes serve the same services and lanes
    return demo


def launch(demo: gr.Blocks, config: AppConfig, **options) -> None:
    """Start serving `demo` (from build_demo) without blocking: the tabs and their Gradio API, the OpenAI-compatible
    /v1 routes on the same port, API keys, MCP. `options` go to Gradio's launch (quiet, ...)."""
    from starlette.middleware import Middleware

    from ..api import LoginGate, McpKeys, Throttle, gradio_auth, openai_routes, timeouts

    keys = config.api_keys
    warning = exposure_warning(config)
    if warning:
        print(warning, file=sys.stderr)
    throttle = Throttle()  # failed keys and logins per client address, /v1, MCP and the login page together
    app_kwargs: dict = {"routes": openai_routes(demo.aigc_context, keys, throttle), "middleware": []}
    if keys:
        app_kwargs["middleware"].append(Middleware(LoginGate, throttle=throttle))
    if keys and config.mcp:
        app_kwargs["middleware"].append(Middleware(McpKeys, keys=keys, throttle=throttle))
    timeouts.install()  # a client that sends a request slowly is cut off (slowloris)
    # max_file_size: Gradio refuses a larger upload while receiving it (413), and keeps nothing of it.
    # _frontend=False skips Gradio's second reachability probe (a HEAD of the page with a 3 s timeout, which failed
    # "localhost is not accessible" on a busy 2-core machine while a preload imported a model); its own GET of
    # startup-events, with no timeout, has already shown that the server answers on this address.
    demo.launch(_frontend=False, server_name=config.host, server_port=config.port, show_error=True, share=config.share,
                root_path=config.root_path or None, prevent_thread_lock=True, auth=gradio_auth(keys),
                app_kwargs=app_kwargs, mcp_server=config.mcp or None, max_file_size=config.max_upload_mb << 20,
                **options)
    if keys and config.mcp:
        _log_in_mcp(demo, keys[0])


def exposure_warning(config: AppConfig) -> str | None:
    """What to say when the app is served beyond this machine (another address, a share link) without a key."""
    from ..api import LOOPBACK

    if config.api_keys or (config.host in LOOPBACK and not config.share):
        return None
    where = "a public share link" if config.share else config.host
    return (f"warning: serving on {where} without an API key: anyone who can reach it can use it (--api-key KEY, "
            "or AIGC_HUB_API_KEYS; README: Deploying publicly)")


def _log_in_mcp(demo: gr.Blocks, key: str) -> None:
    """Gradio's MCP server runs each tool call through its own gradio_client, which would be refused by the login
    an API key puts in front of the app: give it a client that has logged in (a request reaches it only with a key,
    see api.McpKeys). Gradio 6.31 keeps that client in `_client_instance`, made on first use."""
    from gradio_client import Client

    server = demo.mcp_server_obj
    server._client_instance = Client(demo.local_url, auth=("mcp", key), download_files=False, verbose=False,
                                     analytics_enabled=False, _skip_components=False,
                                     headers={"x-gradio-user": "mcp"})
