"""Diffusion sampling on stock diffusers parts: a `UNet2DModel`, a scheduler swapped by name, one denoising loop.

The loop is the one diffusers' pipelines run (scale the input, predict, step), written out so that it can report
each step, stop between steps, take class labels, and give every image its own generator: image *i* of a request is
drawn from `seed + i` alone (initial noise and the noise stochastic samplers add at each step), so it is the same
whatever the batch size. The training script's sample grids and evaluation use it too.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

# name → (diffusers scheduler class, config overrides). Swapped with `from_config`, as diffusers' docs do.
SAMPLERS: dict[str, tuple[str, dict[str, Any]]] = {
    "dpm-solver": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler-a": ("EulerAncestralDiscreteScheduler", {}),
    "ddpm": ("DDPMScheduler", {}),
}
DEFAULT_SAMPLER = "dpm-solver"
DEFAULT_STEPS = 25
MAX_STEPS = 1000
SAMPLER_TITLES = {"dpm-solver": "DPM-Solver++ (2M)", "ddim": "DDIM", "euler": "Euler", "euler-a": "Euler a",
                  "ddpm": "DDPM"}

NULL_LABEL_KEY = "_null_class_label"  # in unet/config.json
GUIDANCE_KEY = "_guidance_scale"  # the scale the model's card figures were measured at: its default
StepFn = Callable[[int, int], None]  # (steps done, total)


class Stopped(Exception):
    """The caller asked the loop to stop between two steps."""


def make_scheduler(config: dict, sampler: str):
    """A fresh scheduler of the named kind built from a trained scheduler's config (schedulers hold per-call state,
    so every call gets its own)."""
    import diffusers

    name, overrides = SAMPLERS[sampler]
    cls = getattr(diffusers, name)
    # A config saved by another scheduler class carries keys this one does not know: from_config ignores them.
    # Private keys go: an in-memory config's `_use_default_values` would make from_config swap the trained
    # scheduler's values for the new class's defaults (DDPM's "leading" timestep spacing became DPM-Solver's
    # "linspace", which starts at t=999 where the cosine schedule's alpha_bar is ~0: pure noise out). Saved and
    # in-memory configs now give the same sampler.
    public = {k: v for k, v in config.items() if not k.startswith("_")}
    return cls.from_config({**public, **overrides})


def null_label(unet_config: dict) -> int | None:
    """The empty label of a UNet trained for classifier-free guidance (its last class row), else None. Saved as a
    private key of the UNet's config.json: diffusers passes over keys that start with "_" in silence."""
    value = unet_config.get(NULL_LABEL_KEY)
    classes = unet_config.get("num_class_embeds") or 0
    return int(value) if isinstance(value, int) and 0 < value == classes - 1 else None


def generators(seeds: list[int]) -> list[torch.Generator]:
    """One CPU generator per image (CPU: the same numbers on every device)."""
    return [torch.Generator().manual_seed(s % 2**64) for s in seeds]


@torch.no_grad()
def denoise(
    unet: torch.nn.Module,
    scheduler_config: dict,
    seeds: list[int],
    *,
    steps: int,
    sampler: str = DEFAULT_SAMPLER,
    labels: torch.Tensor | None = None,
    noise: torch.Tensor | None = None,
    on_step: StepFn | None = None,
    should_stop: Callable[[], bool] | None = None,
    init: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    strength: float = 1.0,
    guidance: float = 1.0,
    null_label: int | None = None,
) -> torch.Tensor:
    """Sample one image per seed; returns (N, C, H, W) in [-1, 1] on the UNet's device, float32. `noise` replaces
    the seeds' initial noise (interpolation, variations); the seeds still draw what stochastic samplers add at each
    step.

    Editing, as diffusers' img2img and inpainting pipelines do it: `init` ((N, C, H, W) in [-1, 1]) is noised to
    the level of step `steps × (1 − strength)` and only the last `int(steps × strength)` steps run (SDEdit);
    strength 1 starts from the seed's noise alone, as generation does, and strength 0 returns `init`. `mask`
    ((N, 1, H, W), 1: repaint, 0: keep) puts the known pixels back after every step, noised to the next step's
    level with the same noise, and exactly at the end (RePaint-style inpainting).

    Classifier-free guidance for class-conditional UNets trained with an empty label (`null_label`, DiT's
    convention: the row after the classes): with `guidance` ≠ 1 each step predicts under the labels and under the
    empty label in one batch and moves `guidance` times the difference from the latter."""
    from diffusers.utils.torch_utils import randn_tensor

    weights = next(unet.parameters())
    device, dtype = weights.device, weights.dtype
    config = unet.config
    size = config.sample_size if isinstance(config.sample_size, int) else tuple(config.sample_size)[0]
    shape = (len(seeds), config.in_channels, size, size)
    gens = generators(seeds)
    scheduler = make_scheduler(scheduler_config, sampler)
    scheduler.set_timesteps(steps, device=device)
    timesteps = scheduler.timesteps
    if noise is None:
        noise = randn_tensor(shape, generator=gens, device=device, dtype=torch.float32)
    noise = noise.to(device, torch.float32)
    if init is not None:
        init = init.to(device, torch.float32)
        start = steps - min(int(steps * strength), steps)
        timesteps = timesteps[start * scheduler.order:]
        if hasattr(scheduler, "set_begin_index"):  # where add_noise and the first step find their sigma
            scheduler.set_begin_index(start * scheduler.order)
        if len(timesteps) == 0:
            return init.clamp(-1.0, 1.0)
    if init is None or strength >= 1.0:
        x = noise * scheduler.init_noise_sigma
    else:
        x = scheduler.add_noise(init, noise, timesteps[:1].repeat(len(seeds)))
    keep = None if mask is None else 1.0 - mask.to(device, torch.float32)
    class_labels = None if labels is None else labels.to(device)
    guided = class_labels is not None and null_label is not None and guidance != 1.0
    if guided:
        class_labels = torch.cat([class_labels, torch.full_like(class_labels, null_label)])
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        if should_stop is not None and should_stop():
            raise Stopped()
        model_in = scheduler.scale_model_input(x, t).to(dtype)
        if guided:
            cond, empty = unet(model_in.repeat(2, 1, 1, 1), t, class_labels=class_labels).sample.float().chunk(2)
            out = empty + guidance * (cond - empty)
        else:
            out = unet(model_in, t, class_labels=class_labels).sample.float()
        x = scheduler.step(out, t, x, generator=gens).prev_sample
        if keep is not None:
            known = init if i == total - 1 else scheduler.add_noise(init, noise, timesteps[i + 1:i + 2].repeat(len(x)))
            x = keep * known + (1.0 - keep) * x
        if on_step is not None:
            on_step(i + 1, total)
    return x.clamp(-1.0, 1.0)
