"""train_diffusion.py started from a shared pipeline with LoRA: a UNet2DModel's adapter (a PEFT folder) and a
DreamBooth-style adapter of a text-to-image pipeline (a PEFT folder and diffusers' pytorch_lora_weights), each loaded
by stock peft / diffusers exactly as the app serves it, beside an unchanged base; and the refusals."""

from __future__ import annotations

import json
import sys
import threading

import numpy as np
import pytest
import torch

from aigc_hub import hub
from aigc_hub.cards import read_card
from aigc_hub.services.image import ImageService
from aigc_hub.services.registry import ModelRegistry
from conftest import REPO, make_diffusion, run
from tiny_hub_models import make_tiny_sd

pytestmark = pytest.mark.slow  # training subprocesses and pipelines

QUICK = ["--report_to", "none", "--sample_steps", "0", "--checkpointing_steps", "0", "--num_sample_images", "2",
         "--sample_inference_steps", "2", "--lora_rank", "4"]


def train(*args: str):
    proc = run([sys.executable, str(REPO / "training" / "train_diffusion.py"), *QUICK, *args])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture
def instance_images(tmp_path):
    """Five 64 px pictures of one 'subject' (a coloured square on black)."""
    from PIL import Image

    folder = tmp_path / "subject"
    folder.mkdir()
    for i in range(5):
        a = np.zeros((64, 64, 3), np.uint8)
        a[16:48, 16:48] = (200, 40 + 10 * i, 40)
        Image.fromarray(a).save(folder / f"{i}.png")
    return folder


