"""The typed requests of each task: plain values, no Gradio and no HTTP, that every front end (the tabs, /v1, MCP
through the tabs, the CLI) builds from its own wire format and hands to the task's service (`run`). The services
own what a request means: its checks against the one parameter spec (params.py), seeds, n choices, stop strings,
chat messages. Being plain data, a request can cross a process boundary as it is.

Values are kept as the client sent them (a seed of -1, a label by name, a size left empty): the service checks and
resolves them, so that every front end gets the same refusal for the same value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .params import TEXT


@dataclass
class SamplingSettings:
    max_new_tokens: int = TEXT["max_new_tokens"].default  # type: ignore[assignment]
    temperature: float = TEXT["temperature"].default
    top_k: int = TEXT["top_k"].default  # type: ignore[assignment]
    top_p: float = TEXT["top_p"].default
    repetition_penalty: float = TEXT["repetition_penalty"].default
    stop: list[str] = field(default_factory=list)  # each ends the text and is cut from it

    def checked(self) -> "SamplingSettings":
        """Each setting checked against the spec (params.TEXT): the same refusal from every front end."""
        values = [TEXT[name].check(getattr(self, name))
                  for name in ("max_new_tokens", "temperature", "top_k", "top_p", "repetition_penalty")]
        stop = [s for s in (self.stop or []) if isinstance(s, str) and s]
        return SamplingSettings(*values, stop)  # type: ignore[arg-type]


@dataclass
class TextRequest:
    """A prompt to continue, or (a chat) messages to answer with the model's chat template. `messages` as OpenAI
    writes them: system / developer messages first, then user and assistant turns, the content text or text parts;
    `system` adds a system prompt. `n` choices: choice i uses seed + i."""

    model: str
    prompt: str | None = None
    messages: list[dict] | None = None
    system: str | None = None
    settings: SamplingSettings = field(default_factory=SamplingSettings)
    seed: object = -1
    n: object = 1

    @property
    def chat(self) -> bool:
        return self.messages is not None


@dataclass
class ImageRequest:
    """`n` images (image i from seed + i). The label applies to class-conditional models (an id or a class name;
    None or -1: one of each class in turn), steps and sampler to diffusion models, the prompt, negative prompt,
    guidance scale and size to text-to-image pipelines (None: the model's defaults). Diffusion models (both kinds)
    also edit a picture given as `image` (editing.py has the rules)."""

    model: str
    n: object = 1
    seed: object = -1
    label: object = None
    steps: object = None
    sampler: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    guidance_scale: object = None
    width: object = None
    height: object = None
    image: object = None  # editing: the picture to start from (encoded bytes, a PIL image or uint8 pixels)
    mask: object = None  # inpainting: the input's size, white repainted, black kept
    strength: object = None  # how much is redrawn (None: 0.75 for image-to-image, 1 with a mask or outpainting)
    outpaint: object = None  # pixels added LEFT,TOP,RIGHT,BOTTOM, then repainted
    variation_seed: object = None  # variations: image i blends seed's noise with variation_seed + i's
    variation_strength: object = None


@dataclass
class TranslationRequest:
    """Lines to translate (a list, or text with one sentence per line) from `src` into `tgt`; beam search with
    `beams` beams, `n_best` alternatives per line."""

    model: str
    lines: object
    src: str
    tgt: str
    beams: object = 4
    n_best: object = 1
