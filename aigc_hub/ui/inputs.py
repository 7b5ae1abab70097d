"""Number, Slider and Dropdown inputs that refuse a hostile API value with a clear message, no server traceback.

Gradio's own preprocessing fails on a string, a list, NaN or infinity with a TypeError / OverflowError, which it
prints with its traceback in the server log and reports as "Could not preprocess input component …"; its own
refusals (a value out of a slider's range, a choice a dropdown does not list) print their traceback too. Raw-API
clients reach these inputs without the browser's checks; these subclasses check first and answer as any other bad
input is answered. (Gradio picks the frontend component by class name, so they render exactly as the stock ones.)
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr


def _check(component: gr.Number | gr.Slider, payload: Any, *, optional: bool) -> None:
    name = component.label or "value"
    if payload is None and optional:
        return
    if isinstance(payload, bool) or not isinstance(payload, (int, float)) or not math.isfinite(payload):
        raise gr.Error(f"{name}: a finite number is needed, got {str(payload)[:40]!r}", print_exception=False)
    low, high = component.minimum, component.maximum
    if (low is not None and payload < low) or (high is not None and payload > high):
        bounds = (f"at least {low}" if high is None else f"at most {high}" if low is None
                  else f"between {low} and {high}")
        raise gr.Error(f"{name}: {payload:g} is out of range ({bounds})", print_exception=False)


def _quietly(preprocess: Any, payload: Any) -> Any:
    """Gradio's own refusal, without the traceback it would print."""
    try:
        return preprocess(payload)
    except gr.Error as e:
        raise gr.Error(e.message, print_exception=False) from None


class Number(gr.Number):
    def preprocess(self, payload: Any) -> float | int | None:
        _check(self, payload, optional=True)  # empty means the handler's default (a seed of -1, say)
        return _quietly(super().preprocess, payload)


class Slider(gr.Slider):
    def preprocess(self, payload: Any) -> float:
        _check(self, payload, optional=False)
        return _quietly(super().preprocess, payload)


class Dropdown(gr.Dropdown):
    def preprocess(self, payload: Any) -> Any:
        return _quietly(super().preprocess, payload)
