"""Gradio UI: one module per tab and `build_demo`, which composes them. No model code here."""

from .app import build_demo

__all__ = ["build_demo"]
