"""GAN vs diffusion on MNIST, measured in one run: the README's side-by-side table.

Both shipped starters (`aigc-hub/dcgan-mnist`, `aigc-hub/ddpm-mnist`) are served by `ImageService`, exactly as the app
serves them, and scored by the evaluation code the training scripts write into their cards: Fréchet distance in the
shipped MNIST classifier's features against the 10,000 test images (with the real-vs-real floor at the same sample
count) and conditional accuracy. Speed is ms per image for one batch of 64 (best of `--repeats`, one warm-up), with
the diffusion model at each step count (DPM-Solver++). Parameters are counted on the loaded weights; training time is
the one measured when the starter was trained (its recipe / card), since retraining does not fit in a benchmark.

    python benchmarks/bench_image_families.py [--samples 10000] [--steps 10 25 50] [--repeats 3]
    python benchmarks/bench_image_families.py --samples 0     # speed only; quality read from the cards

Samples use seeds from 2·10**6 on, apart from the cards' evaluation seeds. Use 10,000: with 128 features the FD of
a few thousand samples is mostly estimation bias (at 2,000 the real-vs-real floor is 24.7, not 2.44, and lies above
both models), so smaller runs do not rank models. A full run costs ~75 min on a 2-core CPU (diffusion at 85 steps).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch

from aigc_hub.cards import read_card
from aigc_hub.evaluation.classifier import load_classifier
from aigc_hub.evaluation.image_metrics import evaluate_generator
from aigc_hub.services import ImageService, ModelRegistry
from training.image_data import load_images

GAN, DIFFUSION = "aigc-hub/dcgan-mnist", "aigc-hub/ddpm-mnist"
TRAINING_TIME = {GAN: "~36 min (4,680 steps of 128)", DIFFUSION: "106 min (6,000 steps of 64)"}  # from the recipes
SEED = 2 * 10**6  # the cards evaluate from seed 10**6 (diffusion) and 1 (GAN)
BATCH = 60  # a multiple of the 10 classes: the service's label i mod 10 then matches the evaluation's labels


def score(service: ImageService, ref: str, test: torch.Tensor, train: torch.Tensor, samples: int,
          steps: int | None, classifier: torch.nn.Module) -> tuple[float, float, float]:
    def generate(start: int, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        result = service.generate(ref, n, seed=SEED + start, steps=steps)
        assert labels is None or result.labels == labels.tolist()
        return torch.from_numpy(result.images).permute(0, 3, 1, 2).float() / 127.5 - 1

    scores = evaluate_generator(generate, test, train, num_classes=10, num_samples=samples, classifier=classifier,
                                generate_batch=BATCH)
    return scores.fd, scores.fd_floor, scores.class_accuracy or 0.0


def ms_per_image(service: ImageService, ref: str, steps: int | None, repeats: int) -> float:
    service.generate(ref, 64, seed=0, steps=steps)  # warm-up: allocations, OpenMP team
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        service.generate(ref, 64, seed=0, steps=steps)
        times.append(time.perf_counter() - start)
    return min(times) / 64 * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared/data/images/mnist/mnist.npz")
    cli = parser.parse_args()
    if not cli.data.exists():
        raise SystemExit(f"needs MNIST at {cli.data} (../shared/data)")
    # The real sets exactly as the training scripts' evaluation loads them (32 px), a training sample of the same size
    if cli.samples:
        test = load_images(str(cli.data), resolution=32, image_column="x_test", limit=cli.samples).dataset.pixels
        train = load_images(str(cli.data), resolution=32, image_column="x_train", limit=cli.samples).dataset.pixels
        classifier = load_classifier()
    service = ImageService(ModelRegistry())
    rows = []
    for ref, steps_list in ((GAN, [None]), (DIFFUSION, cli.steps)):
        entry = service.registry.get(ref)
        params = sum(p.numel() for p in entry.model.parameters())
        card = {f.name: f.value for f in read_card(entry.path).figures}
        for steps in steps_list:
            if cli.samples:
                fd, floor, acc = score(service, ref, test, train, cli.samples, steps, classifier)
            else:  # the card's figures (10,000 samples, the same evaluation code)
                suffix = f", {steps} steps" if steps else ""
                fd, floor = card[f"FD (classifier features){suffix}"], card["FD real-vs-real floor"]
                acc = card[f"conditional accuracy{suffix}"]
            ms = ms_per_image(service, ref, steps, cli.repeats)
            rows.append((ref, "1 (one forward)" if steps is None else f"{steps}", fd, floor, acc, ms, params))
            print(f"{ref} steps {steps or 1}: FD {fd:.2f} (floor {floor:.2f}), accuracy {acc:.1%}, {ms:.1f} ms/image",
                  file=sys.stderr)
    quality = f"{cli.samples} samples per row" if cli.samples else "FD and accuracy from the cards (10,000 samples)"
    print(f"\n{date.today()}, {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
          f"{quality}\n")
    print("| model | sampling steps | FD (floor) | conditional accuracy | ms / image (batch 64) | parameters | training |")
    print("|---|---|---|---|---|---|---|")
    for ref, steps, fd, floor, acc, ms, params in rows:
        print(f"| `{ref}` | {steps} | {fd:.2f} ({floor:.2f}) | {acc:.1%} | {ms:.1f} | {params / 1e6:.2f} M | "
              f"{TRAINING_TIME[ref]} |")
    ratio = {r[1]: r[5] for r in rows if r[0] == DIFFUSION}
    gan_ms = rows[0][5]
    print("\ndiffusion / GAN time per image: " + ", ".join(f"{s} steps {ms / gan_ms:.0f}×" for s, ms in ratio.items()))


if __name__ == "__main__":
    main()
