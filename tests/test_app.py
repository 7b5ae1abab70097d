"""The app launched for real on loopback, called through gradio_client: generation, models tab, bad input."""

from __future__ import annotations

import math
import shutil

import pytest
from gradio_client import Client

from aigc_hub import hub
from conftest import is_user_error
from aigc_hub.imaging import read_parameters


@pytest.fixture
def app(launched, tmp_hub, tiny_gan):
    hub.push(tiny_gan, "me/tiny")
    url, demo = launched(image_model="me/tiny", max_images=16, queue_size=8)
    return Client(url, verbose=False)


def test_named_endpoints(app):
    names = set(app.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/generate_image", "/interpolate", "/load_model", "/unload_model", "/list_models"} <= names


def test_generate_through_the_api(app):
    gallery, used_seed, files = app.predict("me/tiny", 7, 5, "3", api_name="/generate_image")
    assert used_seed == 7 and len(gallery) == 5
    grid, archive = files
    assert "Count: 5" in read_parameters(grid)
    import zipfile

    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist() == [f"seed-{s}.png" for s in range(7, 12)]
    params = read_parameters(gallery[2]["image"])
    assert "Seed: 9" in params and "Label: 3" in params and "Model: me/tiny" in params
    again, _, _ = app.predict("me/tiny", 9, 1, "3", api_name="/generate_image")
    with open(gallery[2]["image"], "rb") as a, open(again[0]["image"], "rb") as b:
        assert a.read() == b.read(), "image i of a batch is image 0 of seed + i"


def test_random_seed_comes_back(app):
    _, used_seed, _ = app.predict("me/tiny", -1, 1, "any", api_name="/generate_image")
    assert isinstance(used_seed, (int, float)) and used_seed >= 0


def test_interpolate(app):
    gif, frames = app.predict("me/tiny", 1, 2, 6, "any", api_name="/interpolate")
    assert gif.endswith(".gif") and len(frames) == 6


def test_models_tab_load_unload(app):
    status, table, devices = app.predict("me/tiny", "cpu", api_name="/load_model")
    assert status.startswith("Loaded me/tiny on cpu")
    row = next(r for r in table["data"] if r[0] == "me/tiny")
    assert row[1] == "local" and row[2].startswith("cpu") and "FD" in row[5]
    assert "cpu" in devices
    status, table, _ = app.predict("me/tiny", api_name="/unload_model")
    assert status == "Unloaded me/tiny"
    assert next(r for r in table["data"] if r[0] == "me/tiny")[2] == ""
    # Generating again after an unload loads the model back.
    gallery, _, _ = app.predict("me/tiny", 0, 1, "any", api_name="/generate_image")
    assert len(gallery) == 1


def test_a_model_pushed_while_running_is_usable(app, tmp_path):
    from conftest import make_gan

    hub.push(make_gan(tmp_path / "later", num_classes=0), "me/later")
    gallery, _, _ = app.predict("me/later", 0, 2, "any", api_name="/generate_image")
    assert len(gallery) == 2


BAD_GENERATE = [
    ("unknown model", ("me/nothing", 0, 1, "any")),
    ("traversal id", ("../../etc", 0, 1, "any")),
    ("absolute path", ("/etc", 0, 1, "any")),
    ("count 0", ("me/tiny", 0, 0, "any")),
    ("count 10^6", ("me/tiny", 0, 10**6, "any")),
    ("negative seed", ("me/tiny", -7, 1, "any")),
    ("huge seed", ("me/tiny", 2**40, 1, "any")),
    ("NaN seed", ("me/tiny", math.nan, 1, "any")),
    ("label out of range", ("me/tiny", 0, 1, "12")),
    ("label not a number", ("me/tiny", 0, 1, "seven")),
]


@pytest.mark.parametrize("case, args", BAD_GENERATE, ids=[c for c, _ in BAD_GENERATE])
def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(app, case, args):
    with pytest.raises(Exception) as err:
        app.predict(*args, api_name="/generate_image")
    message = str(err.value)
    assert is_user_error(message), message
    gallery, _, _ = app.predict("me/tiny", 0, 1, "any", api_name="/generate_image")
    assert len(gallery) == 1


def test_broken_checkpoints_in_the_hub(app, tmp_hub, tiny_gan):
    broken = tmp_hub / "me" / "broken"
    shutil.copytree(tiny_gan, broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 3])
    pickled = tmp_hub / "me" / "pickled"
    shutil.copytree(tiny_gan, pickled)
    (pickled / "model.safetensors").rename(pickled / "pytorch_model.bin")
    missing = tmp_hub / "me" / "missing"
    shutil.copytree(tiny_gan, missing)
    (missing / "model.safetensors").unlink()
    for ref, expected in [("me/broken", "could not be loaded"), ("me/pickled", "pickle"),
                          ("me/missing", "no .safetensors")]:
        with pytest.raises(Exception, match=expected):
            app.predict(ref, 0, 1, "any", api_name="/generate_image")
        with pytest.raises(Exception, match=expected):
            app.predict(ref, "auto", api_name="/load_model")
    with pytest.raises(Exception, match="not on this machine"):
        app.predict("me/tiny", "cuda:7", api_name="/load_model")
    gallery, _, _ = app.predict("me/tiny", 0, 1, "any", api_name="/generate_image")
    assert len(gallery) == 1
