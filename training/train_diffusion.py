"""Train a (class-conditional) diffusion model: a diffusers `UNet2DModel` with a `DDPMScheduler`, from scratch or
adapted from a shared pipeline folder (`--base_model`; its noise schedule and size come with it): LoRA adapters on
its UNet (`--lora_rank N`, a PEFT folder) or every weight (`--lora_rank 0`). A text-to-image base (Stable Diffusion)
is adapted DreamBooth-style with an instance prompt (training/dreambooth.py).

    python training/train_diffusion.py --dataset ../shared/data/images/mnist/mnist.npz \
        --image_column x_train --label_column y_train --preset small --output_dir runs/ddpm
    python training/train_diffusion.py --base_model aigc-hub/ddpm-mnist --dataset my_digits.zip --output_dir runs/mine
    accelerate launch training/train_diffusion.py ...      # GPUs, or several CPU processes

The output folder is a standard diffusers pipeline folder (`model_index.json`, `unet/`, `scheduler/`, card): an
unconditional model loads with stock `DDPMPipeline.from_pretrained(folder)`, a class-conditional one with
`UNet2DModel.from_pretrained(folder, subfolder="unet")` and any scheduler's `from_pretrained(folder,
subfolder="scheduler")`. The saved UNet holds the EMA weights. Everything that is not diffusion-specific
(accelerate, accumulation, checkpoint/resume, EMA, trackers, push) lives in `training/common.py`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from aigc_hub.cards import Figure
from aigc_hub.models.diffusion import DEFAULT_SAMPLER, GUIDANCE_KEY, NULL_LABEL_KEY, SAMPLERS, denoise, null_label
from training import adapt, augment
from training.common import Trainer, adamw, add_common_args, add_optimizer_args, fit_batch
from training.diffusion_card import write_card
from training.image_data import ImageData
from training.image_eval import HeldOut, add_image_args, small_data_notice, training_images
from training.image_eval import sample_grid as sample_grid_of

PRESETS = {  # block_out_channels, layers_per_block; attention at the lowest resolution only
    "tiny": ((32, 64, 64), 1),  # 1.1 M parameters at 32 px, 1 channel: the CPU size
    "small": ((32, 64, 128), 2),
    "base": ((64, 128, 256), 2),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_image_args(parser)
    g = parser.add_argument_group("model")
    g.add_argument("--preset", choices=list(PRESETS), default="tiny")
    g.add_argument("--block_out_channels", type=int, nargs="+", default=None, help="overrides the preset's")
    g.add_argument("--layers_per_block", type=int, default=None)
    g.add_argument("--norm_num_groups", type=int, default=None, help="default: 32, or fewer for narrow blocks")
    g.add_argument("--prediction_type", choices=["epsilon", "v_prediction"], default="epsilon")
    g.add_argument("--num_train_timesteps", type=int, default=1000)
    g.add_argument("--beta_schedule", choices=["linear", "scaled_linear", "squaredcos_cap_v2"],
                   default="squaredcos_cap_v2", help="cosine (squaredcos_cap_v2) suits small images")
    g.add_argument("--timestep_spacing", choices=["leading", "trailing", "linspace"], default="leading",
                   help="where samplers put their steps (saved in scheduler_config.json). 'trailing' starts at the "
                        "last training step, where the input is pure noise; it needs --prediction_type v_prediction "
                        "with the cosine schedule (epsilon cannot be inverted where alpha_bar is ~0)")
    g.add_argument("--ema_decay", type=float, default=0.999)
    g.add_argument("--class_dropout", type=float, default=0.1,
                   help="labelled data: the share of images trained under the empty label, so that sampling can "
                        "use classifier-free guidance (the empty label is one more class row, as in DiT); 0: none. "
                        "A class-conditional --base_model without an empty label gets one (every weight trains)")
    g.add_argument("--augment_shift", type=float, default=0.0, metavar="SHIFT",
                   help="small datasets: move the training images by up to this share of their size "
                        "(0.125: 4 px at 32), --augment_p of them a batch. What the images show moved leaks into "
                        "the samples (a moved digit); benchmarks/bench_small_data.py measures whether it pays")
    g.add_argument("--augment_p", type=float, default=0.5, help="the share of training images --augment_shift moves")
    g.add_argument("--guidance_scale", type=float, default=None,
                   help="classifier-free guidance of the sample grids and the card's figures, saved as the "
                        "model's default (1: none; default: the base model's, else 1). With --eval_only: the "
                        "saved model's default becomes this")
    g = parser.add_argument_group("samples and evaluation")
    g.add_argument("--num_sample_images", type=int, default=40)
    g.add_argument("--sample_sampler", choices=list(SAMPLERS), default=DEFAULT_SAMPLER)
    g.add_argument("--sample_inference_steps", type=int, default=25)
    g.add_argument("--eval_steps_list", type=int, nargs="+", default=[10, 25, 50],
                   help="sampling steps the card reports FD and accuracy at")
    g.add_argument("--eval_sampler", choices=list(SAMPLERS), default=DEFAULT_SAMPLER)
    g.add_argument("--eval_only", action="store_true",
                   help="no training: evaluate the pipeline already saved in --output_dir at --eval_steps_list and "
                        "rewrite its card, keeping the card's figures at other step counts (its steps: "
                        "--max_train_steps)")
    add_optimizer_args(parser, weight_decay=0.0, beta2=0.999)
    adapt.add_adapt_args(parser)
    parser.add_argument("--instance_prompt", default=None,
                        help="a text-to-image base: the prompt naming the subject of your images (DreamBooth)")
    add_common_args(parser)
    parser.set_defaults(learning_rate=None, lr_scheduler="cosine", lr_warmup_steps=None, train_batch_size=128)
    # From scratch: 1e-3 and 250 warm-up steps; LoRA: half that lr; every weight: a tenth.
    args = adapt.settle(parser.parse_args(argv), lr=(1e-3, 5e-4, 1e-4), warmup=250)
    if not (0 <= args.augment_shift <= 0.5 and 0 < args.augment_p <= 1):
        parser.error("--augment_shift takes 0 to 0.5 (a share of the image size), --augment_p more than 0 up to 1")
    return args


def unet_config(args: argparse.Namespace, data: ImageData) -> dict:
    channels, layers = PRESETS[args.preset]
    channels = tuple(args.block_out_channels or channels)
    levels = len(channels)
    groups = args.norm_num_groups or min(32, *(c // 2 for c in channels))
    return dict(
        sample_size=args.resolution, in_channels=data.channels, out_channels=data.channels,
        layers_per_block=args.layers_per_block or layers, block_out_channels=channels, norm_num_groups=groups,
        down_block_types=("DownBlock2D",) * (levels - 1) + ("AttnDownBlock2D",),
        up_block_types=("AttnUpBlock2D",) + ("UpBlock2D",) * (levels - 1),
        num_class_embeds=data.num_classes + (args.class_dropout > 0) if data.num_classes else None,
        attention_head_dim=channels[-1] // 4 or None,
    )


def noise_scheduler(args: argparse.Namespace):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=args.num_train_timesteps, beta_schedule=args.beta_schedule,
                         prediction_type=args.prediction_type, clip_sample=True,
                         timestep_spacing=args.timestep_spacing)


@dataclass
class DiffusionRun:
    """Everything `main` trains with; benchmarks build it too, to time the very same step."""

    args: argparse.Namespace
    trainer: Trainer
    data: ImageData
    unet: torch.nn.Module  # prepared (DDP-wrapped when distributed)
    ema: torch.optim.swa_utils.AveragedModel
    scheduler: object  # the DDPMScheduler the model trains with (and ships)
    loader: DataLoader
    train_step: Callable[[dict[str, torch.Tensor]], dict[str, float]]
    base_figures: list[Figure] | None = None  # the base UNet's, measured as the final ones are (fine-tuning)


def load_base(args: argparse.Namespace) -> tuple[torch.nn.Module, object]:
    """The base pipeline's UNet and its noise scheduler (their config becomes the run's: resolution, prediction
    type, schedule)."""
    from diffusers import DDPMScheduler, UNet2DModel

    path = adapt.base_folder(args.base_model, "diffusion")
    unet = UNet2DModel.from_pretrained(str(path), subfolder="unet", use_safetensors=True)
    scheduler = DDPMScheduler.from_pretrained(str(path), subfolder="scheduler")
    args.resolution = unet.config.sample_size
    args.prediction_type, args.beta_schedule = scheduler.config.prediction_type, scheduler.config.beta_schedule
    args.num_train_timesteps = scheduler.config.num_train_timesteps
    return unet, scheduler


def setup(args: argparse.Namespace) -> DiffusionRun:
    from diffusers import UNet2DModel

    trainer = Trainer(args, project="train_diffusion")
    acc = trainer.accelerator
    unet, scheduler = load_base(args) if args.base_model else (None, None)
    data = training_images(args)
    base_figures = None
    if unet is not None:
        classes = (unet.config.num_class_embeds or 0) - (null_label(unet.config) is not None)
        if (data.channels, data.num_classes) != (unet.config.in_channels, classes):
            raise SystemExit(f"--base_model {args.base_model} makes {unet.config.in_channels}-channel images of "
                             f"{classes or 'no'} classes; this data has {data.channels} channel(s) and "
                             f"{data.num_classes or 'no'} classes")
        if trainer.is_main:  # before a step: the base's figures, measured as the final ones are
            base_figures = evaluate(args, unet, dict(scheduler.config), data.num_classes)[0]
        if args.lora_rank:
            unet = adapt.lora(unet, args, None, adapt.UNET_TARGETS)
        elif data.num_classes and args.class_dropout > 0 and null_label(unet.config) is None:
            add_null_label(unet)
    else:
        unet = UNet2DModel(**unet_config(args, data))
        if data.num_classes and args.class_dropout > 0:
            unet.register_to_config(**{NULL_LABEL_KEY: data.num_classes})
        scheduler = noise_scheduler(args)
    if args.guidance_scale is not None or GUIDANCE_KEY not in unet.config:
        unet.register_to_config(**{GUIDANCE_KEY: 1.0 if args.guidance_scale is None else args.guidance_scale})
    empty = null_label(unet.config) if args.class_dropout > 0 else None
    opt = adamw(unet, args)
    fit_batch(args, len(data.dataset), acc.num_processes)
    if trainer.is_main and not args.base_model:
        small_data_notice("diffusion", len(data.dataset))
    loader = DataLoader(data.dataset, batch_size=args.train_batch_size, shuffle=True, drop_last=True,
                        num_workers=args.dataloader_num_workers)
    ema = trainer.ema("unet", unet, args.ema_decay)
    unet, opt, loader = acc.prepare(unet, opt, loader)
    _, total = trainer.total_steps(len(loader))
    adapt.warmup_steps(args, total)
    trainer.scheduler(opt, total)
    if trainer.is_main:
        n_params = sum(p.numel() for p in unet.parameters())
        print(f"unet: {n_params / 1e6:.2f} M parameters, {len(data.dataset)} images {data.channels}×"
              f"{args.resolution}×{args.resolution}, {data.num_classes or 'no'} classes", file=sys.stderr)
    # On the training device once: add_noise indexes the schedule with the batch's timesteps.
    scheduler.alphas_cumprod = scheduler.alphas_cumprod.to(acc.device)

    def train_step(batch: dict[str, torch.Tensor]) -> dict[str, float]:
        clean = batch["pixel_values"].float() / 127.5 - 1.0
        if args.augment_shift:
            clean = augment.some(clean, args.augment_p, lambda x: augment.translate(x, args.augment_shift))
        noise = torch.randn_like(clean)
        t = torch.randint(0, args.num_train_timesteps, (clean.shape[0],), device=clean.device)
        noisy = scheduler.add_noise(clean, noise, t)
        target = noise if args.prediction_type == "epsilon" else scheduler.get_velocity(clean, noise, t)
        labels = batch.get("label")
        if labels is not None and empty is not None:  # some images train unconditioned (classifier-free guidance)
            labels = torch.where(torch.rand(labels.shape, device=labels.device) < args.class_dropout, empty, labels)
        with acc.autocast():
            pred = unet(noisy, t, class_labels=labels).sample
        loss = F.mse_loss(pred.float(), target)
        trainer.step(loss, unet, opt)
        return {"loss": loss.detach().item()}

    return DiffusionRun(args, trainer, data, unet, ema, scheduler, loader, train_step, base_figures)


def add_null_label(unet: torch.nn.Module) -> None:
    """One more class row, the empty label, started at the mean of the others (the average class)."""
    old = unet.class_embedding
    new = torch.nn.Embedding(old.num_embeddings + 1, old.embedding_dim).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        new.weight[:-1] = old.weight
        new.weight[-1] = old.weight.mean(0)
    unet.class_embedding = new
    unet.register_to_config(num_class_embeds=new.num_embeddings, **{NULL_LABEL_KEY: old.num_embeddings})
    print(f"the base model gets an empty label ({old.num_embeddings}) for classifier-free guidance", file=sys.stderr)


def guidance_of(unet: torch.nn.Module) -> tuple[int | None, float]:
    """The empty label (None: no guidance) and the default scale the model samples with."""
    return null_label(unet.config), float(unet.config.get(GUIDANCE_KEY, 1.0))


def sample(unet: torch.nn.Module, scheduler_config: dict, seeds: list[int], labels: torch.Tensor | None,
           steps: int, sampler: str) -> torch.Tensor:
    """Images in [-1, 1] from the EMA UNet, batch-size independent (one generator per seed), at the model's own
    guidance scale."""
    empty, guidance = guidance_of(unet)
    return denoise(unet.eval(), scheduler_config, seeds, steps=steps, sampler=sampler, labels=labels,
                   guidance=guidance, null_label=empty)


def evaluate_saved(args: argparse.Namespace) -> None:
    """--eval_only: the figures and card of a finished run's pipeline folder, without training. Figures the card
    already has at step counts not in --eval_steps_list are kept, so the 50-step figures can be added later."""
    from diffusers import UNet2DModel

    from aigc_hub.cards import read_card

    out = Path(args.output_dir)
    if (out / "adapter_config.json").is_file():
        raise SystemExit(f"--eval_only evaluates a pipeline folder; {out} holds a LoRA adapter (its card's figures "
                         "were measured when it was trained)")
    unet = UNet2DModel.from_pretrained(str(out), subfolder="unet", use_safetensors=True)
    if args.guidance_scale is not None:  # the figures are measured at the default the model will have
        unet.register_to_config(**{GUIDANCE_KEY: args.guidance_scale})
        set_unet_config(out, {GUIDANCE_KEY: args.guidance_scale})  # (save_config would add the folder's path)
    config = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    data = training_images(args)
    save_sample_grid(args, unet, config, data.num_classes, out / "sample.png")
    old = read_card(out).figures
    speed_steps = sorted({*args.eval_steps_list, *filter(None, map(steps_of, old))})
    figures, speed = evaluate(args, unet, config, data.num_classes, speed_steps)
    for f in figures:
        print(f"evaluation: {f.name} {f.value:.4g} ({f.dataset})", file=sys.stderr)
    new = {f.name for f in figures}
    figures = sorted(figures + [f for f in old if f.name not in new and steps_of(f)], key=lambda f: steps_of(f) or 0)
    write_card(args, out, data, figures, speed, args.max_train_steps, sum(p.numel() for p in unet.parameters()),
               *guidance_of(unet))


def set_unet_config(out: Path, values: dict) -> None:
    """Set `values` in the saved UNet's config.json, and drop the path it was loaded from (diffusers writes a base
    model's folder there: a path of the training machine)."""
    saved = out / "unet" / "config.json"
    config = {k: v for k, v in json.loads(saved.read_text()).items() if k != "_name_or_path"}
    saved.write_text(json.dumps({**config, **values}, indent=2, sort_keys=True) + "\n")


