"""Number, Slider, Dropdown and Chatbot inputs that refuse a hostile API value with a clear message, no server traceback.

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
from gradio.components.chatbot import ChatbotDataMessages
from gradio.components.image_editor import EditorData
from pydantic import ValidationError

from ..errors import UserError


def _check(component: gr.Number | gr.Slider, payload: Any, *, optional: bool) -> None:
    name = component.label or "value"
    if payload is None and optional:
        return
    spec = getattr(component, "spec", None)
    if spec is not None:  # a request parameter (services/params.py): its own check and message, as everywhere
        try:
            spec.check(payload)
        except UserError as e:
            raise gr.Error(str(e), print_exception=False) from None
    if isinstance(payload, bool) or not isinstance(payload, (int, float)) or not math.isfinite(payload):
        raise gr.Error(f"{name}: a finite number is needed, got {str(payload)[:40]!r}", print_exception=False)
    low, high = component.minimum, component.maximum
    if (low is not None and payload < low) or (high is not None and payload > high):
        bounds = (f"at least {low}" if high is None else f"at most {high}" if low is None
                  else f"between {low} and {high}")
        raise gr.Error(f"{name}: {payload:g} is out of range ({bounds})", print_exception=False)


def _validated(validate: Any, obj: Any, args: tuple, kwargs: dict, refusal: str) -> Any:
    """A payload model's validation, whose refusal is the user's error in one line (no traceback)."""
    try:
        return validate(obj, *args, **kwargs)
    except ValidationError:
        raise gr.Error(refusal, print_exception=False) from None


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


def spec_slider(spec: Any, label: str, step: float, **kwargs: Any) -> Slider:
    """A slider over a request parameter's whole range (services/params.py), checked by its spec."""
    slider = Slider(spec.lo, spec.hi, step=step, label=label, **{"value": spec.default, **kwargs})
    slider.spec = spec
    return slider


class Dropdown(gr.Dropdown):
    def preprocess(self, payload: Any) -> Any:
        return _quietly(super().preprocess, payload)


class _CheckedMessages(ChatbotDataMessages):
    """Gradio validates a Chatbot's payload against this model before any preprocess, and prints the traceback of a
    payload that is not a list of messages; this one answers with the user's error instead, and takes messages
    whose content is a plain string (as OpenAI-style clients write them)."""

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(obj, list):  # plain-string contents, as API clients write messages, become text parts
            obj = [{**m, "content": [{"type": "text", "text": m["content"]}]}
                   if isinstance(m, dict) and isinstance(m.get("content"), str) else m for m in obj]
        return _validated(super().model_validate, obj, args, kwargs, "chat history: a list of {'role': 'user' | "
                          "'assistant', 'content': text} messages is needed")


class Chatbot(gr.Chatbot):
    data_model = _CheckedMessages


class _CheckedEditorData(EditorData):
    """The image editor's payload, refused in one line when it is not {"background": file, "layers": [files],
    "composite": file} (Gradio validates it before any preprocess and prints the traceback)."""

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Any:
        return _validated(super().model_validate, obj, args, kwargs, "picture: the image editor's value is needed, "
                          "{'background': a picture file, 'layers': [stroke files], 'composite': null}")


class ImageEditor(gr.ImageEditor):
    data_model = _CheckedEditorData

    def preprocess(self, payload: Any) -> Any:
        try:
            return _quietly(super().preprocess, payload)
        except (OSError, ValueError) as e:  # a file that is not a picture Gradio can open
            raise gr.Error(f"picture: not a picture that can be read ({type(e).__name__})",
                           print_exception=False) from None
