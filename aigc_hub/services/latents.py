"""Initial noise: one draw per seed (what generation draws: a GAN's latent vector, a UNet's noise image, a
pipeline's latents), and the spherical path between two draws (interpolation, variations)."""

from __future__ import annotations

import torch


def draws(seeds: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """One standard normal draw of `shape` per seed, each from its own CPU generator (batch-size independent)."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(s % 2**64)) for s in seeds])


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation: Gaussian latents keep their norm along the path (a straight line would shrink it)."""
    if t in (0, 1):
        return (a if t == 0 else b).clone()
    cos = torch.clamp((a / a.norm()) @ (b / b.norm()), -1.0, 1.0)
    omega = torch.arccos(cos)
    if omega.abs() < 1e-4:
        return (1 - t) * a + t * b
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def path(seed_a: int, seed_b: int, ts: list[float], shape: tuple[int, ...]) -> torch.Tensor:
    """Draws along the path from seed_a's draw to seed_b's, one per t."""
    a, b = (d.flatten() for d in draws([seed_a, seed_b], shape))
    return torch.stack([slerp(a, b, t) for t in ts]).view(len(ts), *shape)


def blend(seed: int, others: list[int], t: float, shape: tuple[int, ...]) -> torch.Tensor:
    """Variations: `seed`'s draw moved by `t` towards each of the `others`' draws."""
    base = draws([seed], shape)[0].flatten()
    return torch.stack([slerp(base, b.flatten(), t) for b in draws(others, shape)]).view(len(others), *shape)
