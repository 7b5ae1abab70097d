"""Image helpers shared by training, services and the CLI: tensors → uint8, grids, PNGs with generation metadata."""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image, PngImagePlugin


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] → (N, H, W, C) uint8."""
    arr = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return arr.permute(0, 2, 3, 1).cpu().numpy()


def make_grid(images: torch.Tensor | np.ndarray, nrow: int = 8, padding: int = 2) -> np.ndarray:
    """Tile images ((N, C, H, W) in [-1, 1], or (N, H, W, C) uint8) into one (H', W', C) uint8 array."""
    arr = to_uint8(images) if isinstance(images, torch.Tensor) else images
    n, h, w, c = arr.shape
    ncol = min(nrow, n)
    rows = math.ceil(n / ncol)
    grid = np.zeros((rows * (h + padding) + padding, ncol * (w + padding) + padding, c), dtype=np.uint8)
    for i, img in enumerate(arr):
        r, k = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + k * (w + padding)
        grid[y : y + h, x : x + w] = img
    return grid


def to_pil(arr: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 → PIL image (L, RGB or RGBA)."""
    return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)


def png_bytes(image: Image.Image, parameters: str) -> bytes:
    """PNG with an A1111-style `parameters` text chunk, so the image says how to make it again."""
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", parameters)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def read_parameters(png: bytes | str) -> str | None:
    """The `parameters` chunk of a PNG file or bytes, if any."""
    with Image.open(io.BytesIO(png) if isinstance(png, bytes) else png) as img:
        return img.info.get("parameters")
