"""Small image classifiers: the feature networks for our Fréchet distance and the judges of conditional accuracy.

The Inception network behind the usual FID cannot be downloaded offline, and on 32 px digits or 64 px emoji it
measures the wrong thing anyway. We train one per starter dataset and ship its weights, so the figures are
reproducible anywhere: `mnist` (digits, ≈99 % test accuracy in a minute on a CPU) and `twemoji` (the 10 emoji groups,
colour). `training/train_eval_classifier.py` retrains them.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..models.hub_mixin import SafeHubMixin

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SHIPPED = {"mnist": WEIGHTS_DIR / "mnist-classifier", "twemoji": WEIGHTS_DIR / "twemoji-classifier"}
WEIGHTS = SHIPPED["mnist"]


class ImageClassifier(nn.Module, SafeHubMixin, library_name="aigc-hub", tags=["aigc-hub", "evaluation"]):
    """Images → logits (B, num_classes); `features()` gives the penultimate layer. Any generator output goes in:
    `prepare` composites alpha onto `background`, matches `in_channels` and resizes to `input_size`."""

    def __init__(self, num_classes: int = 10, num_features: int = 128, in_channels: int = 1, input_size: int = 32,
                 background: float = -1.0) -> None:
        super().__init__()
        if in_channels not in (1, 3) or input_size not in (32, 64):
            raise ValueError(f"in_channels must be 1 or 3 and input_size 32 or 64, got {in_channels}, {input_size}")
        self.num_features, self.in_channels, self.input_size = num_features, in_channels, input_size
        self.background = background
        layers: list[nn.Module] = []
        width, stages = in_channels, int(math.log2(input_size // 4))  # halve down to 4×4
        for out in (32, 64, 128, 128)[:stages]:
            layers += [nn.Conv2d(width, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(width * 16, num_features), nn.ReLU())
        self.head = nn.Linear(num_features, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(self.prepare(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 or [-1, 1] float; 1, 3 or 4 channels; any size → (B, in_channels, input_size, input_size)."""
        if not images.is_floating_point():  # pixel values 0..255, whatever the integer type
            images = images.float() / 127.5 - 1.0
        if images.shape[1] == 4:  # straight alpha: colour × alpha + background × (1 − alpha)
            alpha = (images[:, 3:] + 1) / 2
            images = images[:, :3] * alpha + self.background * (1 - alpha)
        if images.shape[1] == 3 and self.in_channels == 1:
            images = images.mean(dim=1, keepdim=True)
        elif images.shape[1] == 1 and self.in_channels == 3:
            images = images.expand(-1, 3, -1, -1)
        if images.shape[-1] != self.input_size:
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear", antialias=True,
                                   align_corners=False)
        return images


class FeatureNet(nn.Module):
    """The classifier as a torchmetrics feature extractor (it reads `num_features`)."""

    def __init__(self, classifier: ImageClassifier) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = classifier.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images)


def load_classifier(name_or_path: str | Path = "mnist") -> ImageClassifier:
    """A shipped classifier by name (`mnist`, `twemoji`) or one saved in a folder."""
    path = SHIPPED.get(str(name_or_path), Path(name_or_path))
    if not (Path(path) / "model.safetensors").is_file():
        raise SystemExit(f"no classifier at {path}: use one of {sorted(SHIPPED)} or a folder that "
                         "training/train_eval_classifier.py wrote")
    return ImageClassifier.from_pretrained(str(path), strict=True).eval()


@torch.no_grad()
def accuracy(model: ImageClassifier, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    preds = torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return float((preds == y).float().mean())
