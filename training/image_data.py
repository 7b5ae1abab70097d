"""Image datasets for training, through `datasets`: a hub dataset name, an image folder, parquet or `.npz` files.

Whatever the source, the images are resized once up front and kept as one uint8 tensor (60k MNIST images at 32 px
are 61 MB), so the training loop never touches PIL or Arrow: a batch is an index into memory. Each item is a dict
with `pixel_values` (uint8, C×R×R) and, when a label column is given, `label` (int64).
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


def load_images(
    source: str,
    *,
    resolution: int,
    image_column: str | None = None,
    label_column: str | None = None,
    split: str = "train",
    channels: int | None = None,
    limit: int | None = None,
) -> ImageData:
    """Load `source` (hub dataset · image folder · .parquet · .npz) and resize it to `resolution`."""
    path = Path(source)
    if path.suffix == ".npz":
        images, labels = _read_npz(path, image_column, label_column)
        images, labels = images[:limit], (labels[:limit] if labels is not None else None)
        num_classes = int(labels.max()) + 1 if labels is not None else 0
    else:
        ds = _read_with_datasets(source, path, split)
        if limit is not None:
            ds = ds.select(range(min(limit, len(ds))))
        image_column = image_column or _guess_image_column(ds)
        if label_column and label_column not in ds.column_names:
            raise SystemExit(f"--label_column {label_column!r} not in {source}: columns are {ds.column_names}")
        images = ds[image_column]
        labels = np.asarray(ds[label_column]) if label_column else None
        feature = ds.features.get(label_column) if label_column else None
        num_classes = (feature.num_classes if isinstance(feature, ClassLabel)
                       else int(labels.max()) + 1 if labels is not None else 0)
    channels = channels or _infer_channels(images[0])
    if channels not in MODES:
        raise SystemExit(f"--channels must be 1, 3 or 4, got {channels}")
    pixels = np.stack([_to_chw(img, resolution, channels) for img in images])
    return ImageData(ImageTensors(pixels, labels), channels=channels, num_classes=num_classes, source=source)


def _read_npz(path: Path, image_column: str | None, label_column: str | None) -> tuple[np.ndarray, np.ndarray | None]:
    if not path.is_file():
        raise SystemExit(f"dataset file not found: {path}")
    with np.load(path, allow_pickle=False) as npz:
        keys = list(npz.keys())
        image_column = image_column or next((k for k in keys if npz[k].ndim >= 3), None)
        if image_column not in keys:
            raise SystemExit(f"--image_column {image_column!r} not in {path}: keys are {keys}")
        if label_column and label_column not in keys:
            raise SystemExit(f"--label_column {label_column!r} not in {path}: keys are {keys}")
        return npz[image_column], (npz[label_column] if label_column else None)


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
