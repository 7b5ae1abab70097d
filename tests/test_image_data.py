"""Image data through `datasets`: image folders, parquet, .npz; resizing, channels, labels."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset, Features, Image as ImageFeature, Value
from PIL import Image

from training.image_data import load_images


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / "folder" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray((rng.random((40, 48, 3)) * 255).astype(np.uint8)).save(tmp_path / "folder" / label / f"{i}.png")
    return tmp_path / "folder"


def test_image_folder_with_labels(image_folder):
    data = load_images(str(image_folder), resolution=64, label_column="label")
    assert data.channels == 3 and data.num_classes == 2 and len(data.dataset) == 6
    row = data.dataset[0]
    assert tuple(row["pixel_values"].shape) == (3, 64, 64) and str(row["pixel_values"].dtype) == "torch.uint8"


def test_parquet_rgba(tmp_path):
    rng = np.random.default_rng(1)
    images = [Image.fromarray((rng.random((20, 20, 4)) * 255).astype(np.uint8), "RGBA") for _ in range(5)]
    ds = Dataset.from_dict({"img": images, "y": [0, 1, 2, 1, 0]},
                           features=Features({"img": ImageFeature(), "y": Value("int64")}))
    ds.to_parquet(str(tmp_path / "train.parquet"))
    data = load_images(str(tmp_path / "train.parquet"), resolution=32, image_column="img", label_column="y",
                       limit=4)
    assert data.channels == 4 and data.num_classes == 3 and len(data.dataset) == 4
    assert tuple(data.dataset[0]["pixel_values"].shape) == (4, 32, 32)


def test_npz_grayscale_and_forced_channels(digits_npz):
    data = load_images(str(digits_npz), resolution=32, image_column="x_train", label_column="y_train", limit=10)
    assert data.channels == 1 and data.num_classes == 10 and len(data.dataset) == 10
    rgb = load_images(str(digits_npz), resolution=64, image_column="x_train", channels=3, limit=2)
    assert tuple(rgb.dataset[0]["pixel_values"].shape) == (3, 64, 64) and rgb.num_classes == 0


def test_clear_errors(digits_npz, tmp_path):
    with pytest.raises(SystemExit, match="not in"):
        load_images(str(digits_npz), resolution=32, image_column="nope")
    with pytest.raises(SystemExit, match="not found"):
        load_images(str(tmp_path / "missing.npz"), resolution=32)
    with pytest.raises(SystemExit, match="unsupported"):
        load_images(str(tmp_path / "x.txt"), resolution=32)


def test_evaluation_calls_the_generator_in_its_own_batches_and_scores_real_images_near_the_floor():
    """`generate_batch` sizes the generator's calls (a diffusion UNet is faster at 64); seeds and labels run on."""
    import torch

    from aigc_hub.evaluation.image_metrics import evaluate_generator

    rng = np.random.default_rng(0)
    real = torch.from_numpy(rng.integers(0, 256, (300, 1, 32, 32), dtype=np.uint8))
    calls = []

    def generate(start, n, labels):  # "generates" the real held-out images themselves
        calls.append((start, n, labels.tolist()))
        return real[start:start + n].float() / 127.5 - 1

    scores = evaluate_generator(generate, real[:150], real[150:], num_classes=10, num_samples=150,
                                batch=100, generate_batch=64)
    assert [(s, n) for s, n, _ in calls] == [(0, 64), (64, 64), (128, 22)]
    assert calls[1][2][:3] == [4, 5, 6]  # label of item i is i mod classes, across calls
    assert scores.fd < 1e-3 < scores.fd_floor  # the very same images: distance ~0, below the real-vs-real floor
