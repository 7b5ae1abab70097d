"""Train a (class-conditional) DCGAN, from scratch or fine-tuned from a shared one (`--base_model`: every weight;
its discriminator too when its folder keeps one, as this script's outputs do).

    python training/train_gan.py --dataset ../shared/data/images/mnist/mnist.npz \
        --image_column x_train --label_column y_train --output_dir runs/gan
    python training/train_gan.py --base_model aigc-hub/dcgan-mnist --dataset my_digits.zip --output_dir runs/mine
    accelerate launch training/train_gan.py ...            # GPUs, or several CPU processes

Everything that is not GAN-specific (accelerate, accumulation, checkpoint/resume, EMA, trackers, push) lives in
`training/common.py`. Losses: hinge loss for the spectrally normalised projection discriminator.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from aigc_hub.cards import Figure, figures_table, render_card
from aigc_hub.models.dcgan import Generator, Discriminator
from training import adapt
from training.augment import translate
from training.common import Trainer, add_common_args, fit_batch
from training.image_data import ImageData
from training.image_eval import (HeldOut, add_image_args, method_text, samples_section, small_data_notice,
                                  training_images)
from training.image_eval import sample_grid as sample_grid_of


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_image_args(parser)
    g = parser.add_argument_group("model")
    g.add_argument("--latent_dim", type=int, default=100)
    g.add_argument("--base_channels", type=int, default=64)
    g.add_argument("--embed_dim", type=int, default=32)
    g.add_argument("--ema_decay", type=float, default=0.999)
    g.add_argument("--adam_beta1", type=float, default=0.5)
    g.add_argument("--adam_beta2", type=float, default=0.999)
    g.add_argument("--num_sample_images", type=int, default=64)
    g.add_argument("--eval_only", action="store_true",
                   help="no training: evaluate the generator already saved in --output_dir and rewrite its card "
                        "(its steps: --max_train_steps)")
    g.add_argument("--diff_augment", type=float, default=0.0, metavar="SHIFT",
                   help="small datasets: shift real and fake images by up to this share of their size before the "
                        "discriminator sees them (DiffAugment translation; 0.125 is the paper's)")
    adapt.add_adapt_args(parser, lora=False)
    add_common_args(parser)
    return parser.parse_args(argv)


@dataclass
class GanRun:
    """Everything `main` trains with; benchmarks build it too, to time the very same step."""

    args: argparse.Namespace
    trainer: Trainer
    data: ImageData
    gen: torch.nn.Module  # prepared (DDP-wrapped when distributed)
    disc: torch.nn.Module
    ema: torch.optim.swa_utils.AveragedModel
    loader: DataLoader
    train_step: Callable[[dict[str, torch.Tensor]], dict[str, float]]
    base_figures: list[Figure] | None = None  # the base generator's, measured as the final ones are (fine-tuning)


def load_base(args: argparse.Namespace) -> tuple[Generator, Path]:
    """The base generator; its shape becomes the run's (resolution, latent size, widths)."""
    path = adapt.base_folder(args.base_model, "dcgan")
    base = Generator.from_pretrained(str(path), strict=True)
    args.resolution, args.latent_dim = base.resolution, base.latent_dim
    config = base._hub_mixin_config  # what it was built with
    args.base_channels, args.embed_dim = config["base_channels"], config["embed_dim"]
    return base, path


def fine_tuned(base: Generator, path: Path, data: ImageData, args: argparse.Namespace
               ) -> tuple[Generator, Discriminator]:
    """The base's generator (named with this data's classes) and its discriminator, or a new one when the base's
    folder keeps none; the data must be images of the base's channels and number of classes."""
    if (data.channels, data.num_classes) != (base.channels, base.num_classes):
        raise SystemExit(f"--base_model {args.base_model} makes {base.channels}-channel images of "
                         f"{base.num_classes or 'no'} classes; this data has {data.channels} channel(s) and "
                         f"{data.num_classes or 'no'} classes")
    gen = Generator(resolution=base.resolution, channels=base.channels, latent_dim=base.latent_dim,
                    num_classes=base.num_classes, base_channels=args.base_channels, embed_dim=args.embed_dim,
                    class_names=data.class_names)
    gen.load_state_dict(base.state_dict())
    if (path / "discriminator").is_dir():
        disc = Discriminator.from_pretrained(str(path / "discriminator"), strict=True)
        print(f"fine-tuning {args.base_model}: its generator and discriminator", file=sys.stderr)
    else:
        disc = Discriminator(resolution=base.resolution, channels=base.channels, num_classes=base.num_classes,
                             base_channels=args.base_channels)
        print(f"fine-tuning {args.base_model}: its generator, and a new discriminator (its folder keeps none)",
              file=sys.stderr)
    return gen, disc