def test_a_unet_lora_is_a_peft_folder_stock_peft_loads_and_the_app_serves_beside_its_base(digits_npz, tmp_path,
                                                                                          tmp_hub):
    from diffusers import DDPMPipeline, UNet2DModel
    from peft import PeftModel

    hub.push(make_diffusion(tmp_path / "base"), "me/tiny-ddpm")
    out = tmp_path / "lora"
    proc = train("--base_model", "me/tiny-ddpm", "--dataset", str(digits_npz), "--image_column", "x_train",
                 "--label_column", "y_train", "--max_train_samples", "64", "--train_batch_size", "16",
                 "--eval_steps_list", "2", "--max_train_steps", "3", "--merge", "--output_dir", str(out),
                 "--push_to_hub", "--hub_model_id", "me/ddpm-lora")
    assert "LoRA rank 4 on ['conv1', 'conv2', 'to_k', 'to_out.0', 'to_q', 'to_v']" in proc.stderr
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "me/tiny-ddpm" and config["task_type"] is None
    assert not (out / "unet").exists() and (out / "merged" / "model_index.json").is_file()
    card = read_card(out)
    assert "base_model: me/tiny-ddpm" in (out / "README.md").read_text() and "lora" in card.tags

    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([5, 50]), torch.tensor([1, 2])
    with torch.no_grad():
        base = UNet2DModel.from_pretrained(str(hub.resolve("me/tiny-ddpm")), subfolder="unet").eval()
        plain = base(x, t, class_labels=y).sample
        stock = PeftModel.from_pretrained(base, str(hub.resolve("me/ddpm-lora"))).eval()(x, t, class_labels=y).sample
        merged = DDPMPipeline.from_pretrained(str(out / "merged")).unet.eval()(x, t, class_labels=y).sample
    assert not torch.allclose(stock, plain) and torch.allclose(stock, merged, atol=1e-5)

    service = ImageService(ModelRegistry())
    before = service.generate("me/tiny-ddpm", 2, seed=1, label=3, steps=3).images
    adapted = service.generate("me/ddpm-lora", 2, seed=1, label=3, steps=3).images
    assert not np.array_equal(adapted, before)
    assert np.array_equal(service.generate("me/tiny-ddpm", 2, seed=1, label=3, steps=3).images, before)
    assert np.array_equal(service.generate("me/ddpm-lora", 2, seed=1, label=3, steps=3).images, adapted)
    assert "not loaded again" in service.registry.get("me/ddpm-lora").describe()
    facts = service.facts("me/ddpm-lora")
    assert (facts.family, facts.num_classes, facts.resolution) == ("diffusion", 10, 16)

    # Requests for the adapter and the base at once (batched or not) each keep their own images.
    results: dict[str, np.ndarray] = {}

    def ask(ref: str) -> None:
        results[ref] = service.generate(ref, 2, seed=1, label=3, steps=3).images

    threads = [threading.Thread(target=ask, args=(ref,)) for ref in ("me/tiny-ddpm", "me/ddpm-lora")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert np.array_equal(results["me/tiny-ddpm"], before) and np.array_equal(results["me/ddpm-lora"], adapted)


def test_dreambooth_lora_of_a_text_to_image_pipeline_loads_in_stock_diffusers_and_is_served(instance_images,
                                                                                             tmp_path, tmp_hub):
    from diffusers import DiffusionPipeline
    from peft import PeftModel

    hub.push(make_tiny_sd(tmp_path / "sd"), "me/tiny-sd")
    out = tmp_path / "subject-lora"
    proc = train("--base_model", "me/tiny-sd", "--dataset", str(instance_images), "--instance_prompt",
                 "a photo of sks square", "--train_batch_size", "2", "--max_train_steps", "4", "--merge",
                 "--output_dir", str(out), "--push_to_hub", "--hub_model_id", "me/sks-square")
    assert "4 images 64×64 for \"a photo of sks square\", 1 held out" in proc.stderr
    assert {"adapter_config.json", "adapter_model.safetensors", "pytorch_lora_weights.safetensors",
            "sample.png", "README.md"} <= {f.name for f in out.iterdir()}
    figures = {f.name: f.value for f in read_card(out).figures}
    assert set(figures) == {"denoising loss (held-out images, instance prompt)",
                            "base model: denoising loss (held-out images, instance prompt)"}

    x, t, e = torch.randn(1, 4, 32, 32), torch.tensor([500]), torch.randn(1, 77, 32)
    with torch.no_grad():
        pipe = DiffusionPipeline.from_pretrained(str(hub.resolve("me/tiny-sd")))
        plain = pipe.unet(x, t, e).sample
        pipe.load_lora_weights(str(hub.resolve("me/sks-square")))  # diffusers' own format and loader
        with_diffusers = pipe.unet(x, t, e).sample
        base = DiffusionPipeline.from_pretrained(str(hub.resolve("me/tiny-sd"))).unet
        with_peft = PeftModel.from_pretrained(base, str(out)).eval()(x, t, e).sample
        merged = DiffusionPipeline.from_pretrained(str(out / "merged")).unet(x, t, e).sample
    assert not torch.allclose(with_diffusers, plain)
    assert torch.allclose(with_diffusers, with_peft, atol=1e-6) and torch.allclose(with_peft, merged, atol=1e-5)

    service = ImageService(ModelRegistry())
    ask = dict(seed=1, prompt="a photo of sks square", steps=3)
    before = service.generate("me/tiny-sd", 1, **ask).images
    adapted = service.generate("me/sks-square", 1, **ask).images
    assert not np.array_equal(adapted, before)
    assert np.array_equal(service.generate("me/tiny-sd", 1, **ask).images, before)
    assert service.facts("me/sks-square").prompted

    # The CLI (through its engine process) makes the same picture.
    from PIL import Image

    png = tmp_path / "square.png"
    proc = run([sys.executable, "-m", "aigc_hub", "generate", "image", "--model", "me/sks-square", "--prompt",
                "a photo of sks square", "--num", "1", "--steps", "3", "--seed", "1", "--out", str(png)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), adapted[0])


def test_what_a_text_to_image_base_cannot_be_adapted_with_is_refused(instance_images, tmp_path, tmp_hub):
    from training.train_diffusion import main

    hub.push(make_tiny_sd(tmp_path / "sd"), "me/tiny-sd")
    common = ["--base_model", "me/tiny-sd", "--dataset", str(instance_images), "--output_dir", str(tmp_path / "o"),
              "--report_to", "none", "--max_train_steps", "1"]
    with pytest.raises(SystemExit, match="give --instance_prompt"):
        main(common)
    with pytest.raises(SystemExit, match="adapted with LoRA here"):
        main([*common, "--instance_prompt", "a photo of sks square", "--lora_rank", "0"])
    with pytest.raises(SystemExit, match="is a causal-lm model; this script adapts diffusion"):
        from tiny_hub_models import make_chat_llama

        hub.push(make_chat_llama(tmp_path / "lm"), "me/lm")
        main([*common[2:], "--base_model", "me/lm"])
