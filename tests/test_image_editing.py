"""Editing through the image service: image-to-image, inpainting and outpainting with the project's diffusion UNets
and a text-to-image pipeline (tiny random weights, laid out as the Hub ships them), variations of any model's image,
the seed rule, Stop, batching of concurrent edits, and every bad input refused in one line."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

from aigc_hub.errors import UserError
from aigc_hub.imaging import read_parameters
from aigc_hub.models.diffusion import SAMPLERS
from aigc_hub.services import ImageService, ModelRegistry
from aigc_hub.services.editing import MAX_INPUT_PIXELS, digest
from aigc_hub.services.image import GenerationStopped
from aigc_hub.services.requests import ImageRequest
from conftest import make_diffusion, wait_for
from test_batching import held, in_threads, join
from tiny_hub_models import make_tiny_sd

SD = "hf-internal-testing/tiny-stable-diffusion-pipe"


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def picture(size: int = 16, channels: int = 1, seed: int = 0) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, channels), dtype=np.uint8)
    return pixels[..., 0] if channels == 1 else pixels


def lower_half(size: int = 16) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[size // 2:] = 255
    return mask


@pytest.fixture
def service():
    return ImageService(ModelRegistry())


@pytest.fixture(scope="session")
def sd_folder(tmp_path_factory):
    return make_tiny_sd(tmp_path_factory.mktemp("sd") / "sd")


@pytest.fixture
def sd(tmp_hub, hf_cache, sd_folder):
    hf_cache(SD, sd_folder)
    return ImageService(ModelRegistry())


def edit(service: ImageService, ref: str, **fields) -> object:
    return service.run(ImageRequest(ref, **{"steps": 4, "seed": 3, **fields}))


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_strength_one_is_generation_and_strength_zero_the_input(service, tiny_ddpm, sampler):
    ref, source = str(tiny_ddpm), picture()
    made = service.generate(ref, 2, seed=3, label=4, steps=4, sampler=sampler).images
    full = edit(service, ref, n=2, label=4, sampler=sampler, image=png(source), strength=1)
    assert np.array_equal(full.images, made), "strength 1: the seed's noise alone, as generation"
    kept = edit(service, ref, n=2, label=4, sampler=sampler, image=png(source), strength=0)
    assert np.array_equal(kept.images[0, ..., 0], source) and np.array_equal(kept.images[1, ..., 0], source)
    half = edit(service, ref, label=4, sampler=sampler, image=png(source), strength=0.5)
    assert not np.array_equal(half.images[0, ..., 0], source)
    text = read_parameters(half.png(0))
    assert f"Init image: {digest(Image.fromarray(source))}, Denoising strength: 0.5" in text and "Steps: 4" in text


def test_inpainting_keeps_the_unmasked_pixels_and_repaints_the_rest(service, tiny_ddpm):
    ref, source = str(tiny_ddpm), picture()
    out = edit(service, ref, n=3, image=png(source), mask=png(lower_half()))
    for image in out.images[..., 0]:
        assert np.array_equal(image[:8], source[:8]) and not np.array_equal(image[8:], source[8:])
    text = read_parameters(out.png(1))
    assert "Denoising strength: 1, Mask: " in text and "Seed: 4" in text
    # image i depends on seed + i alone, at any batch size
    alone = edit(service, ref, seed=4, label=1, image=png(source), mask=png(lower_half()))
    assert np.abs(out.images[1].astype(int) - alone.images[0].astype(int)).max() <= 1
    assert out.seeds == [3, 4, 5] and out.labels == [0, 1, 2]


def test_outpainting_extends_the_canvas_and_repaints_only_the_padding(service, tiny_ddpm):
    ref, source = str(tiny_ddpm), picture(8)
    out = edit(service, ref, image=png(source), outpaint="4,0,4,8")  # an 8×8 picture on a 16×16 canvas
    image = out.images[0, ..., 0]
    assert np.array_equal(image[:8, 4:12], source), "the picture sits where the padding leaves it, unchanged"
    assert "Outpaint: 4,0,4,8" in read_parameters(out.png(0))


def test_the_input_is_brought_to_the_models_size_and_channels(service, tmp_path):
    rgb = str(make_diffusion(tmp_path / "rgb", num_classes=None, channels=3))
    rgba = np.zeros((40, 20, 4), dtype=np.uint8)  # a transparent, non-square picture: white once composited
    out = edit(service, rgb, image=png(rgba), strength=0)
    assert out.images.shape == (1, 16, 16, 3) and (out.images == 255).all()
    grey = edit(service, str(make_diffusion(tmp_path / "grey")), image=png(picture(32, 3)), strength=0)
    assert grey.images.shape == (1, 16, 16, 1)


def test_variations_blend_the_seeds_noise_for_gans_and_diffusion(service, tiny_gan, tiny_ddpm):
    for ref, kw in ((str(tiny_gan), {}), (str(tiny_ddpm), {"steps": 4, "sampler": "ddim"})):
        same = service.generate(ref, 1, seed=9, label=2, **kw).images[0]
        none = service.run(ImageRequest(ref, 1, 9, 2, variation_seed=100, variation_strength=0, **kw))
        assert np.array_equal(none.images[0], same), "strength 0: the seed's own image"
        near = service.run(ImageRequest(ref, 3, 9, 2, variation_seed=100, variation_strength=0.2, **kw))
        far = service.run(ImageRequest(ref, 1, 9, 2, variation_seed=100, variation_strength=0.9, **kw))
        gap = [np.abs(x.astype(int) - same.astype(int)).mean() for x in (near.images[0], far.images[0])]
        assert 0 < gap[0] < gap[1], "a low strength stays closer to the seed's image"
        one = service.run(ImageRequest(ref, 1, 9, 2, variation_seed=102, variation_strength=0.2, **kw))
        assert np.abs(one.images[0].astype(int) - near.images[2].astype(int)).max() <= 1  # variation seed + i
        text = read_parameters(near.png(2))
        assert "Seed: 9," in text and "Variation seed: 102, Variation seed strength: 0.2" in text


def test_stop_ends_an_edit_between_steps(service, tiny_ddpm):
    stop, seen = threading.Event(), []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        stop.set()

    with pytest.raises(GenerationStopped):
        service.run(ImageRequest(str(tiny_ddpm), 2, 0, steps=400, image=png(picture()), strength=0.5), progress,
                    stop)
    assert seen == [(2, 400)], "one step of 200 (strength 0.5 runs half the steps) for 2 images, then it stopped"


def test_concurrent_edits_share_the_denoising_loop_and_give_what_they_give_alone(tiny_ddpm):
    registry = ModelRegistry()
    service = ImageService(registry)
    ref, mask = str(tiny_ddpm), png(lower_half())
    asks = [dict(n=2, seed=1, image=png(picture(seed=1)), strength=0.5),  # image-to-image
            dict(n=1, seed=5, image=png(picture(seed=2)), mask=mask, strength=0.5),  # inpainting, same strength
            dict(n=1, seed=5, image=png(picture(seed=2)), mask=mask)]  # strength 1: a batch of its own
    alone = [edit(service, ref, sampler="euler-a", **a).images for a in asks]
    gate = held(registry)
    threads, out = in_threads([lambda a=a: edit(service, ref, sampler="euler-a", **a) for a in asks])
    wait_for(lambda: registry.batcher.waiting("cpu") == len(asks), timeout=60, every=0.001)
    gate.set()
    join(threads)
    assert sorted(registry.batcher.batch_sizes[-2:]) == [1, 2]  # requests: the first two in one loop
    for result, expected in zip(out, alone):
        assert np.abs(result.images.astype(int) - expected.astype(int)).max() <= 1


@pytest.mark.parametrize("fields, message", [
    ({"image": b"not a picture"}, "the input image is not a picture this server reads"),
    ({"image": "a/path/on/the/server.png"}, "the input image must be a picture, got str"),
    ({"mask": png(lower_half(8))}, "the mask is 8×8 pixels and the input image 16×16"),
    ({"mask": png(np.zeros((16, 16), np.uint8))}, "the mask repaints nothing"),
    ({"mask": png(np.full((16, 16), 255, np.uint8))}, "the mask repaints everything"),
    ({"strength": 1.5}, "strength must be between 0 and 1, got 1.5"),
    ({"outpaint": "1,2,3"}, "outpaint takes 4 numbers"),
    ({"outpaint": "0,0,0,5000"}, "outpaint sides must be between 0 and 2048"),
    ({"outpaint": "0,0,2048,2048", "image": png(np.zeros((4000, 4000), np.uint8))}, "the outpainted canvas is"),
    ({"image": None, "mask": png(lower_half())}, "mask applies to editing: give the picture to edit too"),
    ({"variation_strength": 2}, "variation_strength must be between 0 and 1"),
])
def test_bad_edits_are_refused_in_one_line(service, tiny_ddpm, fields, message):
    with pytest.raises(UserError, match=message) as caught:
        edit(service, str(tiny_ddpm), **{"image": png(picture()), **fields})
    assert "\n" not in str(caught.value)


def test_a_huge_picture_is_refused_before_it_is_decoded(service, tiny_ddpm):
    side = int(MAX_INPUT_PIXELS ** 0.5) + 1
    huge = png(np.zeros((side, side), np.uint8))  # a few KiB of PNG, 16.8 M pixels once decoded
    with pytest.raises(UserError, match=f"the input image is {side}×{side} pixels: at most 16,777,216"):
        edit(service, str(tiny_ddpm), image=huge)


def test_a_gan_says_plainly_that_it_cannot_edit(service, tiny_gan):
    with pytest.raises(UserError, match="is a dcgan model: it makes pictures from noise and cannot edit one"):
        edit(service, str(tiny_gan), image=png(picture(32)))


def test_text_to_image_edits_with_diffusers_img2img_and_inpainting_pipelines(sd):
    source = picture(64, 3)
    made = sd.generate(SD, 1, 3, prompt="a cat", steps=4).images
    full = edit(sd, SD, prompt="a cat", image=png(source), strength=1)
    assert np.array_equal(full.images, made)
    kept = edit(sd, SD, prompt="a cat", image=png(source), strength=0)
    assert np.array_equal(kept.images[0], source)
    moved = edit(sd, SD, n=2, prompt="a cat", image=png(source), strength=0.5)
    assert moved.images.shape == (2, 64, 64, 3) and not np.array_equal(moved.images[0], source)
    one = edit(sd, SD, seed=4, prompt="a cat", image=png(source), strength=0.5)
    assert np.abs(one.images[0].astype(int) - moved.images[1].astype(int)).max() <= 1
    painted = edit(sd, SD, prompt="a cat", image=png(source), mask=png(lower_half(64)))
    assert np.array_equal(painted.images[0, :32], source[:32]) and not np.array_equal(painted.images[0, 32:],
                                                                                        source[32:])
    wide = edit(sd, SD, prompt="a cat", image=png(source), outpaint="32,0,32,0", width=128, height=64)
    assert wide.images.shape == (1, 64, 128, 3)
    with pytest.raises(UserError, match="variations of a partial edit"):
        edit(sd, SD, prompt="a cat", image=png(source), strength=0.5, variation_seed=7)
