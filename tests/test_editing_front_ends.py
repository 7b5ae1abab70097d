"""Editing through the CLI (`generate image --init-image/--mask/--outpaint`) and OpenAI's /v1/images/edits (the
official client's multipart form, OpenAI's transparent-pixels mask): the pictures the service makes, and each bad
input refused in one line."""

from __future__ import annotations

import base64
import io
import sys

import numpy as np
import pytest
from PIL import Image

from aigc_hub import hub
from aigc_hub.imaging import read_parameters
from aigc_hub.services import ImageService, ModelRegistry
from aigc_hub.services.requests import ImageRequest
from conftest import run
from test_class_guidance import guided
from test_image_editing import SD, lower_half, picture, png, sd_folder  # noqa: F401 (a fixture)

pytestmark = pytest.mark.slow  # a subprocess or a server each
openai = pytest.importorskip("openai")


def cli(*args):
    return run([sys.executable, "-m", "aigc_hub", *map(str, args)], env={"HF_HUB_OFFLINE": "1"})


def test_the_cli_edits_as_the_service_does(tiny_ddpm, tmp_path):
    source, mask = tmp_path / "in.png", tmp_path / "mask.png"
    source.write_bytes(png(picture()))
    mask.write_bytes(png(lower_half()))
    out = tmp_path / "out.npz"
    proc = cli("generate", "image", "--model", tiny_ddpm, "--num", 2, "--seed", 4, "--steps", 4, "--init-image",
               source, "--mask", mask, "--out", out)
    assert proc.returncode == 0, proc.stderr
    expected = ImageService(ModelRegistry()).run(ImageRequest(str(tiny_ddpm), 2, 4, steps=4, image=source.read_bytes(),
                                                              mask=mask.read_bytes())).images
    with np.load(out) as data:
        assert np.array_equal(data["images"], expected)
    one = tmp_path / "one.png"
    proc = cli("generate", "image", "--model", tiny_ddpm, "--num", 1, "--seed", 4, "--steps", 4, "--init-image",
               source, "--strength", 0.5, "--outpaint", "2,2,2,2", "--out", one)
    assert proc.returncode == 0, proc.stderr
    assert "Denoising strength: 0.5" in read_parameters(str(one)) and "Outpaint: 2,2,2,2" in read_parameters(str(one))


@pytest.mark.parametrize("args, message", [
    (["--init-image", "missing.png"], "--init-image: cannot read missing.png"),
    (["--init-image", "{source}", "--strength", "2"], "strength must be between 0 and 1, got 2"),
    (["--mask", "{source}"], "mask applies to editing: give the picture to edit too"),
    (["--init-image", "{text}"], "the input image is not a picture this server reads"),
])
def test_bad_edits_in_the_cli(tiny_ddpm, tmp_path, args, message):
    (tmp_path / "in.png").write_bytes(png(picture()))
    (tmp_path / "notes.txt").write_text("not a picture")
    args = [a.format(source=tmp_path / "in.png", text=tmp_path / "notes.txt") for a in args]
    proc = cli("generate", "image", "--model", tiny_ddpm, "--num", 1, "--steps", 2, "--out", tmp_path / "o.png",
               *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


@pytest.fixture
def app(launched, tiny_ddpm, tiny_gan, hf_cache, sd_folder):
    hub.push(tiny_ddpm, "me/tiny-ddpm")
    hub.push(tiny_gan, "me/tiny-gan")
    hf_cache(SD, sd_folder)
    url, _ = launched(image_model="me/tiny-ddpm", tabs=["image"], extra_models=["me/tiny-gan", SD], preload=False)
    return openai.OpenAI(base_url=f"{url}v1", api_key="unused", max_retries=0, timeout=120)


def openai_mask(size: int = 16) -> bytes:
    """OpenAI's rule: the fully transparent pixels (here the lower half) are edited."""
    rgba = np.full((size, size, 4), 255, dtype=np.uint8)
    rgba[size // 2:, :, 3] = 0
    return png(rgba)


def test_images_edits_takes_openais_form_and_mask(app):
    source = picture()
    out = app.images.edit(model="me/tiny-ddpm", image=("in.png", png(source)), mask=("mask.png", openai_mask()),
                          prompt="3", n=2, extra_body={"seed": 5, "steps": 4})
    images = np.stack([np.asarray(Image.open(io.BytesIO(base64.b64decode(d.b64_json)))) for d in out.data])
    expected = ImageService(ModelRegistry()).run(ImageRequest("me/tiny-ddpm", 2, 5, "3", 4, image=png(source),
                                                              mask=png(lower_half()))).images[..., 0]
    assert np.array_equal(images, expected) and np.array_equal(images[:, :8], np.stack([source[:8]] * 2))
    whole = app.images.edit(model="me/tiny-ddpm", image=("in.png", png(source)), prompt="",
                            extra_body={"seed": 5, "steps": 4, "strength": 0})
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(base64.b64decode(whole.data[0].b64_json)))), source)


