"""ImageService: generate images from a GAN or a diffusion model with reproducible seeds. No Gradio here.

Seeds: −1 becomes a concrete random seed before anything runs and is returned. Item *i* of a request uses noise
drawn from `seed + i` alone (for diffusion: its initial noise and whatever a stochastic sampler adds at each step),
so image *i* is the same whatever the batch size, and any single image can be made again from its own seed with
`num=1`. Diffusion models also take a sampler and a number of steps, report each step, and stop between steps.

Diffusion models (the project's UNets and text-to-image pipelines) also edit a picture: image-to-image at a
strength, inpainting under a mask, outpainting (editing.py brings the input to the model; the loops are
diffusion.denoise's and diffusers' img2img / inpainting pipelines). Variations of any model's image blend its seed's
noise with another seed's (`variation_seed` + i, at `variation_strength`).

Every front end hands a typed ImageRequest (requests.py) to `run`; its values are checked here against the one
parameter spec (params.IMAGE, the count bounded by the app's `max_images`), so a value gets one refusal everywhere.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np
import torch

from ..errors import GenerationError, UserError
from ..imaging import to_uint8
from ..models import adapters, diffusion, text_to_image
from ..models.text_to_image import PromptRequest
from ..validation import MAX_SEED, as_int, check_text, resolve_seed
from . import editing
from .editing import EditInput
from .image_facts import ImageFacts, facts_of
from .image_result import ImageResult, gif_bytes, parameters_text
from .latents import blend, draws, path
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
                 stop: threading.Event | None = None, edit: EditInput | None = None,
                 guidance: float = 1.0) -> np.ndarray:
        """The denoising loop for `seeds`, batched with other requests' seeds of the same model, sampler, steps and
        guidance (and, for edits, strength; not for given noise: interpolation, variations). Stop ends the loop when
        every
        request in it has stopped; until then a stopped request's rows ride along and it returns, stopped, when
        the batch ends."""
        init, mask = _edit_tensors(edit, len(seeds))
        strength = edit.strength if edit else 1.0
        guide = dict(guidance=guidance, null_label=self._facts(entry).null_label)
        if noise is not None:
            y = None if labels[0] is None else torch.tensor(labels)

            def alone() -> np.ndarray:
                return to_uint8(diffusion.denoise(entry.model, entry.extras["scheduler"], seeds, steps=steps,
                                                  sampler=sampler, labels=y, noise=noise, on_step=on_step,
                                                  should_stop=stop.is_set if stop else None, init=init, mask=mask,
                                                  strength=strength, **guide))

            try:
                return self.registry.run(entry.device, alone)
            except diffusion.Stopped:
                raise GenerationStopped("stopped") from None

        Item = tuple[list[int], list[int | None], diffusion.StepFn | None, threading.Event | None,
                     torch.Tensor | None, torch.Tensor | None]

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

            inits = None if items[0][4] is None else torch.cat([item[4] for item in items])
            masks = None if all(item[5] is None for item in items) else torch.cat(
                [item[5] if item[5] is not None else torch.ones(len(item[0]), 1, *item[4].shape[2:])
                 for item in items])  # an image-to-image row repaints everything
            images = to_uint8(diffusion.denoise(
                entry.model, entry.extras["scheduler"], all_seeds, steps=steps, sampler=sampler,
                labels=None if all_labels[0] is None else torch.tensor(all_labels), on_step=each_step,
                should_stop=(lambda: all(s.is_set() for s in stops)) if all(stops) else None,
                init=inits, mask=masks, strength=strength, **guide))
            parts = dict(zip(map(id, items), np.split(images, np.cumsum([len(item[0]) for item in items])[:-1])))
            return [None if item[3] and item[3].is_set() else parts.get(id(item)) for item in batch]

        key = ("denoise", entry.ref, id(entry.model), steps, sampler, guidance, None if edit is None else strength)
        try:
            images = self.registry.batcher.call(entry.device, key, (seeds, labels, on_step, stop, init, mask),
                                                len(seeds), together)
        except diffusion.Stopped:
            images = None
        if images is None:
            raise GenerationStopped("stopped")
        return images

    def _run_pipeline(self, entry: LoadedModel, seeds: list[int], request: PromptRequest, steps: int, sampler: str,
                      latents: torch.Tensor | None = None, on_step: diffusion.StepFn | None = None,
                      stop: threading.Event | None = None, edit: EditInput | None = None) -> np.ndarray:
        def run() -> np.ndarray:
            with adapters.switched(entry.model) as pipe:
                return text_to_image.generate(pipe, entry.extras["scheduler"], seeds, request, steps=steps,
                                              sampler=sampler, latents=latents, on_step=on_step,
                                              should_stop=stop.is_set if stop else None,
                                              edit=None if edit is None else (edit.image, edit.mask, edit.strength))

        try:
            return self.registry.run(entry.device, run)
        except diffusion.Stopped:
            raise GenerationStopped("stopped") from None

    def _edit(self, entry: LoadedModel, facts: ImageFacts, request: ImageRequest,
              prompted: PromptRequest | None) -> EditInput | None:
        """The request's input picture, mask and canvas brought to the model (editing.py); None when it edits
        nothing."""
        given = [name for name in ("mask", "strength", "outpaint") if _given(getattr(request, name))]
        if request.image is None:
            if given:
                raise GenerationError(f"{given[0]} applies to editing: give the picture to edit too")
            return None
        if not facts.edits:
            raise GenerationError(f"{entry.ref} is a {entry.kind} model: it makes pictures from noise and cannot "
                                  "edit one (diffusion models can)")
        masked = request.mask is not None or editing.outpaint_sides(request.outpaint) is not None
        strength = IMAGE["strength"].check(request.strength) if _given(request.strength) \
            else 1.0 if masked else IMAGE["strength"].default
        width, height = (prompted.width, prompted.height) if prompted else (facts.resolution, facts.resolution)
        return editing.prepare(request.image, request.mask, strength, request.outpaint, facts.channels, width,
                               height)

    def _variation(self, request: ImageRequest, base: int, n: int) -> tuple[int, float] | None:
        """(variation seed, strength) when the request asks for variations of `base`'s image."""
        if not (_given(request.variation_seed) or _given(request.variation_strength)):
            return None
        strength = IMAGE["variation_strength"].check(request.variation_strength) \
            if _given(request.variation_strength) else IMAGE["variation_strength"].default
        other = resolve_seed(request.variation_seed if _given(request.variation_seed) else -1)
        if other + n - 1 > MAX_SEED:
            raise GenerationError(f"variation_seed + n - 1 must be at most {MAX_SEED}, got {other} + {n - 1}")
        return other, strength

    def _shape(self, entry: LoadedModel, facts: ImageFacts, prompted: PromptRequest | None) -> tuple[int, ...]:
        """The shape of one initial draw: a pipeline's latents, a UNet's noise image, a GAN's latent vector."""
        if prompted:
            return text_to_image.latent_shape(entry.model, prompted.width, prompted.height)
        if facts.iterative:
            return facts.channels, facts.resolution, facts.resolution
        return (entry.config["latent_dim"],)

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
    def _class_guidance(facts: ImageFacts, guidance: object) -> float:
        """The classifier-free guidance of a class-conditional UNet with an empty label: the request's (checked
        as for a prompt), else the model's own default; 1 (none) for other models."""
        if not facts.class_guided:
            return 1.0
        return facts.default_guidance if guidance is None else IMAGE["guidance_scale"].check(guidance)

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
        model's); an input image (with a mask, outpainting) to diffusion models of both kinds."""
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
        edit = self._edit(entry, facts, request, prompted)
        variation = self._variation(request, base, n)
        guidance = self._class_guidance(facts, request.guidance_scale)
        classes = facts.num_classes
        seeds = list(range(base, base + n))
        labels = [fixed if fixed is not None else (i % classes if classes else None) for i in range(n)]
        shape = self._shape(entry, facts, prompted)
        # Variations: every image draws the base seed's noise, moved towards variation seed + i's.
        drawn = None if variation is None else blend(base, list(range(variation[0], variation[0] + n)),
                                                     variation[1], shape)
        rows = seeds if variation is None else [base] * n  # what the loop's generators are seeded with
        run_steps = n_steps if edit is None else max(1, min(int(n_steps * edit.strength), n_steps))
        chunks = []
        size = PIPELINE_BATCH if prompted else DIFFUSION_BATCH if facts.iterative else BATCH
        for start in range(0, n, size):
            part = slice(start, start + size)
            given = None if drawn is None else drawn[part]
            if facts.iterative:
                def on_step(k: int, total: int, done: int = start) -> None:
                    if progress:
                        progress(done * run_steps + k * len(seeds[part]), n * run_steps)

                if prompted:
                    chunks.append(self._run_pipeline(entry, rows[part], prompted, n_steps, sampler_name,
                                                     latents=given, on_step=on_step, stop=stop, edit=edit))
                    continue
                chunks.append(self._denoise(entry, rows[part], labels[part], n_steps, sampler_name, noise=given,
                                            on_step=on_step, stop=stop, edit=edit, guidance=guidance))
            else:
                chunks.append(self._forward(entry, draws(seeds[part], shape) if given is None else given,
                                            labels[part]))
                if progress:
                    progress(min(start + size, n), n)
        images = np.concatenate(chunks)
        title = diffusion.SAMPLER_TITLES.get(sampler_name, sampler_name)
        extra = ("" if edit is None else edit.parameters()) + (f", CFG scale: {guidance:g}" if guidance != 1 else "")
        params = [parameters_text(ref, base if variation else s, lab, images.shape[2], n_steps, title, prompted,
                                  images.shape[1], extra + _variation_text(variation, i))
                  for i, (s, lab) in enumerate(zip(seeds, labels))]
        return ImageResult(images, seeds, labels, ref, base, params, n_steps, title, prompted, extra)

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
        z = path(a, b, [i / max(1, frames - 1) for i in range(frames)], self._shape(entry, facts, request))
        if request:
            images = np.concatenate([
                self._run_pipeline(entry, [a] * len(z[i:i + PIPELINE_BATCH]), request, n_steps, sampler_name,
                                   latents=z[i:i + PIPELINE_BATCH], stop=stop)
                for i in range(0, frames, PIPELINE_BATCH)])
        elif facts.iterative:
            images = self._denoise(entry, [a] * frames, [lab] * frames, n_steps, sampler_name, noise=z, stop=stop,
                                   guidance=self._class_guidance(facts, guidance_scale))
        else:
            images = self._forward(entry, z, [lab] * frames)
        return images, gif_bytes(images)


def _given(value: object) -> bool:
    """Whether a request field was given: not None and not blank text (a picture is an array or bytes)."""
    return value is not None and not (isinstance(value, str) and not value.strip())


def _variation_text(variation: tuple[int, float] | None, i: int) -> str:
    return "" if variation is None else f", Variation seed: {variation[0] + i}, Variation seed strength: " \
        f"{variation[1]:g}"


def _edit_tensors(edit: EditInput | None, n: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """An edit's input (n copies, (n, C, H, W) in [-1, 1]) and mask ((n, 1, H, W), 1: repaint) for the UNet."""
    if edit is None:
        return None, None
    init = torch.from_numpy(np.array(edit.image)).permute(2, 0, 1).float().div(127.5).sub(1.0)
    mask = None if edit.mask is None else torch.from_numpy(np.array(edit.mask)).float()[None]
    return init.expand(n, -1, -1, -1).contiguous(), None if mask is None else mask.expand(n, -1, -1, -1).contiguous()


