"""Text-to-image sampling on a stock diffusers pipeline (Stable Diffusion family), loaded with
`DiffusionPipeline.from_pretrained`.

The pipeline's own `__call__` runs the loop (text encoding, classifier-free guidance, the UNet, the VAE decode). This
module adds what the service promises for every image model: the sampler swapped by name (`from_config`, on a
per-call copy of the pipeline that shares its weights: schedulers hold per-call state), one generator per image (image
*i* is drawn from `seed + i` alone, so it is the same whatever the batch size), a report after each step, and a Stop
that ends the loop between two steps (raised from diffusers' `callback_on_step_end`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from ..errors import GenerationError
from .diffusion import StepFn, Stopped, generators, make_scheduler

Edit = tuple[np.ndarray, "np.ndarray | None", float]  # input (H, W, 3) uint8, mask (H, W) bool or None, strength

DEFAULT_GUIDANCE = 7.5
MAX_GUIDANCE = 30.0
MAX_PROMPT_CHARS = 2000
SIZE_MULTIPLE = 8  # latent pixels are vae_scale_factor (8 for SD) image pixels; the UNet halves them further


@dataclass(frozen=True)
class PromptRequest:
    """What a text-to-image call asks for, checked by the service."""

    prompt: str
    negative_prompt: str
    guidance_scale: float
    width: int
    height: int


def vae_scale(index_vae_config: dict | None) -> int:
    """Image pixels per latent pixel: 2 ** (VAE levels - 1), as diffusers' pipelines compute it."""
    levels = len((index_vae_config or {}).get("block_out_channels") or [0, 0, 0, 0])
    return 2 ** (levels - 1)


def default_size(unet_config: dict, vae_config: dict | None) -> int:
    size = unet_config.get("sample_size") or 64
    size = size if isinstance(size, int) else tuple(size)[0]
    return int(size) * vae_scale(vae_config)


def latent_shape(pipe: Any, width: int, height: int) -> tuple[int, int, int]:
    scale = getattr(pipe, "vae_scale_factor", 8)
    return pipe.unet.config.in_channels, height // scale, width // scale


def with_scheduler(pipe: Any, scheduler: Any, cls: type | None = None) -> Any:
    """A pipeline of the same class (or `cls`: its img2img or inpainting sibling) sharing `pipe`'s models, with its
    own scheduler. (diffusers' `from_pipe` would also cast the shared models to one dtype, fp32 by default: an fp16
    pipeline on a GPU would change under every other request.)"""
    cls = cls or type(pipe)
    params = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in pipe.components.items() if k in params}
    kwargs.update({k: pipe.config[k] for k in params if k not in kwargs and k in pipe.config})  # e.g. flags
    run = cls(**{**kwargs, "scheduler": scheduler})
    run.set_progress_bar_config(disable=True)
    return run


def _call_kwargs(pipe: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    """The arguments this pipeline class takes (FLUX has no negative prompt, for one)."""
    accepted = inspect.signature(type(pipe).__call__).parameters
    return {k: v for k, v in wanted.items() if k in accepted}


@torch.no_grad()
def generate(
    pipe: Any,
    scheduler_config: dict,
    seeds: list[int],
    request: PromptRequest,
    *,
    steps: int,
    sampler: str,
    latents: torch.Tensor | None = None,
    on_step: StepFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    edit: Edit | None = None,
) -> np.ndarray:
    """One image per seed: (N, H, W, 3) uint8. `latents` replaces the seeds' initial noise (interpolation).

    `edit` (the input, (H, W, 3) uint8 at the request's size; the mask, (H, W) bool, True: repaint; the strength)
    runs the pipeline's img2img sibling, or its inpainting one under a mask (the known pixels are pasted back
    after the decode, as diffusers' `apply_overlay` does). Strength 1 without a mask is generation itself, and a
    strength that runs no step returns the input."""
    image, mask, strength = edit if edit is not None else (None, None, 1.0)
    if image is not None and min(int(steps * strength), steps) == 0:
        return np.repeat(image[None], len(seeds), axis=0)
    cls = None if image is None or (mask is None and strength >= 1.0) else _sibling(pipe, mask is not None)
    if cls is not None and latents is not None and strength < 1.0:
        raise GenerationError("variations of a partial edit cannot be made with a text-to-image pipeline: edit "
                              "again with other seeds")
    # Latents are not images in [-1, 1]: DDPM and DDIM would clip them unless the config says otherwise (SD 1.5's
    # PNDM config does not), which is why diffusers warns about clip_sample for these pipelines.
    run = with_scheduler(pipe, make_scheduler({"clip_sample": False, **scheduler_config}, sampler), cls)

    def step_end(_pipe: Any, i: int, _t: Any, _kwargs: dict) -> dict:
        if on_step is not None:
            on_step(i + 1, steps)
        if should_stop is not None and should_stop():
            raise Stopped()
        return {}

    if should_stop is not None and should_stop():
        raise Stopped()
    n = len(seeds)
    kwargs = _call_kwargs(run, dict(
        prompt=[request.prompt] * n, negative_prompt=[request.negative_prompt] * n if request.negative_prompt else None,
        guidance_scale=request.guidance_scale, width=request.width, height=request.height,
        num_inference_steps=steps, generator=generators(seeds), output_type="np", callback_on_step_end=step_end,
    ))
    if latents is not None:
        weights = next(pipe.unet.parameters())
        kwargs["latents"] = latents.to(weights.device, weights.dtype)
    if cls is not None:
        kwargs.update(image=Image.fromarray(image), strength=strength)
        if mask is not None:
            kwargs["mask_image"] = Image.fromarray(mask.astype(np.uint8) * 255)
        kwargs = _call_kwargs(run, kwargs)  # img2img takes its size from the image
    images = run(**kwargs).images  # (N, H, W, 3) floats in [0, 1]
    out = (np.clip(np.asarray(images, dtype=np.float32), 0.0, 1.0) * 255).round().astype(np.uint8)
    if mask is not None:  # the decoded latents moved the known pixels a little: they are the input's own
        out = np.where(mask[None, :, :, None], out, image[None])
    return out


def _sibling(pipe: Any, inpaint: bool) -> type:
    """The img2img or inpainting pipeline class of `pipe`'s family, as diffusers' AutoPipeline pairs them."""
    from diffusers.pipelines import auto_pipeline

    mapping = (auto_pipeline.AUTO_INPAINT_PIPELINES_MAPPING if inpaint
               else auto_pipeline.AUTO_IMAGE2IMAGE_PIPELINES_MAPPING)
    cls = auto_pipeline._get_task_class(mapping, type(pipe).__name__, throw_error_if_not_exist=False)
    if cls is None:
        raise GenerationError(f"a {type(pipe).__name__} has no {'inpainting' if inpaint else 'image-to-image'} "
                              "pipeline in diffusers: it cannot edit pictures")
    return cls
