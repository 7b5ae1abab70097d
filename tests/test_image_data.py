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


@pytest.fixture
def emoji_like_npz(tmp_path):
    """RGBA images with string categories and groups of variants, laid out like ../shared/data's twemoji_64.npz."""
    rng = np.random.default_rng(2)
    names = np.array([f"EMOJI {i // 3}" for i in range(60)])  # 20 emoji, each with 2 "skin-tone" variants
    categories = np.array(["Flags", "Animals & Nature", "Objects"])[np.arange(60) // 3 % 3]
    images = (rng.random((60, 24, 24, 4)) * 255).astype(np.uint8)
    np.savez(tmp_path / "emoji.npz", images=images, names=names, categories=categories)
    return tmp_path / "emoji.npz", names


def test_string_labels_become_sorted_ids_with_their_names(emoji_like_npz):
    path, _ = emoji_like_npz
    data = load_images(str(path), resolution=32, image_column="images", label_column="categories")
    assert data.class_names == ["Animals & Nature", "Flags", "Objects"] and data.num_classes == 3
    assert data.channels == 4 and data.dataset.labels[:6].tolist() == [1, 1, 1, 0, 0, 0]


def test_grouped_holdout_keeps_variants_together_and_is_seeded(emoji_like_npz):
    path, names = emoji_like_npz

    def part(which, seed=0):
        data = load_images(str(path), resolution=32, image_column="images", label_column="categories",
                           holdout_fraction=0.25, group_column="names", part=which, seed=seed)
        return data, {bytes(p.numpy().tobytes()) for p in data.dataset.pixels}

    train, train_px = part("train")
    held, held_px = part("holdout")
    assert len(held.dataset) == 15 and len(train.dataset) == 45  # 5 of 20 emoji, each with its 3 images
    assert not train_px & held_px and held.class_names == train.class_names
    assert part("holdout")[1] == held_px and part("holdout", seed=1)[1] != held_px
    # every held-out image's group is wholly held out: pixels of one group never straddle the split
    pixels = np.load(path)["images"]
    held_groups = {names[i] for i in range(60) if _chw(pixels[i]) in held_px}
    assert len(held_groups) == 5 and all(_chw(pixels[i]) in held_px for i in range(60) if names[i] in held_groups)
    with pytest.raises(SystemExit, match="between 0 and 1"):
        load_images(str(path), resolution=32, holdout_fraction=1.5)
    with pytest.raises(SystemExit, match="--holdout_group_column 'nope' not in"):
        load_images(str(path), resolution=32, holdout_fraction=0.5, group_column="nope")


def _chw(image: np.ndarray) -> bytes:
    """The bytes load_images keeps for a 24 px RGBA image at 32 px."""
    from training.image_data import _to_chw

    return _to_chw(image, 32, 4).tobytes()
