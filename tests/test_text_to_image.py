"""Diffusers pipelines as people share them on the Hub, served from HF ids in an offline cache: a tiny Stable
Diffusion pipeline (real UNet2DConditionModel, AutoencoderKL, CLIPTextModel and CLIPTokenizer classes, SD 1.5's
scheduler config) and an unconditional DDPMPipeline, through the service, the Image tab's API and the CLI."""

from __future__ import annotations

import io
import json
import shutil
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from aigc_hub.errors import GenerationError, ModelLoadError
from aigc_hub.services import ImageService, ModelRegistry
from aigc_hub.services.image import GenerationStopped
from conftest import run
from tiny_hub_models import make_ddpm_pipeline, make_tiny_sd

SD = "hf-internal-testing/tiny-stable-diffusion-pipe"
DDPM = "google/ddpm-tiny"


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipelines")
    return {SD: make_tiny_sd(root / "sd"), DDPM: make_ddpm_pipeline(root / "ddpm")}


@pytest.fixture
def service(tmp_hub, hf_cache, built):
    for ref, folder in built.items():
        hf_cache(ref, folder)
    return ImageService(ModelRegistry())


def test_the_pipeline_is_laid_out_as_the_hub_ships_it(built):
    sd = built[SD]
    index = json.loads((sd / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline" and index["safety_checker"] == [None, None]
    for part in ("unet", "vae", "text_encoder"):
        assert any((sd / part).glob("*.safetensors")), part
    assert {"vocab.json", "merges.txt"} <= {p.name for p in (sd / "tokenizer").iterdir()}
    assert json.loads((sd / "scheduler" / "scheduler_config.json").read_text())["_class_name"] == "PNDMScheduler"


def test_text_to_image_from_the_hub_id(service):
    facts = service.facts(SD)
    assert facts.prompted and facts.iterative and facts.resolution == 64 and facts.num_classes == 0
    result = service.generate(SD, 3, 11, prompt="a cat", negative_prompt="a dog", steps=3)
    assert result.images.shape == (3, 64, 64, 3) and result.images.std() > 0
    one = service.generate(SD, 1, 12, prompt="a cat", negative_prompt="a dog", steps=3)
    # Image i comes from seed + i alone, at any batch size (up to float rounding: a batch of 3 and of 1 may run
    # differently blocked matrix products, and a value at x.5 may round either way).
    assert np.abs(one.images[0].astype(int) - result.images[1]).max() <= 1
    text = Image.open(io.BytesIO(result.png(1))).text["parameters"]
    assert text.startswith("a cat\nNegative prompt: a dog\nSteps: 3, Sampler: DPM-Solver++ (2M), CFG scale: 7.5, "
                           "Seed: 12, Size: 64x64")
    changed = [service.generate(SD, 1, 12, steps=3, **kw).images[0] for kw in (
        dict(prompt="a dog", negative_prompt="a dog"), dict(prompt="a cat"),
        dict(prompt="a cat", negative_prompt="a dog", guidance_scale=1.0))]
    assert all(not np.array_equal(img, one.images[0]) for img in changed)  # each control reaches the model
    wide = service.generate(SD, 1, 0, prompt="a cat", width=96, height=48, steps=2)
    assert wide.images.shape == (1, 48, 96, 3) and "Size: 96x48" in wide.parameters[0]


# The default sampler in the fast tier; the others swap in the same way (slow tier: 0.8 s each on 2 cores).
@pytest.mark.parametrize("sampler", ["dpm-solver", *(pytest.param(s, marks=pytest.mark.slow)
                                                     for s in ("ddim", "euler", "euler-a", "ddpm"))])
def test_every_sampler_swaps_in_and_is_reproducible(service, sampler):
    a = service.generate(SD, 2, 5, prompt="a cat", steps=3, sampler=sampler)
    b = service.generate(SD, 2, 5, prompt="a cat", steps=3, sampler=sampler)
    np.testing.assert_array_equal(a.images, b.images)
    assert f"Steps: 3, Sampler: {a.sampler}" in a.parameters[0]


def test_stop_ends_the_pipeline_loop_between_steps(service):
    stop, seen = threading.Event(), []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        stop.set()  # pressed during the first step

    with pytest.raises(GenerationStopped):
        service.generate(SD, 2, 0, prompt="a cat", steps=20, progress=progress, stop=stop)
    assert seen == [2]  # one step of the batch of 2 ran, then the loop ended


def test_bad_input_is_refused_clearly(service):
    cases = [
        (dict(width=30), "width must be a multiple of 8"), (dict(height=4096), "height must be a multiple of 8"),
        (dict(guidance_scale=50), "guidance_scale must be between 0 and 30"),
        (dict(guidance_scale=float("nan")), "guidance_scale must be finite"),
        (dict(prompt="x" * 3000), "the prompt has 3000 characters"),
        (dict(prompt="a\x00cat"), "control characters"), (dict(label=3), "unconditional"),
        (dict(steps=0), "steps must be between 1 and 1000"), (dict(sampler="plms"), "unknown sampler"),
    ]
    for kwargs, message in cases:
        with pytest.raises(GenerationError, match=message):
            service.generate(SD, 1, 0, **{"prompt": "a cat", "steps": 2, **kwargs})
    with pytest.raises(GenerationError, match="takes no prompt"):
        service.generate(DDPM, 1, 0, prompt="a cat", steps=2)


def test_an_unconditional_pipeline_from_the_hub_id(service):
    facts = service.facts(DDPM)
    assert facts.iterative and not facts.prompted and facts.resolution == 16 and facts.channels == 3
    result = service.generate(DDPM, 2, 3, steps=4, sampler="ddim")
    assert result.images.shape == (2, 16, 16, 3)


def test_pipelines_that_cannot_be_served_say_why(tmp_hub, built, tmp_path):
    registry = ModelRegistry()

    def broken(name: str, edit) -> str:
        folder = tmp_path / name
        shutil.copytree(built[SD], folder)
        index = json.loads((folder / "model_index.json").read_text())
        edit(index, folder)
        (folder / "model_index.json").write_text(json.dumps(index))
        return str(folder)

    remote = broken("remote", lambda ix, _: ix.update(unet=["my_unet", "MyUNet"]))
    with pytest.raises(ModelLoadError, match="'my_unet', not from diffusers or transformers: that would run remote"):
        registry.get(remote)
    missing = broken("missing", lambda ix, folder: shutil.rmtree(folder / "vae"))
    with pytest.raises(ModelLoadError, match="needs its vae component, and there is no vae/ folder"):
        registry.get(missing)
    unknown = broken("unknown", lambda ix, _: ix.update(_class_name="NoSuchPipeline"))
    with pytest.raises(ModelLoadError, match="'NoSuchPipeline', a pipeline class diffusers does not have"):
        registry.get(unknown)
    pickled = broken("pickled", lambda ix, folder: [p.rename(p.with_suffix(".bin"))
                                                    for p in folder.glob("*/*.safetensors")])
    with pytest.raises(ModelLoadError, match="safetensors"):
        registry.get(pickled)


def test_a_pipeline_download_takes_its_components_only():
    """What `hub.resolve` asks huggingface_hub for, run through huggingface_hub's own filter on an SD 1.5 listing."""
    from huggingface_hub.utils import filter_repo_objects

    from aigc_hub.hub import PIPELINE_ALLOW, PIPELINE_IGNORE

    listing = ["model_index.json", "README.md", "v1-5-pruned.safetensors", "v1-5-pruned.ckpt",
               "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
               "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.non_ema.safetensors",
               "unet/diffusion_pytorch_model.bin", "text_encoder/model.safetensors", "tokenizer/vocab.json",
               "tokenizer/merges.txt", "scheduler/scheduler_config.json", "safety_checker/model.fp16.safetensors"]
    kept = set(filter_repo_objects(listing, allow_patterns=PIPELINE_ALLOW, ignore_patterns=PIPELINE_IGNORE))
    assert kept == {"model_index.json", "README.md", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                    "text_encoder/model.safetensors", "tokenizer/vocab.json", "tokenizer/merges.txt",
                    "scheduler/scheduler_config.json"}


def test_image_tab_and_cli_serve_the_pipeline_from_its_hub_id(launched, service, built, tmp_hub, tmp_path):
    from gradio_client import Client

    url, _ = launched(image_model=SD, extra_models=[DDPM], preload=False)
    client = Client(url, verbose=False)
    paths, seed, files = client.predict(SD, 7, 2, "any", 3, "euler", "a cat", "a dog", 5.0, 64, 48,
                                        api_name="/generate_image")
    assert seed == 7 and len(paths) == 2
    first = Image.open(paths[0]["image"] if isinstance(paths[0], dict) else paths[0])
    assert first.size == (64, 48)
    assert first.text["parameters"].startswith("a cat\nNegative prompt: a dog\nSteps: 3, Sampler: Euler, "
                                               "CFG scale: 5, Seed: 7, Size: 64x48")
    with pytest.raises(Exception, match="width must be a multiple of 8|out of range"):
        client.predict(SD, 7, 1, "any", 3, "euler", "a cat", "", 5.0, 60, 48, api_name="/generate_image")
    unconditional, _, _ = client.predict(DDPM, 1, 1, "any", 2, "ddim", api_name="/generate_image")
    assert len(unconditional) == 1

    env = {"AIGC_HUB_HOME": str(tmp_hub), "HF_HUB_CACHE": str(tmp_path / "hf-cache"), "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "cats"
    proc = run([sys.executable, "-m", "aigc_hub", "generate", "image", "--model", SD, "--num", "2", "--seed", "7",
                "--steps", "3", "--sampler", "euler", "--prompt", "a cat", "--negative-prompt", "a dog",
                "--guidance", "5", "--width", "64", "--height", "48", "--out", str(out)], env=env)
    assert proc.returncode == 0, proc.stderr
    cli = Image.open(out / "seed-7.png")
    np.testing.assert_array_equal(np.asarray(cli), np.asarray(first))  # same seed and batch: the same image
    assert cli.text["parameters"] == first.text["parameters"]
