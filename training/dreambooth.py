"""DreamBooth-style LoRA of a text-to-image pipeline (Stable Diffusion 1.x / 2.x): a handful of images of one subject
or style and an instance prompt that names it ("a photo of sks dog"). `train_diffusion.py --base_model` comes here
when its base is a text-to-image pipeline:

    python training/train_diffusion.py --base_model stable-diffusion-v1-5/stable-diffusion-v1-5 \
        --dataset my_dog/ --instance_prompt "a photo of sks dog" --lora_rank 4 --output_dir runs/my-dog

The UNet learns LoRA adapters on its attention projections (diffusers' own DreamBooth-LoRA choice); the VAE and the
text encoder are frozen, so each image's latent distribution and the prompt's embedding are computed once. Prior
preservation (class images) is not done: with a few hundred steps the base keeps what it knew (the card's figures
say how far it moved). The output folder holds the adapter twice, in each stack's own format:

- `adapter_config.json` + `adapter_model.safetensors`: peft's, loaded by this app and by stock
  `PeftModel.from_pretrained(pipe.unet, folder)`;
- `pytorch_lora_weights.safetensors`: diffusers', loaded by stock `pipe.load_lora_weights(folder)`;

and `sample.png` (the instance prompt) and a card whose figure is the denoising loss on held-out images of the
subject beside the base's, at the same noise draws. `--merge` also writes `merged/`, a whole pipeline folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from aigc_hub.cards import Figure, figures_table, render_card
from aigc_hub.imaging import make_grid
from aigc_hub.models.text_to_image import default_size
from training import adapt
from training.common import Trainer, adamw
from training.image_data import load_images

TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]  # as diffusers' train_dreambooth_lora.py
EVAL_DRAWS = 64  # (timestep, noise) draws per held-out image: the figure's noise is small beside the gap it measures


class Latents(Dataset):
    """Each image's latent distribution (mean and std), encoded once by the frozen VAE."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.mean)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"mean": self.mean[i], "std": self.std[i]}


@torch.no_grad()
def encode(vae: torch.nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    dist = vae.encode(pixels.to(vae.device).float() / 127.5 - 1.0).latent_dist
    return dist.mean.cpu(), dist.std.cpu()


@torch.no_grad()
def embed(pipe: object, prompt: str) -> torch.Tensor:
    tok = pipe.tokenizer
    ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True,
              return_tensors="pt").input_ids
    return pipe.text_encoder(ids.to(pipe.text_encoder.device))[0].cpu()


