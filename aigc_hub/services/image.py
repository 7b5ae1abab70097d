"""ImageService: generate images from a GAN or a diffusion model with reproducible seeds. No Gradio here.

Seeds: −1 becomes a concrete random seed before anything runs and is returned. Item *i* of a request uses noise
drawn from `seed + i` alone (for diffusion: its initial noise and whatever a stochastic sampler adds at each step),
so image *i* is the same whatever the batch size, and any single image can be made again from its own seed with
`num=1`. Diffusion models also take a sampler and a number of steps, report each step, and stop between steps.

Every front end hands a typed ImageRequest (requests.py) to `run`; its values are checked here against the one
parameter spec (params.IMAGE, the count bounded by the app's `max_images`), so a value gets one refusal everywhere.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .. import __version__
from ..errors import GenerationError, UserError
from ..imaging import png_bytes, to_pil, to_uint8
from ..models import adapters, diffusion, text_to_image
from ..models.text_to_image import PromptRequest
from ..validation import MAX_SEED, as_int, check_text, resolve_seed
from .params import IMAGE, MAX_IMAGES, Param
from .registry import LoadedModel, ModelRegistry
from .requests import ImageRequest

TASK = "image"
BATCH = 256  # generator forward size; bounds memory for large requests
DIFFUSION_BATCH = 64  # UNet batch: activations of every block, at every step
PIPELINE_BATCH = 4  # text-to-image pipelines: a batch of 4 at 512 px is already GiBs of activations
Progress = Callable[[int, int], None]  # (done, total): images for a GAN, image-steps for diffusion


class GenerationStopped(UserError):
    """Stop was pressed: the denoising loop ended between two steps."""


@dataclass(frozen=True)
class ImageFacts:
    """What the Image tab and the checks need to know about a model, read without loading its weights."""

    family: str
    num_classes: int  # 0: unconditional
    resolution: int
    channels: int
    class_names: tuple[str, ...] = ()  # names of the labels, when the model's config has them

    @property
    def iterative(self) -> bool:  # takes steps and a sampler
        return self.family in ("diffusion", "text-to-image")

    @property
    def prompted(self) -> bool:  # takes a prompt, a negative prompt, a guidance scale and a size
        return self.family == "text-to-image"


def facts_of(family: str, path: Path, config: dict, unet: dict | None = None, vae: dict | None = None) -> ImageFacts:
    """`unet` (and `vae`): a diffusion model's component configs when already read (a loaded model), else they are
    read from the folder."""
    if family == "text-to-image":
        from ..loaders import pipeline_components

        if unet is None:
            parts = pipeline_components(path, config)
            unet, vae = parts["unet"], parts["vae"]
        return ImageFacts(family, 0, text_to_image.default_size(unet, vae), 3)
    if family == "diffusion":
        from ..loaders import diffusion_parts

        unet = unet if unet is not None else diffusion_parts(path, config)[0]
        size = unet.get("sample_size")
        size = size if isinstance(size, int) else (size or [0])[0]
        return ImageFacts(family, int(unet.get("num_class_embeds") or 0), int(size), int(unet.get("in_channels", 3)))
    return ImageFacts(family, int(config.get("num_classes", 0)), int(config["resolution"]), int(config["channels"]),
                      tuple(str(n) for n in config.get("class_names") or ()))


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

    def pil(self, i: int) -> Image.Image:
        return to_pil(self.images[i])

    def png(self, i: int) -> bytes:
        return png_bytes(self.pil(i), self.parameters[i])

    def grid_parameters(self) -> str:
        """The text of a grid of all images: its base seed and count, and a label only when every image has it."""
        one_label = len(set(self.labels)) == 1
        labels = "" if one_label else ", Labels: one per image (each PNG names its own)"
        return (parameters_text(self.model, self.seed, self.labels[0] if one_label else None, self.images.shape[2],
                                self.steps, self.sampler, self.request, self.images.shape[1])
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
        # The spec with the app's bound on the count: what the tab's controls, /v1 and the checks here read.
        self.params: dict[str, Param] = {**IMAGE, "n": IMAGE["n"].up_to(max_images)}

    def facts(self, ref: str) -> ImageFacts:
        """The model's classes, size and kind, without loading its weights."""
        family, path, config = self.registry.base_folder_of(ref)  # an adapter makes what its base makes
        if family.task != TASK:
            raise GenerationError(f"{ref} is a {family.name} model for {family.task}, not for {TASK}")
        return facts_of(family.name, path, config)

    def _facts(self, entry: LoadedModel) -> ImageFacts:
        # A loaded model's UNet config came with it: no file is read per request.
        return facts_of(entry.kind, entry.path, entry.config, entry.extras.get("unet"), entry.extras.get("vae"))

    def _label(self, entry: LoadedModel, label: object) -> int | None:
        if label is None or (isinstance(label, str) and not label.strip()):
            return None
        facts = self._facts(entry)
        if isinstance(label, str) and label.strip() in facts.class_names:  # a class by its name: "Flags"
            return facts.class_names.index(label.strip())
        try:
            value = as_int(label, "label")
        except GenerationError:
            if not facts.class_names:
                raise
            raise GenerationError(f"label must be a class id or name of {entry.ref} "
                                  f"({', '.join(facts.class_names)}), got {str(label)[:40]!r}") from None
        classes = facts.num_classes
        if value == -1:
            return None
        if not classes:
            raise GenerationError(f"{entry.ref} is unconditional: it takes no label")
        if not 0 <= value < classes:
            raise GenerationError(f"label must be between 0 and {classes - 1} for {entry.ref}, got {value}")
        return value

    def _forward(self, entry: LoadedModel, z: torch.Tensor, labels: list[int | None]) -> np.ndarray:
        """The generator on `z` (one latent per image), batched with other requests' latents for the same model."""
        model = entry.model
        conditional = bool(entry.config.get("num_classes", 0))

        @torch.no_grad()  # grad mode is per thread: set it on the worker that runs the forward
        def forward(items: list[tuple[torch.Tensor, list[int | None]]]) -> list[np.ndarray]:
            weights = next(model.parameters())  # inputs go where the weights are (entry.device names the lane)
            zs = torch.cat([latents for latents, _ in items]).to(weights.device, weights.dtype)
            y = torch.tensor([y for _, ys in items for y in ys], device=weights.device) if conditional else None
            images = to_uint8(model(zs, y))
            return np.split(images, np.cumsum([len(latents) for latents, _ in items])[:-1])

        return self.registry.batcher.call(entry.device, ("gan", entry.ref, id(model)), (z, labels), len(z), forward)

    def _denoise(self, entry: LoadedModel, seeds: list[int], labels: list[int | None], steps: int, sampler: str,
                 noise: torch.Tensor | None = None, on_step: diffusion.StepFn | None = None,
                 stop: threading.Event | None = None) -> np.ndarray:
        """The denoising loop for `seeds`, batched with other requests' seeds of the same model, sampler and steps
        (not for given noise: interpolation). Stop ends the loop when every request in it has stopped; until then a
        stopped request's rows ride along and it returns, stopped, when the batch ends."""
        if noise is not None:
            y = None if labels[0] is None else torch.tensor(labels)

            def alone() -> np.ndarray:
                return to_uint8(diffusion.denoise(entry.model, entry.extras["scheduler"], seeds, steps=steps,
                                                  sampler=sampler, labels=y, noise=noise, on_step=on_step,
                                                  should_stop=stop.is_set if stop else None))

            try:
                return self.registry.run(entry.device, alone)
            except diffusion.Stopped:
                raise GenerationStopped("stopped") from None

        Item = tuple[list[int], list[int | None], diffusion.StepFn | None, threading.Event | None]

        def together(batch: list[Item]) -> list[np.ndarray | None]:
            items = [item for item in batch if not (item[3] and item[3].is_set())]  # stopped while they waited
            if not items:
                raise diffusion.Stopped()
            all_seeds = [s for item in items for s in item[0]]
            all_labels = [lab for item in items for lab in item[1]]
            stops = [item[3] for item in items]

            def each_step(k: int, total: int) -> None:
                for item in items:
                    if item[2]:
                        item[2](k, total)

            images = to_uint8(diffusion.denoise(
                entry.model, entry.extras["scheduler"], all_seeds, steps=steps, sampler=sampler,
                labels=None if all_labels[0] is None else torch.tensor(all_labels), on_step=each_step,
                should_stop=(lambda: all(s.is_set() for s in stops)) if all(stops) else None))
            parts = dict(zip(map(id, items), np.split(images, np.cumsum([len(item[0]) for item in items])[:-1])))
            return [None if item[3] and item[3].is_set() else parts.get(id(item)) for item in batch]

        try:
            images = self.registry.batcher.call(entry.device, ("denoise", entry.ref, id(entry.model), steps, sampler),
                                                (seeds, labels, on_step, stop), len(seeds), together)
        except diffusion.Stopped:
            images = None
        if images is None:
            raise GenerationStopped("stopped")
        return images

    def _run_pipeline(self, entry: LoadedModel, seeds: list[int], request: PromptRequest, steps: int, sampler: str,
                      latents: torch.Tensor | None = None, on_step: diffusion.StepFn | None = None,
                      stop: threading.Event | None = None) -> np.ndarray:
        def run() -> np.ndarray:
            with adapters.switched(entry.model) as pipe:
                return text_to_image.generate(pipe, entry.extras["scheduler"], seeds, request, steps=steps,
                                              sampler=sampler, latents=latents, on_step=on_step,
                                              should_stop=stop.is_set if stop else None)

        try:
            return self.registry.run(entry.device, run)
        except diffusion.Stopped:
            raise GenerationStopped("stopped") from None

    def _prompt(self, entry: LoadedModel, facts: ImageFacts, prompt: object, negative: object, guidance: object,
                width: object, height: object) -> PromptRequest | None:
        """The checked prompt request of a text-to-image model; None for other models (which take no prompt). A
        value given is checked against the spec whatever the model, so it gets the same answer from every front
        end (a tab leaves out what its model does not take)."""
        scale = IMAGE["guidance_scale"].default if guidance is None else IMAGE["guidance_scale"].check(guidance)
        sizes = [facts.resolution if value is None else IMAGE[name].check(value)
                 for value, name in ((width, "width"), (height, "height"))]
        if not facts.prompted:
            if isinstance(prompt, str) and prompt.strip() or isinstance(negative, str) and negative.strip():
                raise GenerationError(f"{entry.ref} is a {entry.kind} model: it takes no prompt")
            return None
        texts = ["" if t is None or isinstance(t, str) and not t.strip()
                 else check_text(t, what, text_to_image.MAX_PROMPT_CHARS)  # an empty prompt: unconditioned
                 for t, what in ((prompt, "prompt"), (negative, "negative prompt"))]
        return PromptRequest(texts[0], texts[1], scale, sizes[0], sizes[1])

    @staticmethod
    def _sampling(entry: LoadedModel, steps: object, sampler: object) -> tuple[int, str]:
        # Checked for any model, as _prompt's values are: one answer from every front end.
        n = IMAGE["steps"].default if steps is None else IMAGE["steps"].check(steps)
        if entry.kind not in ("diffusion", "text-to-image"):
            return 1, "DCGAN"
        name = diffusion.DEFAULT_SAMPLER if sampler in (None, "") else str(sampler)[:40]
        if name not in diffusion.SAMPLERS:
            raise GenerationError(f"unknown sampler {name!r}: choose one of {', '.join(diffusion.SAMPLERS)}")
        return n, name

    def generate(
        self,
        ref: str,
        num: int = 1,
        seed: int | None = -1,
        label: int | None = None,
        progress: Progress | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        stop: threading.Event | None = None,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        guidance_scale: float | None = None,
        width: int | None = None,
        height: int | None = None,
    ) -> ImageResult:
        """`run` with the request's fields as arguments (scripts, tests)."""
        return self.run(ImageRequest(ref, num, seed, label, steps, sampler, prompt, negative_prompt, guidance_scale,
                                     width, height), progress, stop)

    def run(self, request: ImageRequest, progress: Progress | None = None,
            stop: threading.Event | None = None) -> ImageResult:
        """`request.n` images; with a conditional model and no label, item i shows class i mod num_classes. Steps
        and sampler apply to diffusion models (GANs take one step); `stop` ends a diffusion run between steps.
        Prompt, negative prompt, guidance scale and size apply to text-to-image pipelines (default size: the
        model's)."""
        ref, n = request.model, self.params["n"].check(request.n)
        base = resolve_seed(request.seed)
        if base + n - 1 > MAX_SEED:
            raise GenerationError(f"seed + n - 1 must be at most {MAX_SEED}, got {base} + {n - 1}")
        entry = self.registry.get_for(ref, TASK)
        n_steps, sampler_name = self._sampling(entry, request.steps, request.sampler)
        facts = self._facts(entry)
        fixed = self._label(entry, request.label)
        prompted = self._prompt(entry, facts, request.prompt, request.negative_prompt, request.guidance_scale,
                                request.width, request.height)
        classes = facts.num_classes
        seeds = list(range(base, base + n))
        labels = [fixed if fixed is not None else (i % classes if classes else None) for i in range(n)]
        chunks = []
        size = PIPELINE_BATCH if prompted else DIFFUSION_BATCH if facts.iterative else BATCH
        for start in range(0, n, size):
            part = slice(start, start + size)
            if facts.iterative:
                def on_step(k: int, total: int, done: int = start) -> None:
                    if progress:
                        progress(done * n_steps + k * len(seeds[part]), n * n_steps)

                if prompted:
                    chunks.append(self._run_pipeline(entry, seeds[part], prompted, n_steps, sampler_name,
                                                     on_step=on_step, stop=stop))
                    continue
                chunks.append(self._denoise(entry, seeds[part], labels[part], n_steps, sampler_name,
                                            on_step=on_step, stop=stop))
            else:
                z = noise(seeds[part], entry.config["latent_dim"])
                chunks.append(self._forward(entry, z, labels[part]))
                if progress:
                    progress(min(start + size, n), n)
        images = np.concatenate(chunks)
        title = diffusion.SAMPLER_TITLES.get(sampler_name, sampler_name)
        params = [parameters_text(ref, s, lab, images.shape[2], n_steps, title, prompted, images.shape[1])
                  for s, lab in zip(seeds, labels)]
        return ImageResult(images, seeds, labels, ref, base, params, n_steps, title, prompted)

    def interpolate(
        self, ref: str, seed_a: int, seed_b: int, frames: int = 16, label: int | None = None,
        steps: int | None = None, sampler: str | None = None, stop: threading.Event | None = None,
        prompt: str | None = None, negative_prompt: str | None = None, guidance_scale: float | None = None,
        width: int | None = None, height: int | None = None,
    ) -> tuple[np.ndarray, bytes]:
        """Frames along the slerp path from seed_a's noise to seed_b's, and the animated GIF (there and back).
        Diffusion models interpolate their initial noise (a deterministic sampler gives the smoothest path);
        text-to-image pipelines their initial latents, under one prompt."""
        a, b = resolve_seed(seed_a), resolve_seed(seed_b)
        frames = IMAGE["frames"].check(frames)
        entry = self.registry.get_for(ref, TASK)
        n_steps, sampler_name = self._sampling(entry, steps, sampler)
        facts = self._facts(entry)
        fixed = self._label(entry, label)
        request = self._prompt(entry, facts, prompt, negative_prompt, guidance_scale, width, height)
        lab = fixed if fixed is not None else (0 if facts.num_classes else None)
        ts = [i / max(1, frames - 1) for i in range(frames)]
        if request:
            shape = text_to_image.latent_shape(entry.model, request.width, request.height)
            za, zb = (torch.randn(shape, generator=torch.Generator().manual_seed(s % 2**64)).flatten() for s in (a, b))
            z = torch.stack([slerp(za, zb, t) for t in ts]).view(frames, *shape)
            images = np.concatenate([
                self._run_pipeline(entry, [a] * len(z[i:i + PIPELINE_BATCH]), request, n_steps, sampler_name,
                                   latents=z[i:i + PIPELINE_BATCH], stop=stop)
                for i in range(0, frames, PIPELINE_BATCH)])
        elif facts.iterative:
            shape = (facts.channels, facts.resolution, facts.resolution)
            za, zb = (torch.randn(shape, generator=torch.Generator().manual_seed(s % 2**64)).flatten() for s in (a, b))
            z = torch.stack([slerp(za, zb, t) for t in ts]).view(frames, *shape)
            images = self._denoise(entry, [a] * frames, [lab] * frames, n_steps, sampler_name, noise=z, stop=stop)
        else:
            za, zb = noise([a, b], entry.config["latent_dim"])
            images = self._forward(entry, torch.stack([slerp(za, zb, t) for t in ts]), [lab] * frames)
        return images, gif_bytes(images)


def parameters_text(ref: str, seed: int, label: int | None, width: int, steps: int = 1, sampler: str = "DCGAN",
                    request: PromptRequest | None = None, height: int | None = None) -> str:
    """A1111-style generation parameters, as stored in each PNG's `parameters` text chunk: the prompt on the first
    line and the negative prompt on the second (text-to-image), then the settings."""
    label_part = f", Label: {label}" if label is not None else ""
    head, cfg = "", ""
    if request is not None:
        negative = f"Negative prompt: {request.negative_prompt}\n" if request.negative_prompt else ""
        head, cfg = f"{request.prompt}\n{negative}", f", CFG scale: {request.guidance_scale:g}"
    return (f"{head}Steps: {steps}, Sampler: {sampler}{cfg}, Seed: {seed}, Size: {width}x{height or width}, "
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