def test_a_text_to_image_pipeline_edits_through_images_edits(app):
    source = picture(64, 3)
    out = app.images.edit(model=SD, image=("in.png", png(source)), mask=("mask.png", openai_mask(64)),
                          prompt="a cat", size="64x64", extra_body={"seed": 2, "steps": 3})
    image = np.asarray(Image.open(io.BytesIO(base64.b64decode(out.data[0].b64_json))))
    expected = ImageService(ModelRegistry()).run(ImageRequest(SD, 1, 2, steps=3, prompt="a cat", image=png(source),
                                                              mask=png(lower_half(64)))).images[0]
    assert np.array_equal(image, expected) and np.array_equal(image[:32], source[:32])


@pytest.mark.parametrize("kwargs, message", [
    ({"model": "me/tiny-gan"}, "cannot edit one"),
    ({"mask": ("mask.png", png(lower_half()))}, "the mask must have transparency"),
    ({"mask": ("mask.png", openai_mask(8))}, "the mask is 8×8 pixels and the input image 16×16"),
    ({"image": ("in.png", b"not a picture")}, "not a picture this server reads"),
    ({"extra_body": {"strength": 3}}, "strength must be between 0 and 1"),
    ({"extra_body": {"colour": "red"}}, "unknown parameter 'colour'"),
    ({"response_format": "url"}, "response_format must be b64_json"),
])
def test_bad_edits_get_openais_error_shape(app, kwargs, message):
    asked = {"model": "me/tiny-ddpm", "image": ("in.png", png(picture())), "prompt": "", **kwargs}
    with pytest.raises(openai.BadRequestError, match=message) as caught:
        app.images.edit(**asked)
    assert caught.value.body["message"].count("\n") == 0


def test_an_edit_that_is_not_a_form_or_too_big_is_refused(app):
    import httpx

    url = str(app.base_url)
    as_json = httpx.post(f"{url}images/edits", json={"model": "me/tiny-ddpm"}, timeout=60)
    assert as_json.status_code == 400 and "multipart/form-data" in as_json.json()["error"]["message"]
    huge = httpx.post(f"{url}images/edits", files={"image": ("big.png", b"\0" * (70 << 20))}, timeout=60)
    assert huge.status_code == 413
    twice = httpx.post(f"{url}images/edits", files=[("image", ("a.png", png(picture()))),
                                                    ("image", ("b.png", png(picture())))], timeout=60)
    assert twice.status_code == 400 and "more than once" in twice.json()["error"]["message"]


def test_the_tabs_endpoints_edit_and_vary_as_the_service_does(launched, tiny_ddpm, tiny_gan, tmp_path):
    from gradio_client import Client, handle_file

    hub.push(tiny_ddpm, "me/tiny-ddpm")
    hub.push(tiny_gan, "me/tiny-gan")
    url, _ = launched(image_model="me/tiny-ddpm", tabs=["image"], extra_models=["me/tiny-gan"], preload=False)
    client = Client(url, verbose=False)
    source, strokes = tmp_path / "in.png", tmp_path / "strokes.png"
    source.write_bytes(png(picture()))
    layer = np.zeros((16, 16, 4), dtype=np.uint8)
    layer[8:, :, 0], layer[8:, :, 3] = 255, 255  # red strokes over the lower half, on a transparent layer
    strokes.write_bytes(png(layer))
    picture_value = {"background": handle_file(str(source)), "layers": [handle_file(str(strokes))],
                     "composite": None}
    paths, seed, files = client.predict("me/tiny-ddpm", picture_value, 1.0, "", 6, 2, "3", 4, "ddim",
                                        api_name="/edit_image")
    got = np.stack([np.asarray(Image.open(p["image"])) for p in paths])
    expected = ImageService(ModelRegistry()).run(ImageRequest("me/tiny-ddpm", 2, 6, "3", 4, "ddim",
                                                              image=source.read_bytes(),
                                                              mask=png(lower_half()), strength=1.0)).images[..., 0]
    assert seed == 6 and np.array_equal(got, expected)
    assert "Mask: " in read_parameters(paths[0]["image"])
    paths, seed, _ = client.predict("me/tiny-gan", 9, 2, "4", 0.3, api_name="/image_variations")
    text = read_parameters(paths[1]["image"])
    assert seed == 9 and "Seed: 9," in text and "Variation seed strength: 0.3" in text and "Label: 4" in text
    with pytest.raises(Exception, match="cannot edit one"):
        client.predict("me/tiny-gan", picture_value, 0.5, "", 1, 1, "any", api_name="/edit_image")
    # A model trained with an empty label takes the tab's class guidance; the model's default when left out here.
    guided(tmp_path / "guided")
    hub.push(tmp_path / "guided", "me/tiny-guided")
    paths, _, _ = client.predict("me/tiny-guided", picture_value, 1.0, "", 6, 2, "3", 4, "ddim", class_guidance=3.0,
                                 api_name="/edit_image")
    got = np.stack([np.asarray(Image.open(p["image"])) for p in paths])
    expected = ImageService(ModelRegistry()).run(ImageRequest("me/tiny-guided", 2, 6, "3", 4, "ddim",
                                                              guidance_scale=3.0, image=source.read_bytes(),
                                                              mask=png(lower_half()), strength=1.0))
    assert np.array_equal(got, expected.images[..., 0]) and "CFG scale: 3" in read_parameters(paths[0]["image"])
