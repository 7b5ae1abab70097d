"""Image datasets for training, through `datasets`: a hub dataset name, an image folder, parquet or `.npz` files.

Whatever the source, the images are resized once up front and kept as one uint8 tensor (60k MNIST images at 32 px
are 61 MB), so the training loop never touches PIL or Arrow: a batch is an index into memory. Each item is a dict
with `pixel_values` (uint8, C×R×R) and, when a label column is given, `label` (int64). String labels (the Twemoji
`categories`) become ids in sorted order and their names travel with the data, into the model's config.

A dataset without a test split gives one with `holdout_fraction`: a seeded share of the items, or of the groups of
`group_column` (an emoji and its skin-tone variants share a name), so near-duplicates never straddle the two sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import ClassLabel, Dataset, load_dataset
from PIL import Image

MODES = {1: "L", 3: "RGB", 4: "RGBA"}


class ImageTensors(torch.utils.data.Dataset):
    """In-memory images (+ labels) as a map-style dataset of dicts."""

    def __init__(self, pixels: np.ndarray, labels: np.ndarray | None) -> None:
        self.pixels = torch.from_numpy(pixels)
        self.labels = None if labels is None else torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"pixel_values": self.pixels[i]}
        if self.labels is not None:
            item["label"] = self.labels[i]
        return item


@dataclass
class ImageData:
    dataset: ImageTensors
    channels: int
    num_classes: int  # 0 when unlabelled
    source: str
    class_names: list[str] | None = None  # for string labels: id i is class_names[i]


def load_images(
    source: str,
    *,
    resolution: int,
    image_column: str | None = None,
    label_column: str | None = None,
    split: str = "train",
    channels: int | None = None,
    limit: int | None = None,
    holdout_fraction: float = 0.0,
    group_column: str | None = None,
    part: str = "train",
    seed: int = 0,
) -> ImageData:
    """Load `source` (hub dataset · image folder · .parquet · .npz) and resize it to `resolution`. With a
    `holdout_fraction`, keep only the `part` ("train" or "holdout") of the seeded split."""
    path = Path(source)
    class_names = None
    if path.suffix == ".npz":
        images, labels, groups = _read_npz(path, image_column, label_column, group_column)
    else:
        ds = _read_with_datasets(source, path, split)
        if limit is not None and not holdout_fraction:  # decode only what is kept
            ds = ds.select(range(min(limit, len(ds))))
        image_column = image_column or _guess_image_column(ds)
        for option, column in (("--label_column", label_column), ("--holdout_group_column", group_column)):
            if column and column not in ds.column_names:
                raise SystemExit(f"{option} {column!r} not in {source}: columns are {ds.column_names}")
        images = ds[image_column]
        labels = np.asarray(ds[label_column]) if label_column else None
        groups = np.asarray(ds[group_column]) if group_column else None
        feature = ds.features.get(label_column) if label_column else None
        if isinstance(feature, ClassLabel):
            class_names = list(feature.names)
    if labels is not None and labels.dtype.kind in "USO":
        class_names, labels = np.unique(labels.astype(str), return_inverse=True)
        class_names = [str(c) for c in class_names]
    num_classes = len(class_names) if class_names else int(labels.max()) + 1 if labels is not None else 0
    keep = np.arange(len(images))
    if holdout_fraction:
        held = holdout_mask(groups if groups is not None else keep, holdout_fraction, seed)
        keep = keep[held if part == "holdout" else ~held]
    keep = keep[:limit]
    images = [images[i] for i in keep] if isinstance(images, list) else images[keep]
    labels = labels[keep] if labels is not None else None
    channels = channels or _infer_channels(images[0])
    if channels not in MODES:
        raise SystemExit(f"--channels must be 1, 3 or 4, got {channels}")
    pixels = np.stack([_to_chw(img, resolution, channels) for img in images])
    return ImageData(ImageTensors(pixels, labels), channels=channels, num_classes=num_classes, source=source,
                     class_names=class_names)


def holdout_mask(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for the held-out items: `fraction` of the distinct groups, drawn with `seed`, whole groups at a time."""
    if not 0 < fraction < 1:
        raise SystemExit(f"--holdout_fraction must be between 0 and 1, got {fraction}")
    unique, inverse = np.unique(np.asarray(groups), return_inverse=True)
    held = np.zeros(len(unique), dtype=bool)
    held[np.random.default_rng(seed).permutation(len(unique))[: max(1, round(fraction * len(unique)))]] = True
    return held[inverse]


def _read_npz(path: Path, image_column: str | None, label_column: str | None,
              group_column: str | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    if not path.is_file():
        raise SystemExit(f"dataset file not found: {path}")
    with np.load(path, allow_pickle=False) as npz:
        keys = list(npz.keys())
        image_column = image_column or next((k for k in keys if npz[k].ndim >= 3), None)
        if image_column not in keys:
            raise SystemExit(f"--image_column {image_column!r} not in {path}: keys are {keys}")
        for option, column in (("--label_column", label_column), ("--holdout_group_column", group_column)):
            if column and column not in keys:
                raise SystemExit(f"{option} {column!r} not in {path}: keys are {keys}")
        return (npz[image_column], npz[label_column] if label_column else None,
                npz[group_column] if group_column else None)


def _read_with_datasets(source: str, path: Path, split: str) -> Dataset:
    if path.is_dir() and any(path.rglob("*.parquet")):
        return load_dataset("parquet", data_dir=str(path), split=split)
    if path.suffix == ".parquet":
        return load_dataset("parquet", data_files={split: str(path)}, split=split)
    if path.is_dir():
        return load_dataset("imagefolder", data_dir=str(path), split=split)
    if path.exists() or source.startswith((".", "/")):
        raise SystemExit(f"unsupported dataset path {source}: use an image folder, .parquet or .npz")
    return load_dataset(source, split=split)  # a hub dataset name; needs network or the local datasets cache


def _guess_image_column(ds: Dataset) -> str:
    for name in ("image", "img", "pixel_values"):
        if name in ds.column_names:
            return name
    raise SystemExit(f"cannot tell the image column among {ds.column_names}: pass --image_column")


def _infer_channels(image: object) -> int:
    if isinstance(image, Image.Image):
        return {"L": 1, "1": 1, "RGBA": 4, "LA": 4, "P": 4 if "transparency" in image.info else 3}.get(image.mode, 3)
    arr = np.asarray(image)
    return 1 if arr.ndim == 2 else int(arr.shape[-1])


def _to_chw(image: object, resolution: int, channels: int) -> np.ndarray:
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image, dtype=np.uint8))
    image = image.convert(MODES[channels])
    if image.size != (resolution, resolution):
        image = image.resize((resolution, resolution), Image.Resampling.BICUBIC)
    arr = np.asarray(image, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
