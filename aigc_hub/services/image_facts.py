"""What the Image tab, the checks and the edit rules need to know about an image model, read from its folder's
configs without loading its weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..models import diffusion, text_to_image


@dataclass(frozen=True)
class ImageFacts:
    """What the Image tab and the checks need to know about a model, read without loading its weights."""

    family: str
    num_classes: int  # 0: unconditional
    resolution: int
    channels: int
    class_names: tuple[str, ...] = ()  # names of the labels, when the model's config has them
    null_label: int | None = None  # a class-conditional UNet's empty label: it takes classifier-free guidance
    default_guidance: float = 1.0  # the guidance its card's figures were measured at

    @property
    def class_guided(self) -> bool:  # its labels take classifier-free guidance
        return self.null_label is not None

    @property
    def iterative(self) -> bool:  # takes steps and a sampler
        return self.family in ("diffusion", "text-to-image")

    @property
    def prompted(self) -> bool:  # takes a prompt, a negative prompt, a guidance scale and a size
        return self.family == "text-to-image"

    @property
    def edits(self) -> bool:  # starts from a picture: image-to-image, inpainting, outpainting
        return self.iterative


def facts_of(family: str, path: Path, config: dict, unet: dict | None = None, vae: dict | None = None) -> ImageFacts:
    """`unet` (and `vae`): a diffusion model's component configs when already read (a loaded model), else they are
    read from the folder."""
    if family == "text-to-image":
        from ..loaders import pipeline_components

        if unet is None:
            parts = pipeline_components(path, config)
            unet, vae = parts["unet"], parts["vae"]
        return ImageFacts(family, 0, text_to_image.default_size(unet, vae), 3)
    if family == "diffusion":
        from ..loaders import diffusion_parts

        unet = unet if unet is not None else diffusion_parts(path, config)[0]
        size = unet.get("sample_size")
        size = size if isinstance(size, int) else (size or [0])[0]
        empty = diffusion.null_label(unet)
        classes = int(unet.get("num_class_embeds") or 0) - (empty is not None)
        return ImageFacts(family, classes, int(size), int(unet.get("in_channels", 3)), null_label=empty,
                          default_guidance=float(unet.get(diffusion.GUIDANCE_KEY) or 1.0))
    return ImageFacts(family, int(config.get("num_classes", 0)), int(config["resolution"]), int(config["channels"]),
                      tuple(str(n) for n in config.get("class_names") or ()))
