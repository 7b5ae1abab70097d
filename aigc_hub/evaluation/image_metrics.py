"""Image-generation quality: Fréchet distance in the shipped classifier's feature space, and conditional accuracy.

The distance uses torchmetrics' `FrechetInceptionDistance` with our classifier as the custom feature extractor, over
thousands of samples (never one batch), and is always reported with the real-vs-real floor: the same distance
between two disjoint real sets of the same sizes. A generator cannot beat the floor; how far it is above it is what
matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from tqdm.auto import tqdm

from .classifier import FeatureNet, ImageClassifier, load_classifier

# generate(seeds_start, n, labels or None) → (n, C, H, W) images in [-1, 1]
GenerateFn = Callable[[int, int, torch.Tensor | None], torch.Tensor]


@dataclass
class ImageScores:
    fd: float  # generated vs real eval set
    fd_floor: float  # real (train) vs real (eval set)
    class_accuracy: float | None  # conditional models: share of samples the classifier puts in the asked class
    num_samples: int


def frechet_distance(a: torch.Tensor, b: torch.Tensor, net: FeatureNet, batch: int = 500,
                     bar: tqdm | None = None) -> float:
    """FD between two image sets (uint8 or [-1, 1] float, NCHW) in the classifier's feature space; `bar` advances
    by the images it has embedded."""
    metric = FrechetInceptionDistance(feature=net, reset_real_features=True)
    metric.inception.eval()
    with torch.no_grad():
        for images, real in ((a, True), (b, False)):
            for i in range(0, len(images), batch):
                chunk = images[i : i + batch]
                metric.update(chunk if chunk.dtype == torch.uint8 else chunk.float(), real=real)
                if bar is not None:
                    bar.update(len(chunk))
        return float(metric.compute())


@torch.no_grad()
def evaluate_generator(
    generate: GenerateFn,
    real_eval: torch.Tensor,
    real_train: torch.Tensor,
    *,
    num_classes: int,
    num_samples: int = 10_000,
    classifier: ImageClassifier | None = None,
    batch: int = 500,
    generate_batch: int | None = None,
) -> ImageScores:
    """Score `generate` against `real_eval` (data the generator never trained on); labels cycle 0..num_classes-1.
    `generate_batch` (default `batch`) sizes the generator's calls: a diffusion UNet runs faster at 64 than at 500."""
    classifier = classifier or load_classifier()
    net = FeatureNet(classifier)
    fakes, correct = [], 0
    n_real = min(len(real_eval), num_samples)
    n_train = min(len(real_train), num_samples)
    # Progress in images handled: generated, then embedded for the two distances (minutes on a CPU).
    with tqdm(total=num_samples + 2 * n_real + num_samples + n_train, desc="evaluating", unit="img",
              dynamic_ncols=True) as bar:
        step = generate_batch or batch
        for start in range(0, num_samples, step):
            n = min(step, num_samples - start)
            labels = torch.arange(start, start + n) % num_classes if num_classes else None
            images = generate(start, n, labels).float().cpu()
            fakes.append(images)
            if labels is not None:
                correct += int((classifier(images).argmax(1) == labels).sum())
            bar.update(n)
        fake = torch.cat(fakes)
        fd = frechet_distance(real_eval[:n_real], fake, net, batch, bar)
        floor = frechet_distance(real_eval[:n_real], real_train[:n_train], net, batch, bar)
    acc = correct / num_samples if num_classes else None
    return ImageScores(fd=fd, fd_floor=floor, class_accuracy=acc, num_samples=num_samples)