def setup(args: argparse.Namespace) -> GanRun:
    trainer = Trainer(args, project="train_gan")
    acc = trainer.accelerator
    base, path = load_base(args) if args.base_model else (None, None)
    data = training_images(args)
    base_figures = None
    if base is not None:
        gen, disc = fine_tuned(base, path, data, args)
        if trainer.is_main:
            base_figures = evaluate(args, base, data.num_classes)
    else:
        gen = Generator(resolution=args.resolution, channels=data.channels, latent_dim=args.latent_dim,
                        num_classes=data.num_classes, base_channels=args.base_channels, embed_dim=args.embed_dim,
                        class_names=data.class_names)
        disc = Discriminator(resolution=args.resolution, channels=data.channels, num_classes=data.num_classes,
                             base_channels=args.base_channels)
    betas = (args.adam_beta1, args.adam_beta2)
    # Fused: one kernel per update instead of a for-each over every parameter (see training.common.adamw).
    opt_g = torch.optim.Adam(gen.parameters(), lr=args.learning_rate, betas=betas, fused=True)
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.learning_rate, betas=betas, fused=True)
    fit_batch(args, len(data.dataset), acc.num_processes)
    if trainer.is_main and base is None:
        small_data_notice("gan", len(data.dataset))
    loader = DataLoader(data.dataset, batch_size=args.train_batch_size, shuffle=True, drop_last=True,
                        num_workers=args.dataloader_num_workers)
    ema = trainer.ema("generator", gen, args.ema_decay)
    gen, disc, opt_g, opt_d, loader = acc.prepare(gen, disc, opt_g, opt_d, loader)
    _, total = trainer.total_steps(len(loader))
    trainer.scheduler(opt_g, total)
    trainer.scheduler(opt_d, total)
    disc_raw = acc.unwrap_model(disc)

    def augment(images: torch.Tensor) -> torch.Tensor:
        return translate(images, args.diff_augment) if args.diff_augment else images

    def train_step(batch: dict[str, torch.Tensor]) -> dict[str, float]:
        real = batch["pixel_values"].float() / 127.5 - 1.0
        labels = batch.get("label")
        z = torch.randn(real.shape[0], args.latent_dim, device=real.device)
        with acc.autocast():
            fake = gen(z, labels)
            # One discriminator call for real and fake: DDP sees one forward per backward.
            both = disc(augment(torch.cat([real, fake.detach()])),
                        None if labels is None else torch.cat([labels, labels]))
            d_real, d_fake = both.chunk(2)
            loss_d = F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
        acc.backward(loss_d)
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)
        # Generator step through the unwrapped, frozen discriminator: no stray gradients, no DDP hook on D.
        disc_raw.requires_grad_(False)
        with acc.autocast():
            loss_g = -disc_raw(augment(fake), labels).mean()
        acc.backward(loss_g)
        disc_raw.requires_grad_(True)
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        return {"loss_d": loss_d.detach().item(), "loss_g": loss_g.detach().item()}

    return GanRun(args, trainer, data, gen, disc, ema, loader, train_step, base_figures)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.eval_only:
        return evaluate_saved(args)
    run = setup(args)
    trainer, data, ema = run.trainer, run.data, run.ema
    disc_raw = trainer.accelerator.unwrap_model(run.disc)
    fixed = torch.Generator().manual_seed(args.seed)
    fixed_z = torch.randn(args.num_sample_images, args.latent_dim, generator=fixed)
    fixed_labels = torch.arange(args.num_sample_images) % data.num_classes if data.num_classes else None

    @torch.no_grad()
    def sample_grid() -> np.ndarray:  # one column per class
        model = ema.module.eval()
        device = next(model.parameters()).device
        images = model(fixed_z.to(device), None if fixed_labels is None else fixed_labels.to(device))
        return sample_grid_of(images, data.num_classes)

    trainer.fit(run.loader, [run.gen, run.disc], run.train_step,
                hooks=[(args.sample_steps, trainer.grid_hook(sample_grid))])

    def save_final(out: Path) -> None:
        from PIL import Image

        final = ema.module.eval()
        final.save_pretrained(str(out))
        disc_raw.save_pretrained(str(out / "discriminator"))  # kept for fine-tuning; not needed to generate
        Image.fromarray(sample_grid().squeeze()).save(out / "sample.png")
        figures = evaluate(args, final, data.num_classes)
        base = adapt.base_figures(run.base_figures or [])
        for f in figures + base:  # on the console too, not only in the card
            print(f"evaluation: {f.name} {f.value:.4g} ({f.dataset})", file=sys.stderr)
        write_card(args, out, data, figures + base, trainer.global_step)

    trainer.finish(save_final, models=[run.gen, run.disc])


