"""The inputs of an image edit: the picture to start from, the mask of what to repaint, the canvas to extend.

Anything here may come from a web client, so it is decoded with bounds (bytes, pixels) checked before the pixels
are, and every refusal is one line. One rule brings an input to the model: it is converted to the model's channels
(grey, RGB — transparency composited on white — or RGBA) and stretched to the output's size (a diffusion model's
resolution; for a text-to-image pipeline the request's width × height, by default the model's size). A mask is
grey values of the input's size: white (≥ 128) is repainted, black kept; outpainting pads the input (its edge pixels
repeated) and repaints the padding. The PNG parameters name the input and mask by a hash of their pixels, so the
same picture gives the same name from every front end (a file, an upload, the tab's editor).
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import GenerationError
from ..validation import as_int

MAX_INPUT_BYTES = 32 * 2**20  # an encoded upload
MAX_INPUT_PIXELS = 4096 * 4096  # width × height of an input (or an outpainted canvas), checked before decoding
MAX_OUTPAINT = 2048  # pixels added on one side
MASK_THRESHOLD = 128
MODES = {1: "L", 3: "RGB", 4: "RGBA"}


@dataclass(frozen=True)
class EditInput:
    """An edit, checked and brought to the model: `image` (H, W, C) uint8 and `mask` (H, W) bool (True: repaint) at
    the output's size and channels."""

    image: np.ndarray
    mask: np.ndarray | None
    strength: float
    digest: str
    mask_digest: str | None = None
    outpaint: tuple[int, int, int, int] | None = None

    def parameters(self) -> str:
        """What the PNG parameters add, A1111's names where it has one."""
        text = f", Init image: {self.digest}, Denoising strength: {self.strength:g}"
        if self.mask_digest:
            text += f", Mask: {self.mask_digest}"
        if self.outpaint:
            text += f", Outpaint: {','.join(map(str, self.outpaint))}"
        return text


def open_image(data: object, what: str) -> Image.Image:
    """`data` (encoded bytes, a PIL image, or a (H, W[, C]) uint8 array) as a decoded PIL image, bounded."""
    if isinstance(data, Image.Image):
        image = data
    elif isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim not in (2, 3) or data.ndim == 3 and data.shape[2] not in (1, 3, 4):
            raise GenerationError(f"the {what} must be (H, W) or (H, W, 1/3/4) uint8 pixels, got "
                                  f"{data.dtype} {tuple(data.shape)}")
        image = Image.fromarray(data[..., 0] if data.ndim == 3 and data.shape[2] == 1 else data)
    elif isinstance(data, (bytes, bytearray)):
        if len(data) > MAX_INPUT_BYTES:
            raise GenerationError(f"the {what} is {len(data) / 2**20:.1f} MiB: at most {MAX_INPUT_BYTES // 2**20} "
                                  "MiB")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(bytes(data)))  # reads the header only
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError):
            raise GenerationError(f"the {what} is not a picture this server reads (PNG, JPEG, WebP, GIF, BMP)") \
                from None
    else:
        raise GenerationError(f"the {what} must be a picture, got {type(data).__name__}")
    check_pixels(image.width, image.height, what)
    try:
        image.load()
    except (OSError, ValueError):
        raise GenerationError(f"the {what} is a damaged picture: it could not be decoded") from None
    return image


def mask_from_alpha(data: object, transparent: bool = True) -> np.ndarray:
    """A mask of this service (white: repaint) from a picture's transparency: its fully transparent pixels are
    repainted (OpenAI's rule for /v1/images/edits), or with `transparent` False its painted ones (the strokes
    of the tab's editor, drawn on a transparent layer)."""
    image = open_image(data, "mask")
    if "A" not in image.getbands() and "transparency" not in image.info:
        raise GenerationError("the mask must have transparency: its fully transparent pixels are repainted "
                              "(OpenAI's rule)")
    alpha = np.asarray(image.convert("RGBA"))[..., 3]
    return np.where((alpha == 0) if transparent else (alpha > 0), 255, 0).astype(np.uint8)