def steps_of(figure: Figure) -> int | None:
    """The sampling steps a card figure was measured at ("FD (classifier features), 25 steps" → 25)."""
    match = re.search(r", (\d+) steps$", figure.name)
    return int(match.group(1)) if match else None


def save_sample_grid(args: argparse.Namespace, unet: torch.nn.Module, config: dict, num_classes: int,
                     path: Path) -> None:
    from PIL import Image

    seeds = list(range(args.seed, args.seed + args.num_sample_images))
    labels = torch.arange(args.num_sample_images) % num_classes if num_classes else None
    images = sample(unet, config, seeds, labels, args.sample_inference_steps, args.sample_sampler)
    Image.fromarray(sample_grid_of(images, num_classes).squeeze()).save(path)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.eval_only:
        return evaluate_saved(args)
    if args.base_model and adapt.base_family(args.base_model, ("diffusion", "text-to-image")) == "text-to-image":
        from training import dreambooth

        return dreambooth.run(args)
    run = setup(args)
    trainer, data, ema = run.trainer, run.data, run.ema
    config = dict(run.scheduler.config)
    seeds = list(range(args.seed, args.seed + args.num_sample_images))
    fixed_labels = torch.arange(args.num_sample_images) % data.num_classes if data.num_classes else None

    def sample_grid() -> np.ndarray:
        images = sample(ema.module, config, seeds, fixed_labels, args.sample_inference_steps, args.sample_sampler)
        return sample_grid_of(images, data.num_classes)

    trainer.fit(run.loader, [run.unet], run.train_step,
                hooks=[(args.sample_steps, trainer.grid_hook(sample_grid))])

    def save_final(out: Path) -> None:
        from diffusers import DDPMPipeline
        from PIL import Image

        unet = ema.module.eval()
        if adapt.is_lora(unet):  # the adapter (EMA weights): adapter_config.json + adapter_model.safetensors
            adapt.save_adapter(unet, out, args)
        else:  # the pipeline folder: model_index.json, unet/ (EMA weights, safetensors), scheduler/
            DDPMPipeline(unet=unet, scheduler=run.scheduler).save_pretrained(str(out), safe_serialization=True)
            set_unet_config(out, {})
        Image.fromarray(sample_grid().squeeze()).save(out / "sample.png")
        figures, speed = evaluate(args, unet, config, data.num_classes)
        figures += adapt.base_figures(run.base_figures or [])
        for f in figures:  # on the console too, not only in the card
            print(f"evaluation: {f.name} {f.value:.4g} ({f.dataset})", file=sys.stderr)
        trained = sum(p.numel() for p in unet.parameters() if p.requires_grad or not adapt.is_lora(unet))
        write_card(args, out, data, figures, speed, trainer.global_step, trained, *guidance_of(unet))
        if args.merge:  # folds the adapter into the EMA UNet: last
            DDPMPipeline(unet=unet.merge_and_unload(), scheduler=run.scheduler).save_pretrained(
                str(out / adapt.MERGED_DIR), safe_serialization=True)

    trainer.finish(save_final, models=[run.unet])


