"""Augmentation for small image sets, shared by the GAN and diffusion scripts (on the training device, in [-1, 1])."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def translate(images: torch.Tensor, shift: float) -> torch.Tensor:
    """Each image moved by up to `shift` of its size (whole pixels), the uncovered border filled with -1 (black;
    transparent for RGBA). Differentiable: DiffAugment (Zhao et al., 2020) applies it to a GAN's real and fake images
    alike, so the discriminator cannot memorise a small dataset's exact pixels."""
    n = images.shape[0]
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = (torch.rand(n, 2, device=images.device, dtype=images.dtype) * 2 - 1) * 2 * shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images + 1, grid, mode="nearest", padding_mode="zeros", align_corners=False) - 1


def some(images: torch.Tensor, p: float, change) -> torch.Tensor:
    """`change` applied to a random share `p` of the batch, the rest left as they are (ADA's probability: a model
    trained on them still sees mostly unchanged images, so less of the change leaks into what it generates)."""
    if p >= 1:
        return change(images)
    chosen = torch.rand(images.shape[0], device=images.device) < p
    return torch.where(chosen[:, None, None, None], change(images), images)
