"""`build_demo`: compose the tabs into one Gradio app (the local app, the CLI's `serve` and Spaces all use it)."""

from __future__ import annotations

import gradio as gr

from ..config import AppConfig
from ..services import ImageService, ModelRegistry, TextService, TranslationService
from . import image_tab, models_tab, text_tab, translation_tab
from .common import AppContext

TABS = {"image": ("Image", image_tab.build), "text": ("Text", text_tab.build),
        "translation": ("Translation", translation_tab.build), "models": ("Models", models_tab.build)}


def build_demo(config: AppConfig | None = None, registry: ModelRegistry | None = None,
               tabs: list[str] | None = None) -> gr.Blocks:
    config = config or AppConfig.load()
    registry = registry or ModelRegistry(config.devices)
    ctx = AppContext(config, registry, ImageService(registry, max_images=config.max_images), TextService(registry),
                     TranslationService(registry))
    tabs = tabs or config.tabs
    unknown = [t for t in tabs if t not in TABS]
    if unknown:
        raise ValueError(f"unknown tab(s) {unknown}: choose from {list(TABS)}")
    with gr.Blocks(title="AIGC Hub", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# AIGC Hub\nGenerate with the models in your hub. Every result carries its seed.")
        with gr.Tabs():
            for key in tabs:
                title, build = TABS[key]
                with gr.Tab(title, id=key, elem_id=f"tab-{key}") as tab:
                    build(ctx, tab)
    demo.queue(max_size=config.queue_size, default_concurrency_limit=1)
    return demo
