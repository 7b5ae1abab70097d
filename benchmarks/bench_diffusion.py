"""Speed of the diffusion path, each figure against a baseline run in the same process.

1. train_diffusion.py's training step (the real `Trainer.fit` loop: accelerate, accumulation bookkeeping, schedules,
   EMA, logging) vs a bare diffusers loop over the same UNet configuration, batches, `add_noise` + MSE, AdamW and EMA.
   Target ratio ≤ 1.05. Both run with the allocator setting the helper applies on CPU (`keep_freed_memory`), set
   once for the whole process before either loop, so neither inherits the other's page-fault history.
2. 64 images through `ImageService.generate` (per-image generators, labels, uint8 conversion, progress) vs the bare
   UNet + scheduler loop on the same batch, on the same device worker thread. Target overhead ≤ 10 %.

    python benchmarks/bench_diffusion.py [--steps 20] [--repeats 3] [--preset tiny] [--sampling-steps 25]
"""

from __future__ import annotations

import argparse
import statistics
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from aigc_hub.devices import keep_freed_memory
from benchmarks.bench_gan import make_data, take_turns
from training.common import adamw
from training.image_data import load_images
from training.train_diffusion import noise_scheduler, parse_args, setup, unet_config


def run_args(data: Path, steps: int, batch: int, preset: str, out: Path) -> argparse.Namespace:
    return parse_args(["--dataset", str(data), "--image_column", "x_train", "--label_column", "y_train",
                       "--output_dir", str(out), "--max_train_steps", str(steps), "--train_batch_size", str(batch),
                       "--preset", preset, "--report_to", "none", "--sample_steps", "0", "--checkpointing_steps", "0",
                       "--max_train_samples", str(batch * steps)])


def time_helper(args: argparse.Namespace) -> float:
    run = setup(args)
    start = time.perf_counter()
    run.trainer.fit(run.loader, [run.unet], run.train_step)
    return (time.perf_counter() - start) / args.max_train_steps


def time_bare(args: argparse.Namespace) -> float:
    """The diffusers training example's step in plain PyTorch on the same dataset object and DataLoader settings."""
    from diffusers import UNet2DModel

    torch.manual_seed(args.seed)
    data = load_images(args.dataset, resolution=args.resolution, image_column=args.image_column,
                       label_column=args.label_column, limit=args.max_train_samples)
    unet = UNet2DModel(**unet_config(args, data))
    scheduler = noise_scheduler(args)
    opt = adamw(unet, args)
    ema = AveragedModel(unet, multi_avg_fn=get_ema_multi_avg_fn(args.ema_decay), use_buffers=True)
    loader = DataLoader(data.dataset, batch_size=args.train_batch_size, shuffle=True, drop_last=True)
    start = time.perf_counter()
    for item in loader:
        clean, labels = item["pixel_values"].float() / 127.5 - 1.0, item["label"]
        noise = torch.randn_like(clean)
        t = torch.randint(0, args.num_train_timesteps, (clean.shape[0],))
        loss = F.mse_loss(unet(scheduler.add_noise(clean, noise, t), t, class_labels=labels).sample, noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), args.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema.update_parameters(unet)
        loss.item()
    return (time.perf_counter() - start) / args.max_train_steps


def time_sampling(args: argparse.Namespace, tmp: Path, steps: int, repeats: int) -> tuple[list[float], list[float]]:
    """Seconds for 64 images: ImageService vs the bare loop (one batch, one generator), turns taken."""
    from diffusers import DDPMPipeline, DPMSolverMultistepScheduler, UNet2DModel

    from aigc_hub.services import ImageService, ModelRegistry

    data = load_images(args.dataset, resolution=args.resolution, image_column=args.image_column,
                       label_column=args.label_column, limit=256)
    torch.manual_seed(0)
    folder = tmp / "pipeline"
    DDPMPipeline(unet=UNet2DModel(**unet_config(args, data)).eval(), scheduler=noise_scheduler(args)
                 ).save_pretrained(str(folder))
    service = ImageService(ModelRegistry())
    service.generate(str(folder), 64, seed=0, steps=2)  # load once: loading is not what we time
    entry = service.registry.get(str(folder))
    unet, labels = entry.model, torch.arange(64) % 10

    @torch.no_grad()
    def bare() -> float:
        start = time.perf_counter()
        sched = DPMSolverMultistepScheduler.from_config(entry.extras["scheduler"])
        sched.set_timesteps(steps)
        x = torch.randn(64, 1, args.resolution, args.resolution, generator=torch.Generator().manual_seed(0))
        for t in sched.timesteps:
            x = sched.step(unet(x, t, class_labels=labels).sample, t, x).prev_sample
        ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return time.perf_counter() - start

    raw, svc = [], []
    for _ in range(repeats):
        raw.append(service.registry.run(entry.device, bare))  # the service's worker thread: same OpenMP team
        start = time.perf_counter()
        service.generate(str(folder), 64, seed=0, steps=steps, sampler="dpm-solver")
        svc.append(time.perf_counter() - start)
    return raw, svc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--sampling-steps", type=int, default=25)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/images/mnist/mnist.npz")
    cli = parser.parse_args()
    kept = keep_freed_memory()
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"glibc keeps freed memory: {kept}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        args = run_args(make_data(cli.data, tmp), cli.steps, cli.batch, cli.preset, tmp / "run")
        bare, helper = take_turns(cli.repeats, lambda: time_bare(args), lambda: time_helper(args))
        ratios = [h / b for h, b in zip(helper, bare)]
        print(f"training step (preset {cli.preset}, batch {cli.batch}, 32 px, EMA), {cli.repeats} repeats: "
              f"train_diffusion.py {min(helper) * 1e3:.0f}–{max(helper) * 1e3:.0f} ms, bare diffusers loop "
              f"{min(bare) * 1e3:.0f}–{max(bare) * 1e3:.0f} ms; ratio per repeat {min(ratios):.3f}–{max(ratios):.3f}, "
              f"median {statistics.median(ratios):.3f}, of the bests {min(helper) / min(bare):.3f} (target <= 1.05)")
        raw, svc = time_sampling(args, tmp, cli.sampling_steps, cli.repeats)
        print(f"64 images, {cli.sampling_steps} DPM-Solver++ steps: ImageService {min(svc) * 1e3:.0f} ms, bare UNet + "
              f"scheduler loop {min(raw) * 1e3:.0f} ms, overhead {100 * (min(svc) / min(raw) - 1):+.1f} % "
              f"(bests of {cli.repeats}; target <= 10 %)")


if __name__ == "__main__":
    main()