def evaluate_saved(args: argparse.Namespace) -> None:
    """--eval_only: the figures and card of a finished run's generator, without training."""
    out = Path(args.output_dir)
    data = training_images(args)
    figures = evaluate(args, Generator.from_pretrained(str(out), strict=True), data.num_classes)
    for f in figures:
        print(f"evaluation: {f.name} {f.value:.4g} ({f.dataset})", file=sys.stderr)
    write_card(args, out, data, figures, args.max_train_steps)


def evaluate(args: argparse.Namespace, gen: Generator, num_classes: int) -> list[Figure]:
    """Fréchet distance (+ floor) and conditional accuracy on the held-out images, when a classifier is given."""
    if not HeldOut.wanted(args):
        return []
    held_out = HeldOut(args)
    gen = gen.cpu().float().eval()

    def generate(start: int, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        g = torch.Generator().manual_seed(args.seed + 1 + start)  # evaluation noise differs from training noise
        return gen(torch.randn(n, gen.latent_dim, generator=g), labels)

    return held_out.figures(held_out.score(generate, num_classes))


def write_card(args: argparse.Namespace, out: Path, data: ImageData, figures: list[Figure], steps: int) -> None:
    kind = f"class-conditional ({data.num_classes} classes)" if data.num_classes else "unconditional"
    names = ", ".join(f"{i} `{n}`" for i, n in enumerate(data.class_names or []))
    classes = f"\nClasses (`--label` takes the id or the name): {names}.\n" if names else ""
    dataset = args.card_dataset or Path(args.dataset).stem
    ref = args.hub_model_id or args.output_dir
    how = (f"fine-tuned from `{args.base_model}` (every weight; the base's figures below are measured on the same "
           "held-out images before training)" if args.base_model else "trained from scratch")
    body = f"""A {kind} DCGAN generating {args.resolution}×{args.resolution} images with {data.channels} channel(s),
{how} with AIGC Hub's `training/train_gan.py` for {steps} optimizer steps
(batch {args.train_batch_size} × {args.gradient_accumulation_steps} accumulation, lr {args.learning_rate}, seed {args.seed}).
The weights are the EMA (decay {args.ema_decay}) of the generator.
{classes}
## Use

```bash
python -m aigc_hub generate image --model {ref} --num 16 --seed 0 --out grid.png
```

```python
from aigc_hub import hub
from aigc_hub.models.dcgan import Generator
generator = Generator.from_pretrained(hub.resolve("{ref}"))  # local hub, starters or HF Hub
```

{samples_section(data.num_classes, data.class_names)}
## Evaluation

{figures_table(figures)}

{method_text(args)}

{args.card_notes}
"""
    tags = (["class-conditional"] if data.num_classes else []) + (["fine-tuned"] if args.base_model else [])
    card = render_card(title=args.card_title or f"DCGAN {dataset}", family="dcgan", tags=tags,
                       datasets=[dataset], license=args.card_license, figures=figures, body=body,
                       extra=adapt.base_metadata(args, adapter=False) or None)
    card.save(out / "README.md")


if __name__ == "__main__":
    main()
