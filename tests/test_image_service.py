"""ImageService: seeds, labels, interpolation, PNG metadata, bad input, unsafe checkpoints, unload."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from aigc_hub.imaging import read_parameters
from aigc_hub.services import GenerationError, ImageService, ModelLoadError, ModelRegistry


@pytest.fixture
def service():
    return ImageService(ModelRegistry())


def test_same_seed_same_png_bytes(service, tiny_gan):
    a = service.generate(str(tiny_gan), 4, seed=123, label=7)
    b = ImageService(ModelRegistry()).generate(str(tiny_gan), 4, seed=123, label=7)  # a fresh load, too
    assert a.seeds == [123, 124, 125, 126]
    assert [a.png(i) for i in range(4)] == [b.png(i) for i in range(4)]


def test_item_i_uses_seed_plus_i(service, tiny_gan):
    batch = service.generate(str(tiny_gan), 6, seed=40, label=3)
    single = service.generate(str(tiny_gan), 1, seed=44, label=3)
    assert np.array_equal(batch.images[4], single.images[0])


def test_random_seed_is_resolved_and_returned(service, tiny_gan):
    result = service.generate(str(tiny_gan), 2, seed=-1)
    assert 0 <= result.seed < 2**31 and result.seeds == [result.seed, result.seed + 1]
    again = service.generate(str(tiny_gan), 2, seed=result.seed)
    assert np.array_equal(result.images, again.images)


def test_conditional_labels_cycle_and_metadata(service, tiny_gan):
    result = service.generate(str(tiny_gan), 12, seed=0)
    assert result.labels == [i % 10 for i in range(12)]
    params = read_parameters(result.png(5))
    assert "Seed: 5" in params and "Label: 5" in params and f"Model: {tiny_gan}" in params
    img = Image.open(io.BytesIO(result.png(0)))
    assert img.size == (32, 32) and img.mode == "L"


def test_interpolation(service, tiny_gan):
    frames, gif = service.interpolate(str(tiny_gan), 1, 2, frames=5, label=4)
    assert frames.shape == (5, 32, 32, 1)
    start = service.generate(str(tiny_gan), 1, seed=1, label=4).images[0]
    end = service.generate(str(tiny_gan), 1, seed=2, label=4).images[0]
    assert np.array_equal(frames[0], start) and np.array_equal(frames[-1], end)
    assert Image.open(io.BytesIO(gif)).n_frames == 8  # forward and back


@pytest.mark.parametrize("kwargs, message", [
    ({"num": 0}, "between 1 and"),
    ({"num": 10**6}, "between 1 and"),
    ({"num": 2.5}, "integer"),
    ({"num": "many"}, "integer"),
    ({"seed": -5}, "seed"),
    ({"seed": 2**40}, "seed"),
    ({"seed": math.nan}, "integer"),
    ({"seed": math.inf}, "integer"),
    ({"seed": "abc"}, "integer"),
    ({"label": 10}, "label must be between 0 and 9"),
    ({"label": -3}, "label"),
    ({"label": 1.5}, "integer"),
    ({"seed": 2**32 - 1, "num": 2}, r"seed \+ n - 1 must be at most"),
])
def test_bad_requests(service, tiny_gan, kwargs, message):
    with pytest.raises(GenerationError, match=message):
        service.generate(str(tiny_gan), **{"num": 1, "seed": 0, **kwargs})


def test_unconditional_model_refuses_labels(service, tmp_path):
    from conftest import make_gan

    folder = make_gan(tmp_path / "uncond", num_classes=0)
    assert service.generate(str(folder), 2, seed=0).labels == [None, None]
    with pytest.raises(GenerationError, match="unconditional"):
        service.generate(str(folder), 1, seed=0, label=1)


def test_a_model_with_class_names_takes_a_label_by_name(service, tmp_path):
    """Twemoji's labels are its emoji groups: the tab shows them, the API and CLI take either the id or the name."""
    from conftest import make_gan

    from aigc_hub.ui.image_tab import label_choices

    folder = make_gan(tmp_path / "named", num_classes=3, channels=4, class_names=["Flags", "Food & Drink", "Objects"])
    by_name = service.generate(str(folder), 2, seed=5, label="Food & Drink")
    by_id = service.generate(str(folder), 2, seed=5, label=1)
    assert by_name.labels == [1, 1] and np.array_equal(by_name.images, by_id.images)
    assert label_choices(service.facts(str(folder))) == [("any", "any"), ("0 · Flags", "0"),
                                                          ("1 · Food & Drink", "1"), ("2 · Objects", "2")]
    with pytest.raises(GenerationError, match=r"class id or name of .* \(Flags, Food & Drink, Objects\), got 'Smileys'"):
        service.generate(str(folder), 1, seed=0, label="Smileys")
    assert Image.open(io.BytesIO(by_name.png(0))).mode == "RGBA"  # alpha kept in the PNG


def test_unsafe_or_broken_checkpoints(service, tiny_gan, tmp_path):
    pickle_only = tmp_path / "pickle"
    pickle_only.mkdir()
    (pickle_only / "config.json").write_text((tiny_gan / "config.json").read_text())
    (pickle_only / "pytorch_model.bin").write_bytes(b"\x80\x04 not loaded, ever")
    with pytest.raises(ModelLoadError, match="pickle"):
        service.generate(str(pickle_only), 1, seed=0)

    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "config.json").write_text((tiny_gan / "config.json").read_text())
    data = (tiny_gan / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        service.generate(str(truncated), 1, seed=0)

    bad_config = tmp_path / "badconfig"
    bad_config.mkdir()
    (bad_config / "config.json").write_text("{not json")
    (bad_config / "model.safetensors").write_bytes(data)
    with pytest.raises(ModelLoadError, match="does not parse"):
        service.generate(str(bad_config), 1, seed=0)

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    config = json.loads((tiny_gan / "config.json").read_text())
    (wrong / "config.json").write_text(json.dumps({**config, "base_channels": 16}))
    (wrong / "model.safetensors").write_bytes(data)
    with pytest.raises(ModelLoadError, match="could not be loaded: config.json declares 0.2 MiB of weights or more, its weight files hold 0.1"):
        service.generate(str(wrong), 1, seed=0)  # refused from the config alone: no layer was allocated
    (wrong / "config.json").write_text(json.dumps({**config, "base_channels": 4}))
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        service.generate(str(wrong), 1, seed=0)  # fewer parameters than the file: the shapes do not match
    huge = tmp_path / "huge"
    huge.mkdir()
    (huge / "config.json").write_text(json.dumps({**config, "base_channels": 10**6, "num_classes": 10**12}))
    (huge / "model.safetensors").write_bytes(data)
    with pytest.raises(ModelLoadError, match="declares .* MiB of weights or more"):
        service.generate(str(huge), 1, seed=0)  # would be petabytes: refused before allocating


def test_unload_frees_the_model(tiny_gan):
    registry = ModelRegistry()
    service = ImageService(registry)
    service.generate(str(tiny_gan), 1, seed=0)
    [entry] = registry.loaded()
    assert entry.device == "cpu" and entry.describe().startswith(str(tiny_gan))
    import weakref

    ref = weakref.ref(entry.model)
    assert registry.unload(str(tiny_gan)) is True
    assert registry.loaded() == [] and ref() is None, "the weights are gone, not just forgotten"
    assert registry.unload(str(tiny_gan)) is False