def split(n: int, seed: int) -> tuple[list[int], list[int]]:
    """A fifth of the images held out (at least one) when there are three or more; none otherwise."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    held = max(1, n // 5) if n >= 3 else 0
    return sorted(order[held:]), sorted(order[:held])


def denoising_loss(unet: torch.nn.Module, scheduler: object, latents: Latents, cond: torch.Tensor, scale: float,
                   seed: int) -> float:
    """Mean MSE of the UNet's prediction on `latents` at EVAL_DRAWS seeded (timestep, noise) draws each: the same
    draws for every model, so the base and the adapter are compared on equal terms."""
    gen = torch.Generator().manual_seed(seed)  # on the CPU: the same draws on any device
    device = next(unet.parameters()).device
    losses = []
    with torch.no_grad():
        for mean, std in zip(latents.mean, latents.std):
            x0 = (mean + std * torch.randn(mean.shape, generator=gen)).expand(EVAL_DRAWS, *mean.shape) * scale
            noise = torch.randn(x0.shape, generator=gen)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (EVAL_DRAWS,), generator=gen)
            x0, noise, t = x0.to(device), noise.to(device), t.to(device)
            target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(x0, noise, t)
            pred = unet(scheduler.add_noise(x0, noise, t), t,
                        encoder_hidden_states=cond.to(device).expand(EVAL_DRAWS, -1, -1))
            losses.append(F.mse_loss(pred.sample.float(), target).item())
    return float(np.mean(losses))


def check(args: argparse.Namespace, pipe: object) -> None:
    if not args.instance_prompt:
        raise SystemExit(f"--base_model {args.base_model} is a text-to-image pipeline: give --instance_prompt, the "
                         "prompt that names your subject (e.g. \"a photo of sks dog\")")
    if not args.lora_rank:
        raise SystemExit("a text-to-image pipeline is adapted with LoRA here (--lora_rank 1 or more): a full "
                         "fine-tune of its UNet needs several times its memory")
    if pipe.unet.config.get("addition_embed_type"):
        raise SystemExit(f"--base_model {args.base_model}: DreamBooth here takes Stable Diffusion 1.x / 2.x "
                         "pipelines; this UNet also wants SDXL-style added conditioning")


def run(args: argparse.Namespace) -> None:
    from diffusers import DDPMScheduler, DiffusionPipeline

    path = adapt.base_folder(args.base_model, "text-to-image")
    pipe = DiffusionPipeline.from_pretrained(str(path), use_safetensors=True, trust_remote_code=False)
    pipe.set_progress_bar_config(disable=True)
    check(args, pipe)
    trainer = Trainer(args, project="train_dreambooth")
    acc = trainer.accelerator
    for part in (pipe.vae, pipe.text_encoder, pipe.unet):
        part.requires_grad_(False).eval()
    pipe.to(acc.device)  # fp32 weights; a GPU run trains under autocast (--mixed_precision)
    size = default_size(dict(pipe.unet.config), dict(pipe.vae.config))
    data = load_images(args.dataset, resolution=size, image_column=args.image_column, split=args.split, channels=3,
                       limit=args.max_train_samples, seed=args.seed)
    pixels = data.dataset.pixels
    train, held = split(len(pixels), args.seed)
    mean, std = encode(pipe.vae, pixels)
    scale = pipe.vae.config.scaling_factor
    cond = embed(pipe, args.instance_prompt)
    scheduler = DDPMScheduler.from_pretrained(str(path), subfolder="scheduler")
    held_out = Latents(mean[held], std[held])
    base_loss = denoising_loss(pipe.unet, scheduler, held_out, cond, scale, args.seed) if held else None
    unet = adapt.lora(pipe.unet, args, None, TARGETS)
    batch = min(args.train_batch_size, len(train))
    if batch < args.train_batch_size:
        print(f"batch size {batch}: there are {len(train)} training images", file=sys.stderr)
    args.train_batch_size = batch
    loader = DataLoader(Latents(mean[train], std[train]), batch_size=batch, shuffle=True, drop_last=True)
    opt = adamw(unet, args)
    unet, opt, loader = acc.prepare(unet, opt, loader)
    _, total = trainer.total_steps(len(loader))
    adapt.warmup_steps(args, total)
    trainer.scheduler(opt, total)
    print(f"{len(train)} images {size}×{size} for \"{args.instance_prompt}\", {len(held)} held out", file=sys.stderr)
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.to(acc.device)
    cond_device = cond.to(acc.device)

    def train_step(b: dict[str, torch.Tensor]) -> dict[str, float]:
        x0 = (b["mean"] + b["std"] * torch.randn_like(b["std"])) * scale
        noise = torch.randn_like(x0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), device=x0.device)
        target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(x0, noise, t)
        with acc.autocast():
            pred = unet(scheduler.add_noise(x0, noise, t), t,
                        encoder_hidden_states=cond_device.expand(x0.shape[0], -1, -1)).sample
        loss = F.mse_loss(pred.float(), target)
        trainer.step(loss, unet, opt)
        return {"loss": loss.detach().item()}

    def sample_grid() -> np.ndarray:
        n = min(args.num_sample_images, 8)
        gens = [torch.Generator().manual_seed(args.seed + i) for i in range(n)]
        was_training = pipe.unet.training
        pipe.unet.eval()  # no LoRA dropout in samples
        images = pipe([args.instance_prompt] * n, num_inference_steps=args.sample_inference_steps, generator=gens,
                      output_type="pt").images  # (N, 3, H, W) in [0, 1]
        pipe.unet.train(was_training)
        return make_grid(images.float().cpu() * 2 - 1, nrow=min(n, 4))

    trainer.fit(loader, [unet], train_step, hooks=[(args.sample_steps, trainer.grid_hook(sample_grid))])

    def save_final(out: Path) -> None:
        from PIL import Image
        from peft.utils import get_peft_model_state_dict

        model = acc.unwrap_model(unet).eval()
        adapt.save_adapter(model, out, args)
        layers = {k.removeprefix("base_model.model."): v for k, v in get_peft_model_state_dict(model).items()}
        # Dropout 0 in diffusers' copy of the config: load_lora_weights leaves the layers it adds in training mode,
        # so a stock pipeline would drop out at inference and two calls with one seed would differ.
        type(pipe).save_lora_weights(str(out), unet_lora_layers=layers, safe_serialization=True,
                                     unet_lora_adapter_metadata={**model.peft_config["default"].to_dict(),
                                                                 "lora_dropout": 0.0})
        Image.fromarray(sample_grid()).save(out / "sample.png")
        figures = []
        if held:
            loss = denoising_loss(pipe.unet, scheduler, held_out, cond, scale, args.seed)
            name = "denoising loss (held-out images, instance prompt)"
            figures = [Figure(name, loss, "mse", "instance images"),
                       *adapt.base_figures([Figure(name, base_loss, "mse", "instance images")])]
        for f in figures:
            print(f"evaluation: {f.name} {f.value:.4g}", file=sys.stderr)
        write_card(args, out, figures, len(train), len(held), size, trainer.global_step)
        if args.merge:
            pipe.unet = model.merge_and_unload()
            pipe.save_pretrained(str(out / adapt.MERGED_DIR), safe_serialization=True)

    trainer.finish(save_final, models=[unet])


def write_card(args: argparse.Namespace, out: Path, figures: list[Figure], n_train: int, n_held: int, size: int,
               steps: int) -> None:
    ref = args.hub_model_id or args.output_dir
    evaluation = figures_table(figures) if figures else (
        "Not evaluated: fewer than three images, so none could be held out.")
    made = adapt.method(args)
    body = f"""{made[:1].upper()}{made[1:]}, trained DreamBooth-style with AIGC Hub's `training/train_diffusion.py` on
{n_train} images ({size}×{size}) under the instance prompt "{args.instance_prompt}", for {steps} optimizer steps
(batch {args.train_batch_size}, lr {args.learning_rate}, {args.lr_scheduler}, seed {args.seed}). LoRA on the UNet's
{", ".join(sorted(args.lora_target_modules.split(",") if args.lora_target_modules else TARGETS))}; the text encoder
and the VAE are the base's.

## Use

```bash
python -m aigc_hub generate image --model {ref} --prompt "{args.instance_prompt}" --steps 25 --seed 0 --out dog.png
```

With diffusers alone:

```python
from diffusers import DiffusionPipeline

pipe = DiffusionPipeline.from_pretrained("{args.base_model}")
pipe.load_lora_weights("{ref}")
image = pipe("{args.instance_prompt}", num_inference_steps=25).images[0]
```

## Evaluation

{evaluation}

The denoising loss is the UNet's mean squared error on {n_held} held-out image(s) of the subject, under the instance
prompt, at {EVAL_DRAWS} seeded (timestep, noise) draws each, the same draws for the base: lower means the model
expects this subject under this prompt. It is the project's own figure; it does not measure how varied or faithful
the samples are.

{args.card_notes}
"""
    card = render_card(title=args.card_title or f"{Path(args.output_dir).name} (DreamBooth LoRA)",
                       family="text-to-image", tags=["lora", "peft", "dreambooth"], datasets=[],
                       license=args.card_license, figures=figures, body=body, library_name="diffusers",
                       extra={"base_model": args.base_model, "instance_prompt": args.instance_prompt})
    card.save(out / "README.md")
