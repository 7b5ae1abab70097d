"""The model card `train_diffusion.py` writes: how it was trained, how to use it without project code, its
measured quality at several sampling step counts and its speed."""

from __future__ import annotations

import argparse
from pathlib import Path

from aigc_hub.cards import Figure, figures_table, render_card
from aigc_hub.models.diffusion import SAMPLER_TITLES
from training import adapt
from training.image_data import ImageData
from training.image_eval import method_text, samples_section


PLAIN = """with torch.no_grad():
    for t in scheduler.timesteps:
        x = scheduler.step(unet(x, t, class_labels=labels).sample, t, x).prev_sample"""
GUIDED = """empty = torch.full_like(labels, EMPTY)  # the empty label: classifier-free guidance
with torch.no_grad():
    for t in scheduler.timesteps:
        cond, uncond = unet(torch.cat([x, x]), t, class_labels=torch.cat([labels, empty])).sample.chunk(2)
        x = scheduler.step(uncond + SCALE * (cond - uncond), t, x).prev_sample"""


def guided_text(args: argparse.Namespace, empty: int | None, guidance: float) -> str:
    if empty is None:
        return ""
    return (f"\nClassifier-free guidance: label {empty} is the empty label (DiT's convention), trained in place of "
            f"the class for {args.class_dropout:.0%} of the images. The figures below and the app's default use "
            f"guidance {guidance:g} (1: none); `--guidance` on the CLI and `guidance_scale` in the API change it.\n")


def augmented(args: argparse.Namespace) -> str:
    return (f", {args.augment_p:.0%} of the training images moved by up to {args.augment_shift:.1%} of their size"
            if getattr(args, "augment_shift", 0) else "")


def write_card(args: argparse.Namespace, out: Path, data: ImageData, figures: list[Figure], speed: dict[int, float],
               steps: int, n_params: int, empty: int | None = None, guidance: float = 1.0) -> None:
    """`empty`: the empty label of a model trained for classifier-free guidance; `guidance`: its default scale,
    the one the figures are measured at."""
    conditional = bool(data.num_classes)
    kind = f"class-conditional ({data.num_classes} classes)" if conditional else "unconditional"
    dataset = args.card_dataset or Path(args.dataset).stem
    ref = args.hub_model_id or args.output_dir
    channels = tuple(args.block_out_channels or ()) or "preset"
    if conditional:
        use = f"""```python
import torch
from diffusers import DPMSolverMultistepScheduler, UNet2DModel

unet = UNet2DModel.from_pretrained("{ref}", subfolder="unet")
scheduler = DPMSolverMultistepScheduler.from_pretrained("{ref}", subfolder="scheduler")
scheduler.set_timesteps(25)
labels = torch.arange(10) % {data.num_classes}
x = torch.randn(10, {data.channels}, {args.resolution}, {args.resolution}, generator=torch.Generator().manual_seed(0))
{GUIDED if empty is not None and guidance != 1 else PLAIN}
images = ((x.clamp(-1, 1) + 1) * 127.5).round().byte()  # (10, C, H, W) uint8
```"""
    else:
        use = f"""```python
from diffusers import DDPMPipeline, DPMSolverMultistepScheduler

pipe = DDPMPipeline.from_pretrained("{ref}")
pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
images = pipe(batch_size=16, num_inference_steps=25).images
```"""
    lora = bool(args.base_model and args.lora_rank)
    if lora:  # diffusers' UNet2DModel has no LoRA loader of its own: peft loads the adapter onto it
        use = use.replace(f'UNet2DModel.from_pretrained("{ref}", subfolder="unet")',
                          f'PeftModel.from_pretrained(UNet2DModel.from_pretrained("{args.base_model}", '
                          f'subfolder="unet"), "{ref}").merge_and_unload()')
        use = use.replace(f'pipe = DDPMPipeline.from_pretrained("{ref}")',
                          f'pipe = DDPMPipeline.from_pretrained("{args.base_model}")\npipe.unet = PeftModel.'
                          f'from_pretrained(pipe.unet, "{ref}").merge_and_unload()')
        use = use.replace(f'from_pretrained("{ref}", subfolder="scheduler")',
                          f'from_pretrained("{args.base_model}", subfolder="scheduler")')
        use = use.replace("```python\n", "```python\nfrom peft import PeftModel\n", 1)
    use = use.replace("EMPTY", str(empty)).replace("SCALE", f"{guidance:g}")
    rows = "\n".join(f"| {s} | {ms:.1f} |" for s, ms in speed.items())
    sampler = SAMPLER_TITLES[args.eval_sampler]
    how = (f"adapted as {adapt.method(args)} (the base's figures below are measured the same way before training)"
           if args.base_model else "trained from scratch")
    arch = "the base's architecture" if args.base_model else f"preset {args.preset}, channels {channels}"
    what = f"{n_params / 1e6:.2f} M parameters trained" if lora else f"{n_params / 1e6:.2f} M parameters"
    folder = ("The folder is a PEFT adapter folder (`adapter_config.json`, `adapter_model.safetensors`) for the "
              "base's UNet." if lora else "The folder is a standard diffusers pipeline folder.")
    body = f"""A {kind} diffusion model (diffusers `UNet2DModel`, {what},
{arch}) generating {args.resolution}×{args.resolution} images with {data.channels}
channel(s), {how} with AIGC Hub's `training/train_diffusion.py` for {steps} optimizer steps (batch
{args.train_batch_size} × {args.gradient_accumulation_steps} accumulation, lr {args.learning_rate}, {args.lr_scheduler},
{args.prediction_type} prediction, {args.beta_schedule} noise schedule over {args.num_train_timesteps} steps, seed
{args.seed}){augmented(args)}. The weights are the EMA (decay {args.ema_decay}) of the UNet. {folder}
{guided_text(args, empty, guidance)}
## Use

```bash
python -m aigc_hub generate image --model {ref} --num 16 --steps 25 --sampler dpm-solver --seed 0 --out grid.png
```

With diffusers alone:

{use}

{samples_section(data.num_classes, data.class_names)}
## Evaluation

{figures_table(figures) if figures else ""}

Sampler: {sampler}. {method_text(args)}

Speed (one CPU batch of 64 images, the training machine):

| sampling steps | ms per image |
|---|---|
{rows}

{args.card_notes}
"""
    tags = ((["class-conditional"] if conditional else []) + (["fine-tuned"] if args.base_model else [])
            + (["lora", "peft"] if lora else []))
    card = render_card(title=args.card_title or f"DDPM {dataset}", family="diffusion", tags=tags,
                       datasets=[dataset], license=args.card_license, figures=figures, body=body,
                       library_name="diffusers", extra={"base_model": args.base_model} if args.base_model else None)
    card.save(out / "README.md")
