"""A small MNIST classifier: the feature network for our Fréchet distance and the judge of conditional accuracy.

The Inception network behind the usual FID cannot be downloaded offline, and on 32 px digits it measures the wrong
thing anyway. We train this one (≈99 % test accuracy in a minute on a CPU) and ship its weights, so the figure is
reproducible anywhere: `python -m aigc_hub.evaluation.classifier --data ../shared/data/images/mnist/mnist.npz`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..models.hub_mixin import SafeHubMixin

WEIGHTS = Path(__file__).resolve().parent / "weights" / "mnist-classifier"
INPUT_SIZE = 32


class DigitClassifier(nn.Module, SafeHubMixin, library_name="aigc-hub", tags=["aigc-hub", "evaluation"]):
    """(B, 1, 32, 32) in [-1, 1] → logits (B, num_classes); `features()` gives the penultimate layer."""

    def __init__(self, num_classes: int = 10, num_features: int = 128) -> None:
        super().__init__()
        self.num_features = num_features
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 16
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 8
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4
            nn.Flatten(), nn.Linear(128 * 16, num_features), nn.ReLU(),
        )
        self.head = nn.Linear(num_features, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(prepare(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def prepare(images: torch.Tensor) -> torch.Tensor:
    """Any generator output (uint8 or [-1, 1] float; 1, 3 or 4 channels; any size) → (B, 1, 32, 32) in [-1, 1]."""
    if not images.is_floating_point():  # pixel values 0..255, whatever the integer type
        images = images.float() / 127.5 - 1.0
    if images.shape[1] == 4:  # composite RGBA onto black, the MNIST background
        images = (images[:, :3] + 1) * (images[:, 3:] + 1) / 2 - 1
    if images.shape[1] == 3:
        images = images.mean(dim=1, keepdim=True)
    if images.shape[-1] != INPUT_SIZE:
        images = F.interpolate(images, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True,
                               align_corners=False)
    return images


class FeatureNet(nn.Module):
    """The classifier as a torchmetrics feature extractor (it reads `num_features`)."""

    def __init__(self, classifier: DigitClassifier) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = classifier.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images)


def load_classifier(path: str | Path = WEIGHTS) -> DigitClassifier:
    return DigitClassifier.from_pretrained(str(path), strict=True).eval()


def mnist_32(x: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) → float (N, 1, 32, 32) in [-1, 1], the way the GAN recipe sees MNIST."""
    return prepare(torch.from_numpy(x).unsqueeze(1))


def train(data: Path, out: Path, epochs: int = 3, seed: int = 0) -> float:
    torch.manual_seed(seed)
    with np.load(data) as npz:
        x_train, y_train, x_test, y_test = (npz[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    x_train, y_train = mnist_32(x_train), torch.from_numpy(y_train).long()
    model = DigitClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * (len(x_train) // 128 + 1))
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x_train))
        for i in tqdm(range(0, len(perm), 128), desc=f"epoch {epoch}"):
            idx = perm[i : i + 128]
            shift = torch.randint(-2, 3, (2,))  # small translations: the classifier must not be fooled by offsets
            xb = torch.roll(x_train[idx], shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
            loss = F.cross_entropy(model(xb), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    acc = accuracy(model, mnist_32(x_test), torch.from_numpy(y_test).long())
    model.save_pretrained(str(out))
    return acc


@torch.no_grad()
def accuracy(model: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    preds = torch.cat([model(x[i : i + 1000]).argmax(1) for i in range(0, len(x), 1000)])
    return float((preds == y).float().mean())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Train the shipped MNIST feature/judge classifier.")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/images/mnist/mnist.npz"))
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    print(f"test accuracy: {train(args.data, args.out, args.epochs):.4f}")