def evaluate(args: argparse.Namespace, unet: torch.nn.Module, scheduler_config: dict, num_classes: int,
             speed_steps: list[int] | None = None) -> tuple[list[Figure], dict[int, float]]:
    """Card figures at each of --eval_steps_list (FD, its floor once, conditional accuracy), sampled on the GPU where
    there is one (10,000 samples × 85 steps take hours on a CPU), and ms per image on this machine's CPU (at
    `speed_steps`, default the same list). Leaves `unet` on the CPU."""
    figures = []
    if HeldOut.wanted(args):
        held_out = HeldOut(args)
        unet = unet.to("cuda" if torch.cuda.is_available() else "cpu").float().eval()
        for i, steps in enumerate(args.eval_steps_list):
            def generate(start: int, n: int, labels: torch.Tensor | None, steps: int = steps) -> torch.Tensor:
                # Evaluation seeds are apart from the sample grid's: args.seed + 1_000_000 + item.
                first = args.seed + 1_000_000 + start
                return sample(unet, scheduler_config, list(range(first, first + n)), labels, steps,
                              args.eval_sampler)

            # A CPU runs a UNet pass over 500 images several times slower per image than over 64 (cache-bound).
            scores = held_out.score(generate, num_classes, generate_batch=500 if unet.device.type == "cuda" else 64)
            figures += held_out.figures(scores, f", {steps} steps", floor=i == 0)
    unet = unet.cpu().float().eval()
    labels = torch.arange(64) % num_classes if num_classes else None
    speed = {}
    for steps in speed_steps or args.eval_steps_list:  # ms per image in a batch of 64, on this machine's CPU
        begin = time.perf_counter()
        sample(unet, scheduler_config, list(range(64)), labels, steps, args.eval_sampler)
        speed[steps] = 1000 * (time.perf_counter() - begin) / 64
    return figures, speed


if __name__ == "__main__":
    main()
