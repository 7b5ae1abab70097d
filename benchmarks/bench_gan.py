"""Speed of the image path, each figure against a baseline run in the same process.

1. train_gan.py's training step (the real `Trainer.fit` loop: accelerate, accumulation bookkeeping, schedulers,
   EMA, logging) vs a bare PyTorch loop over the same nets, optimizers, batches and EMA. Target ratio ≤ 1.05.
2. 64 images through `ImageService.generate` (per-item seeds, labels, uint8 conversion) vs one raw generator
   forward of the same batch. Target overhead ≤ 10 %.

    python benchmarks/bench_gan.py [--steps 150] [--repeats 3] [--data ../shared/data/images/mnist/mnist.npz]
"""

from __future__ import annotations

import argparse
import statistics
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from aigc_hub.devices import keep_freed_memory
from aigc_hub.models.dcgan import Discriminator, Generator
from aigc_hub.services import ImageService, ModelRegistry
from training.image_data import load_images
from training.train_gan import parse_args, setup


def make_data(path: Path | None, tmp: Path) -> Path:
    if path and path.exists():
        return path
    rng = np.random.default_rng(0)
    out = tmp / "digits.npz"
    np.savez(out, x_train=(rng.random((8192, 28, 28)) * 255).astype(np.uint8),
             y_train=rng.integers(0, 10, 8192).astype(np.uint8))
    return out


def take_turns(repeats: int, first: Callable[[], float],
               second: Callable[[], float]) -> tuple[list[float], list[float]]:
    """Each timing `repeats` times, interleaved so that drift in machine load hits both; who goes first alternates
    (the first loop of a process pays for lazy initialisation)."""
    a, b = [], []
    for r in range(repeats):
        if r % 2:
            b.append(second())
            a.append(first())
        else:
            a.append(first())
            b.append(second())
    return a, b


def time_helper(data: Path, steps: int, batch: int, tmp: Path) -> float:
    args = parse_args(["--dataset", str(data), "--image_column", "x_train", "--label_column", "y_train",
                       "--output_dir", str(tmp / "bench-run"), "--max_train_steps", str(steps),
                       "--train_batch_size", str(batch), "--report_to", "none", "--sample_steps", "0",
                       "--checkpointing_steps", "0", "--max_train_samples", str(batch * steps)])
    run = setup(args)
    start = time.perf_counter()
    run.trainer.fit(run.loader, [run.gen, run.disc], run.train_step)
    return (time.perf_counter() - start) / steps


def time_bare(data: Path, steps: int, batch: int) -> float:
    """The same step in plain PyTorch, on the same dataset object and DataLoader settings as the helper's (dicts of
    uint8 tensors from training/image_data.py, shuffled, whole batches): only the loop around it differs."""
    torch.manual_seed(0)
    images = load_images(str(data), resolution=32, image_column="x_train", label_column="y_train",
                         limit=batch * steps)
    gen = Generator(resolution=32, channels=1, num_classes=10)
    disc = Discriminator(resolution=32, channels=1, num_classes=10)
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=True)  # as train_gan.py
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999), fused=True)
    ema = AveragedModel(gen, multi_avg_fn=get_ema_multi_avg_fn(0.999), use_buffers=True)
    loader = DataLoader(images.dataset, batch_size=batch, shuffle=True, drop_last=True)
    start = time.perf_counter()
    for item in loader:
        real, labels = item["pixel_values"].float() / 127.5 - 1.0, item["label"]
        fake = gen(torch.randn(batch, 100), labels)
        d_real, d_fake = disc(torch.cat([real, fake.detach()]), torch.cat([labels, labels])).chunk(2)
        loss_d = F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
        loss_d.backward()
        opt_d.step()
        opt_d.zero_grad(set_to_none=True)
        disc.requires_grad_(False)
        loss_g = -disc(fake, labels).mean()
        loss_g.backward()
        disc.requires_grad_(True)
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        ema.update_parameters(gen)
        loss_d.item(), loss_g.item()
    return (time.perf_counter() - start) / steps


def time_generation(tmp: Path, repeats: int) -> tuple[float, float]:
    torch.manual_seed(0)
    gen = Generator(resolution=32, channels=1, num_classes=10).eval()
    gen.save_pretrained(str(tmp / "gen"))
    service = ImageService(ModelRegistry())
    service.generate(str(tmp / "gen"), 64, seed=0)  # load once; loading is not what we time
    raw_model = service.registry.get(str(tmp / "gen")).model
    z, labels = torch.randn(64, 100), torch.arange(64) % 10
    raw, svc = [], []
    for _ in range(repeats * 10):
        start = time.perf_counter()
        with torch.no_grad():
            raw_model(z, labels)
        raw.append(time.perf_counter() - start)
        start = time.perf_counter()
        service.generate(str(tmp / "gen"), 64, seed=0)
        svc.append(time.perf_counter() - start)
    return float(np.median(raw)), float(np.median(svc))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/images/mnist/mnist.npz")
    args = parser.parse_args()
    kept = keep_freed_memory()  # the helper sets it on CPU: set it before either loop, for both
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"glibc keeps freed memory: {kept}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_data(args.data, tmp)
        bare, helper = take_turns(args.repeats, lambda: time_bare(data, args.steps, args.batch),
                                  lambda: time_helper(data, args.steps, args.batch, tmp))
        ratios = [h / b for h, b in zip(helper, bare)]  # each repeat's pair ran back to back
        print(f"training step (batch {args.batch}, 32 px, base 64), {args.repeats} repeats: train_gan.py "
              f"{min(helper) * 1e3:.1f}–{max(helper) * 1e3:.1f} ms, bare PyTorch {min(bare) * 1e3:.1f}–"
              f"{max(bare) * 1e3:.1f} ms; ratio per repeat {min(ratios):.3f}–{max(ratios):.3f}, median "
              f"{statistics.median(ratios):.3f}, of the bests {min(helper) / min(bare):.3f} (target <= 1.05)")
        raw, svc = time_generation(tmp, args.repeats)
        print(f"64 images: ImageService {svc * 1e3:.2f} ms, raw forward {raw * 1e3:.2f} ms, "
              f"overhead {100 * (svc / raw - 1):+.1f} % (target <= 10 %)")


if __name__ == "__main__":
    main()
