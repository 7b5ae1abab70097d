"""Gradio UI: one module per tab, `build_demo`, which composes them, and `launch`, which serves them with the /v1
routes. No model code here."""

from .app import build_demo, launch

__all__ = ["build_demo", "launch"]
