"""DCGAN shapes for every resolution/channel count, and the save → from_pretrained round trip."""

import pytest
import torch

from aigc_hub.models.dcgan import Discriminator, Generator


@pytest.mark.parametrize("resolution", [32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("num_classes", [0, 10])
def test_shapes(resolution, channels, num_classes):
    g = Generator(resolution=resolution, channels=channels, num_classes=num_classes, base_channels=4, latent_dim=8)
    d = Discriminator(resolution=resolution, channels=channels, num_classes=num_classes, base_channels=4)
    labels = torch.tensor([0, 1]) if num_classes else None
    images = g(torch.randn(2, 8), labels)
    assert images.shape == (2, channels, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1
    assert d(images, labels).shape == (2,)


def test_bad_settings():
    with pytest.raises(ValueError, match="resolution"):
        Generator(resolution=48)
    with pytest.raises(ValueError, match="channels"):
        Generator(channels=2)
    with pytest.raises(ValueError, match="pass labels"):
        Generator(num_classes=10, base_channels=4)(torch.randn(1, 100))


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    g = Generator(resolution=64, channels=3, num_classes=5, base_channels=8, latent_dim=12).eval()
    g.save_pretrained(str(tmp_path))
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors"}
    loaded = Generator.from_pretrained(str(tmp_path), strict=True).eval()
    assert loaded.resolution == 64 and loaded.num_classes == 5 and loaded.latent_dim == 12
    z, y = torch.randn(3, 12), torch.tensor([0, 2, 4])
    assert torch.equal(g(z, y), loaded(z, y))
    d = Discriminator(resolution=32, channels=1, num_classes=10, base_channels=8).eval()
    d.save_pretrained(str(tmp_path / "d"))
    d2 = Discriminator.from_pretrained(str(tmp_path / "d"), strict=True).eval()
    x, y = torch.randn(2, 1, 32, 32), torch.tensor([1, 2])
    assert torch.equal(d(x, y), d2(x, y))
