"""ImageService: generate images from a GAN checkpoint with reproducible seeds. No Gradio here.

Seeds: −1 becomes a concrete random seed before anything runs and is returned. Item *i* of a request uses noise
drawn from `seed + i` alone, so image *i* is the same whatever the batch size, and any single image can be made
again from its own seed with `num=1`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .. import __version__
from ..errors import GenerationError
from ..imaging import png_bytes, to_pil, to_uint8
from ..validation import MAX_SEED, as_int, count, resolve_seed
from .registry import LoadedModel, ModelRegistry

TASK = "image"
MAX_IMAGES = 100_000  # per call; the UI and API allow far fewer
BATCH = 256  # generator forward size; bounds memory for large requests
Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class ImageResult:
    images: np.ndarray  # (N, H, W, C) uint8
    seeds: list[int]
    labels: list[int | None]
    model: str
    seed: int  # the resolved base seed
    parameters: list[str] = field(default_factory=list)  # A1111-style text, one per image

    def pil(self, i: int) -> Image.Image:
        return to_pil(self.images[i])

    def png(self, i: int) -> bytes:
        return png_bytes(self.pil(i), self.parameters[i])

    def grid_parameters(self) -> str:
        """The text of a grid of all images: its base seed and count, and a label only when every image has it."""
        one_label = len(set(self.labels)) == 1
        labels = "" if one_label else ", Labels: one per image (each PNG names its own)"
        return (parameters_text(self.model, self.seed, self.labels[0] if one_label else None, self.images.shape[1])
                + f", Seeds: seed + i{labels}, Count: {len(self.seeds)}")


def noise(seeds: list[int], latent_dim: int) -> torch.Tensor:
    """One latent vector per seed, each from its own generator (batch-size independent)."""
    return torch.stack([torch.randn(latent_dim, generator=torch.Generator().manual_seed(s % 2**64)) for s in seeds])


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: Gaussian latents keep their norm along the path (a straight line would shrink it)."""
    cos = torch.clamp((a / a.norm()) @ (b / b.norm()), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


class ImageService:
    def __init__(self, registry: ModelRegistry | None = None, max_images: int = MAX_IMAGES) -> None:
        self.registry = registry or ModelRegistry()
        self.max_images = max_images

    def _label(self, entry: LoadedModel, label: object) -> int | None:
        if label is None or (isinstance(label, str) and not label.strip()):
            return None
        value = as_int(label, "label")
        classes = entry.config.get("num_classes", 0)
        if value == -1:
            return None
        if not classes:
            raise GenerationError(f"{entry.ref} is unconditional: it takes no label")
        if not 0 <= value < classes:
            raise GenerationError(f"label must be between 0 and {classes - 1} for {entry.ref}, got {value}")
        return value

    def _forward(self, entry: LoadedModel, z: torch.Tensor, labels: list[int | None]) -> np.ndarray:
        model = entry.model
        weights = next(model.parameters())  # inputs go where the weights are (entry.device names the lane)
        y = None
        if entry.config.get("num_classes", 0):
            y = torch.tensor(labels, device=weights.device)

        @torch.no_grad()  # grad mode is per thread: set it on the worker that runs the forward
        def forward() -> np.ndarray:
            return to_uint8(model(z.to(weights.device, weights.dtype), y))

        return self.registry.run(entry.device, forward)

    def generate(
        self,
        ref: str,
        num: int = 1,
        seed: int | None = -1,
        label: int | None = None,
        progress: Progress | None = None,
    ) -> ImageResult:
        """`num` images; with a conditional model and no label, item i shows class i mod num_classes."""
        n = count(num, self.max_images, "number of images")
        base = resolve_seed(seed)
        if base + n - 1 > MAX_SEED:
            raise GenerationError(f"seed + count must stay ≤ {MAX_SEED}")
        entry = self.registry.get_for(ref, TASK)
        fixed = self._label(entry, label)
        classes = entry.config.get("num_classes", 0)
        seeds = list(range(base, base + n))
        labels = [fixed if fixed is not None else (i % classes if classes else None) for i in range(n)]
        chunks = []
        for start in range(0, n, BATCH):
            z = noise(seeds[start : start + BATCH], entry.config["latent_dim"])
            chunks.append(self._forward(entry, z, labels[start : start + BATCH]))
            if progress:
                progress(min(start + BATCH, n), n)
        images = np.concatenate(chunks)
        res = entry.config["resolution"]
        params = [parameters_text(ref, s, lab, res) for s, lab in zip(seeds, labels)]
        return ImageResult(images, seeds, labels, ref, base, params)

    def interpolate(
        self, ref: str, seed_a: int, seed_b: int, frames: int = 16, label: int | None = None
    ) -> tuple[np.ndarray, bytes]:
        """Frames along the slerp path from seed_a's latent to seed_b's, and the animated GIF (there and back)."""
        a, b = resolve_seed(seed_a), resolve_seed(seed_b)
        frames = count(frames, 120, "number of frames")
        entry = self.registry.get_for(ref, TASK)
        fixed = self._label(entry, label)
        classes = entry.config.get("num_classes", 0)
        za, zb = noise([a, b], entry.config["latent_dim"])
        ts = [i / max(1, frames - 1) for i in range(frames)]
        z = torch.stack([slerp(za, zb, t) for t in ts])
        lab = fixed if fixed is not None else (0 if classes else None)
        images = self._forward(entry, z, [lab] * frames)
        return images, gif_bytes(images)


def parameters_text(ref: str, seed: int, label: int | None, resolution: int) -> str:
    """A1111-style generation parameters, as stored in each PNG's `parameters` text chunk."""
    label_part = f", Label: {label}" if label is not None else ""
    return (f"Steps: 1, Sampler: DCGAN, Seed: {seed}, Size: {resolution}x{resolution}, Model: {ref}"
            f"{label_part}, Version: aigc-hub {__version__}")


def gif_bytes(images: np.ndarray, scale: int = 4, ms_per_frame: int = 80) -> bytes:
    """An animated GIF that plays the frames forward then back, upscaled (nearest) so small images are visible."""
    pil = [to_pil(img).convert("RGBA" if img.shape[-1] == 4 else "RGB") for img in images]
    pil = [p.resize((p.width * scale, p.height * scale), Image.Resampling.NEAREST) for p in pil]
    sequence = pil + pil[-2:0:-1]
    buf = io.BytesIO()
    sequence[0].save(buf, format="GIF", save_all=True, append_images=sequence[1:], duration=ms_per_frame, loop=0,
                     disposal=2)
    return buf.getvalue()
