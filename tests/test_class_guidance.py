"""Classifier-free guidance for class-conditional UNets trained with an empty label (DiT's convention: one more
class row): the label the service offers, the guided loop, its seed rule and batching, and the training script's
empty label for a base model that has none."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aigc_hub.errors import UserError
from aigc_hub.imaging import read_parameters
from aigc_hub.models.diffusion import GUIDANCE_KEY, NULL_LABEL_KEY, null_label
from aigc_hub.services import ImageService, ModelRegistry
from conftest import make_diffusion


def guided(folder, default: float | None = None):
    """A tiny pipeline with 10 classes and the empty label 10, as train_diffusion.py saves one."""
    make_diffusion(folder, num_classes=11)
    path = folder / "unet" / "config.json"
    config = json.loads(path.read_text())
    config[NULL_LABEL_KEY] = 10
    if default is not None:
        config[GUIDANCE_KEY] = default
    path.write_text(json.dumps(config))
    return str(folder)


def test_the_empty_label_is_not_offered_and_guidance_one_is_plain_sampling(tmp_path):
    ref = guided(tmp_path / "g")
    service = ImageService(ModelRegistry())
    facts = service.facts(ref)
    assert (facts.num_classes, facts.null_label, facts.class_guided, facts.default_guidance) == (10, 10, True, 1.0)
    with pytest.raises(UserError, match="between 0 and 9"):
        service.generate(ref, 1, seed=0, label=10, steps=2)
    plain = service.generate(ref, 4, seed=3, label=2, steps=3)
    once = service.generate(ref, 4, seed=3, label=2, steps=3, guidance_scale=1.0)
    strong = service.generate(ref, 4, seed=3, label=2, steps=3, guidance_scale=4.0)
    assert np.array_equal(plain.images, once.images)
    assert not np.array_equal(plain.images, strong.images)
    assert "CFG scale: 4" in read_parameters(strong.png(0)) and "CFG scale" not in read_parameters(plain.png(0))


def test_guided_image_i_depends_on_its_seed_alone_and_the_model_default_applies(tmp_path):
    ref = guided(tmp_path / "g", default=3.0)
    service = ImageService(ModelRegistry())
    batch = service.generate(ref, 5, seed=10, steps=3, sampler="euler-a")
    alone = service.generate(ref, 1, seed=13, label=3, steps=3, sampler="euler-a", guidance_scale=3.0)
    assert batch.labels[3] == 3
    assert np.abs(batch.images[3].astype(int) - alone.images[0].astype(int)).max() <= 1
    assert "CFG scale: 3" in read_parameters(batch.png(0))


def test_an_unguided_model_ignores_the_scale_and_a_bad_key_is_no_empty_label(tmp_path):
    ref = str(make_diffusion(tmp_path / "plain"))
    service = ImageService(ModelRegistry())
    assert not service.facts(ref).class_guided
    a = service.generate(ref, 2, seed=1, label=4, steps=2)
    b = service.generate(ref, 2, seed=1, label=4, steps=2, guidance_scale=5.0)
    assert np.array_equal(a.images, b.images)
    assert null_label({"num_class_embeds": 10, NULL_LABEL_KEY: 3}) is None  # only the row after the classes
    assert null_label({"num_class_embeds": 11, NULL_LABEL_KEY: 10}) == 10


def test_a_base_without_an_empty_label_gets_one_and_keeps_its_classes(tmp_path):
    from diffusers import UNet2DModel

    from training.train_diffusion import add_null_label

    unet = UNet2DModel.from_pretrained(str(make_diffusion(tmp_path / "base")), subfolder="unet").eval()
    x, t, labels = torch.randn(10, 1, 16, 16), torch.tensor(50), torch.arange(10)
    with torch.no_grad():
        before = unet(x, t, class_labels=labels).sample
        add_null_label(unet)
        after = unet(x, t, class_labels=labels).sample
        empty = unet(x, t, class_labels=torch.full((10,), 10)).sample
    assert torch.equal(before, after) and not torch.equal(empty, after)
    assert (unet.config.num_class_embeds, null_label(unet.config)) == (11, 10)
    unet.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "config.json").read_text())[NULL_LABEL_KEY] == 10
