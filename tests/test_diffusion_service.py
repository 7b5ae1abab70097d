"""Diffusion models in the image service: stock diffusers pipeline folders (tiny random weights, laid out as
`DDPMPipeline.save_pretrained` writes them), every sampler, the seed rule, Stop, bad input, refused folders."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from aigc_hub.errors import ModelLoadError, UserError
from aigc_hub.imaging import read_parameters
from aigc_hub.models.diffusion import SAMPLER_TITLES, SAMPLERS
from aigc_hub.services import ImageService, ModelRegistry
from aigc_hub.services.image import GenerationStopped
from conftest import make_diffusion


@pytest.fixture
def service():
    return ImageService(ModelRegistry())


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_every_sampler_generates_and_says_how_in_the_png(service, tiny_ddpm, sampler):
    result = service.generate(str(tiny_ddpm), 3, seed=5, steps=3, sampler=sampler)
    assert result.images.shape == (3, 16, 16, 1) and result.images.dtype == np.uint8
    assert result.labels == [0, 1, 2] and result.seeds == [5, 6, 7]
    text = read_parameters(result.png(1))
    assert f"Steps: 3, Sampler: {SAMPLER_TITLES[sampler]}, Seed: 6, Size: 16x16" in text and "Label: 1" in text
    assert "Steps: 3" in result.grid_parameters()
    assert result.images.std() > 0  # not a blank image


@pytest.mark.parametrize("sampler", ["ddpm", "euler-a", "dpm-solver"])  # stochastic ones draw noise at every step
def test_image_i_depends_on_its_seed_alone(service, tiny_ddpm, monkeypatch, sampler):
    batch = service.generate(str(tiny_ddpm), 5, seed=10, label=3, steps=4, sampler=sampler)
    alone = service.generate(str(tiny_ddpm), 1, seed=13, label=3, steps=4, sampler=sampler)
    assert np.abs(batch.images[3].astype(int) - alone.images[0].astype(int)).max() <= 1
    monkeypatch.setattr("aigc_hub.services.image.DIFFUSION_BATCH", 2)  # the same request in UNet batches of 2
    chunked = service.generate(str(tiny_ddpm), 5, seed=10, label=3, steps=4, sampler=sampler)
    assert np.abs(batch.images.astype(int) - chunked.images.astype(int)).max() <= 1
    again = service.generate(str(tiny_ddpm), 5, seed=10, label=3, steps=4, sampler=sampler)
    assert np.array_equal(chunked.images, again.images)


def test_progress_counts_every_step_of_every_batch(service, tiny_ddpm, monkeypatch):
    monkeypatch.setattr("aigc_hub.services.image.DIFFUSION_BATCH", 2)
    seen = []
    service.generate(str(tiny_ddpm), 3, seed=0, steps=4, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (12, 12) and len(seen) == 8  # 2 batches × 4 steps, in image-steps
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_stop_ends_the_denoising_loop_between_steps(service, tiny_ddpm):
    stop, steps_run = threading.Event(), []

    def progress(done: int, total: int) -> None:
        steps_run.append(done)
        stop.set()  # pressed during the first step

    with pytest.raises(GenerationStopped):
        service.generate(str(tiny_ddpm), 2, seed=0, steps=200, progress=progress, stop=stop)
    assert len(steps_run) == 1, "the loop ended at the next step, not after 200"


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 0}, "steps must be between 1 and 1000, got 0"),
    ({"steps": 10**6}, "steps must be between 1 and 1000"),
    ({"steps": "many"}, "steps must be an integer"),
    ({"sampler": "nope"}, "unknown sampler"),
    ({"label": 10}, "label must be between 0 and 9"),
    ({"label": "x"}, "label"),
])
def test_bad_input_is_a_clear_error(service, tiny_ddpm, kwargs, message):
    with pytest.raises(UserError, match=message):
        service.generate(str(tiny_ddpm), 2, seed=0, **{"steps": 2, **kwargs})


def test_unconditional_v_prediction_rgb_pipeline(service, tmp_path):
    folder = make_diffusion(tmp_path / "uncond", num_classes=None, channels=3, prediction_type="v_prediction")
    result = service.generate(str(folder), 2, seed=1, steps=3, sampler="ddim")
    assert result.images.shape == (2, 16, 16, 3) and result.labels == [None, None]
    assert service.facts(str(folder)).num_classes == 0
    with pytest.raises(UserError, match="unconditional"):
        service.generate(str(folder), 1, seed=1, steps=2, label=1)


def test_interpolation_starts_at_seed_a(service, tiny_ddpm):
    frames, gif = service.interpolate(str(tiny_ddpm), 1, 2, frames=4, label=0, steps=3, sampler="ddim")
    assert frames.shape == (4, 16, 16, 1) and gif[:6] in (b"GIF87a", b"GIF89a")
    first = service.generate(str(tiny_ddpm), 1, seed=1, label=0, steps=3, sampler="ddim")
    assert np.abs(frames[0].astype(int) - first.images[0].astype(int)).max() <= 1


def test_facts_are_read_without_loading(service, tiny_ddpm):
    facts = service.facts(str(tiny_ddpm))
    assert (facts.family, facts.num_classes, facts.resolution, facts.channels, facts.iterative) == (
        "diffusion", 10, 16, 1, True)
    assert service.registry.loaded() == []


def _edit_index(folder, **changes):
    index = json.loads((folder / "model_index.json").read_text())
    index.update(changes)
    (folder / "model_index.json").write_text(json.dumps(index))


@pytest.mark.parametrize("change, message", [
    ({"_class_name": "NoSuchPipeline"}, "a pipeline class diffusers does not have"),
    ({"_class_name": "StableDiffusionPipeline"}, "not served yet"),
    ({"unet": ["my_module", "MyUNet"]}, "must be diffusers' UNet2DModel"),
    ({"scheduler": ["my_module", "MyScheduler"]}, "must be a diffusers scheduler"),
])
def test_folders_asking_for_other_code_are_refused(service, tiny_ddpm, change, message):
    _edit_index(tiny_ddpm, **change)
    with pytest.raises(ModelLoadError, match=message):
        service.generate(str(tiny_ddpm), 1, seed=0, steps=2)


def test_pickle_only_unet_is_refused_unread(service, tiny_ddpm):
    weights = tiny_ddpm / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))  # would be unpickled by a careless loader
    with pytest.raises(ModelLoadError, match="only pickle weights"):
        service.generate(str(tiny_ddpm), 1, seed=0, steps=2)


@pytest.mark.parametrize("sampler", ["dpm-solver", "euler"])
def test_an_in_memory_scheduler_config_samples_as_the_saved_one(tiny_ddpm, tmp_path, sampler):
    """The training script samples from its scheduler object's config, the service from scheduler_config.json: the
    same images. (An in-memory config lists its defaulted keys in `_use_default_values`; passed on, from_config gave
    DPM-Solver its own "linspace" spacing instead of the trained "leading", starting at t=999, and noise came out.)"""
    import torch
    from diffusers import DDPMScheduler, UNet2DModel

    from aigc_hub.models.diffusion import denoise

    trained = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=True)
    trained.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "scheduler_config.json").read_text())
    assert "_use_default_values" in dict(trained.config) and "_use_default_values" not in saved
    unet = UNet2DModel.from_pretrained(str(tiny_ddpm), subfolder="unet")
    a = denoise(unet, dict(trained.config), [1, 2], steps=5, sampler=sampler, labels=torch.tensor([0, 1]))
    b = denoise(unet, saved, [1, 2], steps=5, sampler=sampler, labels=torch.tensor([0, 1]))
    assert torch.equal(a, b)
