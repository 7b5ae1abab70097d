"""DCGAN generator and discriminator, built from the resolution (32, 64 or 128 px).

Both are `PyTorchModelHubMixin` modules (through `SafeHubMixin`: quiet, safetensors only): the constructor arguments
become `config.json` and the weights `model.safetensors`, so `Generator.from_pretrained(folder_or_repo)` is the one
call that loads a checkpoint. We chose
the huggingface_hub mixin over diffusers' `ModelMixin` because it is a few lines of glue on a plain `nn.Module`
(config captured from `__init__`, safetensors, `push_to_hub`) with none of diffusers' config-registration machinery.

Conditioning: the generator concatenates a label embedding to the noise; the discriminator is a spectrally normalised
projection discriminator (Miyato & Koyama, 2018), which keeps class information sharp and costs one embedding.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .hub_mixin import SafeHubMixin

RESOLUTIONS = (32, 64, 128)
CHANNELS = (1, 3, 4)


def _num_upsamplings(resolution: int) -> int:
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {resolution}")
    return int(math.log2(resolution // 4))


def _check(channels: int, num_classes: int) -> None:
    if channels not in CHANNELS:
        raise ValueError(f"channels must be one of {CHANNELS}, got {channels}")
    if num_classes < 0:
        raise ValueError("num_classes must be >= 0 (0 = unconditional)")


class Generator(
    nn.Module,
    SafeHubMixin,
    library_name="aigc-hub",
    tags=["aigc-hub", "dcgan", "image-generation"],
    repo_url="https://github.com/aigc-hub/aigc-hub",
):
    """z (B, latent_dim) [+ label (B,)] → image (B, channels, resolution, resolution) in [-1, 1]."""

    def __init__(
        self,
        resolution: int = 32,
        channels: int = 1,
        latent_dim: int = 100,
        num_classes: int = 0,
        base_channels: int = 64,
        embed_dim: int = 32,
        class_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        _check(channels, num_classes)
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.resolution, self.channels, self.latent_dim = resolution, channels, latent_dim
        self.num_classes, self.class_names = num_classes, class_names
        n_up = _num_upsamplings(resolution)
        self.label_embedding = nn.Embedding(num_classes, embed_dim) if num_classes else None
        in_dim = latent_dim + (embed_dim if num_classes else 0)
        width = base_channels * 2 ** (n_up - 1)  # channels at 4x4, halved at every upsampling
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(in_dim, width, 4, 1, 0, bias=False),  # 1x1 → 4x4
            nn.BatchNorm2d(width),
            nn.ReLU(True),
        ]
        for _ in range(n_up - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_dcgan_init)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None:
            if labels is None:
                raise ValueError("this generator is class-conditional: pass labels")
            z = torch.cat([z, self.label_embedding(labels)], dim=1)
        return self.net(z[:, :, None, None])


class Discriminator(
    nn.Module,
    SafeHubMixin,
    library_name="aigc-hub",
    tags=["aigc-hub", "dcgan"],
):
    """image [+ label] → one real/fake logit per image.

    Spectral normalisation instead of batch norm: real and fake images then go through one forward call (what DDP
    needs), and no batch statistic mixes them.
    """

    def __init__(
        self,
        resolution: int = 32,
        channels: int = 1,
        num_classes: int = 0,
        base_channels: int = 64,
    ) -> None:
        super().__init__()
        _check(channels, num_classes)
        sn = nn.utils.parametrizations.spectral_norm
        n_down = _num_upsamplings(resolution)
        width = base_channels
        layers: list[nn.Module] = [sn(nn.Conv2d(channels, width, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
        for _ in range(n_down - 1):
            layers += [sn(nn.Conv2d(width, width * 2, 4, 2, 1)), nn.LeakyReLU(0.2, True)]
            width *= 2
        self.features = nn.Sequential(*layers, nn.Flatten())  # → width * 4 * 4
        feat_dim = width * 16
        self.head = sn(nn.Linear(feat_dim, 1))
        self.projection = sn(nn.Embedding(num_classes, feat_dim)) if num_classes else None

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(images)
        out = self.head(h).squeeze(1)
        if self.projection is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional: pass labels")
            out = out + (self.projection(labels) * h).sum(dim=1)
        return out


def _dcgan_init(module: nn.Module) -> None:
    # The DCGAN paper's initialisation: N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales.
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, 0.0, 0.02)