def check_pixels(width: int, height: int, what: str) -> None:
    if width * height > MAX_INPUT_PIXELS or min(width, height) < 1:
        raise GenerationError(f"the {what} is {width}×{height} pixels: at most {MAX_INPUT_PIXELS:,} pixels "
                              f"(e.g. {int(MAX_INPUT_PIXELS ** 0.5)}×{int(MAX_INPUT_PIXELS ** 0.5)})")


def digest(image: Image.Image) -> str:
    """The first 10 hex digits of the SHA-256 of the decoded pixels (mode and size included)."""
    h = hashlib.sha256(f"{image.mode} {image.width}x{image.height}\n".encode())
    h.update(image.tobytes())
    return h.hexdigest()[:10]


def outpaint_sides(value: object) -> tuple[int, int, int, int] | None:
    """"LEFT,TOP,RIGHT,BOTTOM" (or 4 numbers) → pixels to add on each side; None or all zeros: no outpainting."""
    if value is None or isinstance(value, str) and not value.strip():
        return None
    parts = value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else []
    if len(parts) != 4:
        raise GenerationError(f"outpaint takes 4 numbers, LEFT,TOP,RIGHT,BOTTOM pixels, got {str(value)[:40]!r}")
    sides = tuple(as_int(p.strip() if isinstance(p, str) else p, "outpaint") for p in parts)
    if not all(0 <= s <= MAX_OUTPAINT for s in sides):
        raise GenerationError(f"outpaint sides must be between 0 and {MAX_OUTPAINT} pixels, got {sides}")
    return None if not any(sides) else sides  # type: ignore[return-value]


def to_channels(image: Image.Image, channels: int) -> Image.Image:
    """The model's mode: transparency is composited on white when the model has no alpha channel."""
    if channels not in MODES:
        raise GenerationError(f"a model with {channels} channels cannot edit pictures")
    if channels != 4 and ("A" in image.getbands() or "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert(MODES[channels])


def prepare(data: object, mask_data: object, strength: float, outpaint: object, channels: int, width: int,
            height: int) -> EditInput:
    """The checked edit of a model that makes `channels`-channel pictures of `width` × `height`."""
    image = open_image(data, "input image")
    sides = outpaint_sides(outpaint)
    mask = None
    if mask_data is not None:
        mask_image = open_image(mask_data, "mask")
        if mask_image.size != image.size:
            raise GenerationError(f"the mask is {mask_image.width}×{mask_image.height} pixels and the input image "
                                  f"{image.width}×{image.height}: they must be the same size")
        mask = np.asarray(to_channels(mask_image, 1)) >= MASK_THRESHOLD
    names = digest(image), None if mask is None else digest(mask_image)
    picture = to_channels(image, channels)
    if sides:
        left, top, right, bottom = sides
        check_pixels(image.width + left + right, image.height + top + bottom, "outpainted canvas")
        pixels = np.asarray(picture)
        pad = ((top, bottom), (left, right)) + (((0, 0),) if pixels.ndim == 3 else ())
        picture = Image.fromarray(np.pad(pixels, pad, mode="edge"))
        known = np.zeros(image.size[::-1], dtype=bool) if mask is None else mask
        mask = np.pad(known, ((top, bottom), (left, right)), constant_values=True)
    picture = picture.resize((width, height), Image.Resampling.LANCZOS) if picture.size != (width, height) \
        else picture
    if mask is not None:
        mask = _resized_mask(mask, width, height)
    pixels = np.asarray(picture)
    return EditInput(pixels[..., None] if pixels.ndim == 2 else pixels, mask, strength, names[0], names[1], sides)


def _resized_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    """The mask at the output's size (a pixel is repainted when most of what it covers is), refused when it would
    repaint nothing or everything: neither is inpainting."""
    grey = Image.fromarray(mask.astype(np.uint8) * 255)
    if grey.size != (width, height):
        grey = grey.resize((width, height), Image.Resampling.BILINEAR)
    out = np.asarray(grey) >= MASK_THRESHOLD
    if not out.any():
        raise GenerationError("the mask repaints nothing at the model's size: paint white where the picture should "
                              "change")
    if out.all():
        raise GenerationError("the mask repaints everything: leave the mask out for image-to-image, or keep some of "
                              "it black")
    return out

