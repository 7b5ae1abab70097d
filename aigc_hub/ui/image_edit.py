"""What the Image tab's editing controls hand the service: the editor's picture and the mask its strokes paint, and
the seed and label of a gallery image (read from the PNG's own parameters, so "more like this" needs no state)."""

from __future__ import annotations

import re

import numpy as np
from PIL import Image

from ..errors import GenerationError
from ..imaging import read_parameters

FIELD = re.compile(r"(?:^|, )(Seed|Label): (-?\d+)")


def editor_input(value: dict | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The editor's background (the picture) and the mask of its painted strokes (white: repaint; None: no
    strokes, image-to-image). Layers drawn at another size than the picture are brought to its size."""
    background = (value or {}).get("background")
    if background is None:
        raise GenerationError("upload the picture to edit first (or use a result as the input)")
    height, width = background.shape[:2]
    painted = np.zeros((height, width), dtype=bool)
    for layer in (value or {}).get("layers") or []:
        if layer is None or layer.ndim != 3 or layer.shape[2] != 4:
            continue
        strokes = layer[..., 3] > 0
        if strokes.shape != painted.shape:
            strokes = np.asarray(Image.fromarray(strokes).resize((width, height), Image.Resampling.NEAREST))
        painted |= strokes
    return background, (painted.astype(np.uint8) * 255 if painted.any() else None)


def seed_and_label(path: str | None) -> tuple[int, int | None]:
    """The seed and label a gallery image was made with, from its PNG parameters."""
    text = read_parameters(path) if path else None
    found = dict(FIELD.findall((text or "").split("\n")[-1]))
    if "Seed" not in found:
        raise GenerationError("select an image of the gallery first (one this tab made: its PNG names its seed)")
    return int(found["Seed"]), int(found["Label"]) if "Label" in found else None


def use_as_input(path: str | None) -> dict:
    """The editor's value for a gallery image: it becomes the picture to edit, with no strokes."""
    if not path:
        raise GenerationError("select an image of the gallery first")
    return {"background": path, "layers": [], "composite": path}
