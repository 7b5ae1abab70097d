"""training/augment.py: the small-data augmentation the GAN (DiffAugment) and diffusion scripts share."""

from __future__ import annotations

import torch

from training.augment import some, translate


def dots(n: int = 64, size: int = 32) -> torch.Tensor:
    """Black images in [-1, 1], each with one white pixel in the middle."""
    images = -torch.ones(n, 1, size, size)
    images[:, :, size // 2, size // 2] = 1
    return images


def test_translate_moves_whole_images_by_at_most_the_shift_and_fills_black():
    torch.manual_seed(0)
    moved = translate(dots(), 0.125)  # up to 4 px at 32
    assert moved.shape == (64, 1, 32, 32)
    assert set(moved.unique().tolist()) == {-1.0, 1.0}  # whole pixels, black border: nothing blurred or grey
    where = [(img[0] == 1).nonzero() for img in moved]
    assert all(len(w) == 1 for w in where)  # the dot moved, never lost or doubled
    offsets = torch.stack([w[0] for w in where]) - 16
    assert offsets.abs().max() <= 4 and len({tuple(o.tolist()) for o in offsets}) > 10  # within 4 px, and varied


def test_some_changes_only_the_chosen_share():
    torch.manual_seed(0)
    images = dots(1000)
    assert torch.equal(some(images, 0.0, lambda x: -x), images)
    assert torch.equal(some(images, 1.0, lambda x: -x), -images)
    changed = (some(images, 0.3, lambda x: -x) != images).flatten(1).any(1).float().mean()
    assert 0.25 < changed < 0.35


def test_the_diffusion_script_refuses_a_shift_that_moves_images_out_of_frame(capsys):
    import pytest

    from training.train_diffusion import parse_args

    base = ["--dataset", "digits.npz", "--output_dir", "out"]
    assert (parse_args(base + ["--augment_shift", "0.125"]).augment_p, parse_args(base).augment_shift) == (0.5, 0.0)
    for bad in (["--augment_shift", "2"], ["--augment_shift", "-0.1"], ["--augment_shift", "0.1", "--augment_p", "0"]):
        with pytest.raises(SystemExit):
            parse_args(base + bad)
        assert "--augment_shift takes 0 to 0.5" in capsys.readouterr().err
