"""What an image request returns: the images with their seeds and labels, and the A1111-style parameters each PNG
carries so that it says how to make it again; the interpolation's animated GIF."""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from .. import __version__
from ..imaging import png_bytes, to_pil
from ..models.text_to_image import PromptRequest


@dataclass
class ImageResult:
    images: np.ndarray  # (N, H, W, C) uint8
    seeds: list[int]
    labels: list[int | None]
    model: str
    seed: int  # the resolved base seed
    parameters: list[str] = field(default_factory=list)  # A1111-style text, one per image
    steps: int = 1
    sampler: str = "DCGAN"
    request: PromptRequest | None = None  # text-to-image: the prompt and the rest
    edit: str = ""  # what an edit adds to the parameters (input, strength, mask), the same for every image

    def pil(self, i: int) -> Image.Image:
        return to_pil(self.images[i])

    def png(self, i: int) -> bytes:
        return png_bytes(self.pil(i), self.parameters[i])

    def grid_parameters(self) -> str:
        """The text of a grid of all images: its base seed and count, and a label only when every image has it."""
        one_label = len(set(self.labels)) == 1
        labels = "" if one_label else ", Labels: one per image (each PNG names its own)"
        return (parameters_text(self.model, self.seed, self.labels[0] if one_label else None, self.images.shape[2],
                                self.steps, self.sampler, self.request, self.images.shape[1], self.edit)
                + f", Seeds: seed + i{labels}, Count: {len(self.seeds)}")


def parameters_text(ref: str, seed: int, label: int | None, width: int, steps: int = 1, sampler: str = "DCGAN",
                    request: PromptRequest | None = None, height: int | None = None, extra: str = "") -> str:
    """A1111-style generation parameters, as stored in each PNG's `parameters` text chunk: the prompt on the first
    line and the negative prompt on the second (text-to-image), then the settings; `extra` (", Name: value" pairs:
    an edit's input, a variation's seed) before the model."""
    label_part = f", Label: {label}" if label is not None else ""
    head, cfg = "", ""
    if request is not None:
        negative = f"Negative prompt: {request.negative_prompt}\n" if request.negative_prompt else ""
        head, cfg = f"{request.prompt}\n{negative}", f", CFG scale: {request.guidance_scale:g}"
    return (f"{head}Steps: {steps}, Sampler: {sampler}{cfg}, Seed: {seed}, Size: {width}x{height or width}{extra}, "
            f"Model: {ref}{label_part}, Version: aigc-hub {__version__}")


def gif_bytes(images: np.ndarray, scale: int = 4, ms_per_frame: int = 80) -> bytes:
    """An animated GIF that plays the frames forward then back, upscaled (nearest) so small images are visible."""
    pil = [to_pil(img).convert("RGBA" if img.shape[-1] == 4 else "RGB") for img in images]
    pil = [p.resize((p.width * scale, p.height * scale), Image.Resampling.NEAREST) for p in pil]
    sequence = pil + pil[-2:0:-1]
    buf = io.BytesIO()
    sequence[0].save(buf, format="GIF", save_all=True, append_images=sequence[1:], duration=ms_per_frame, loop=0,
                     disposal=2)
    return buf.getvalue()
