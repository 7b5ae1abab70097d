"""train_diffusion.py end to end: a tiny run → standard diffusers folder (stock classes load it, the card's own code
runs) → push → sample through the CLI and the app's API; exact resume; unconditional and v-prediction runs."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest

from conftest import REPO, resume_from_kept_checkpoint, run

pytestmark = pytest.mark.slow  # every test here trains in a subprocess

TINY = ["--block_out_channels", "8", "16", "--layers_per_block", "1", "--norm_num_groups", "4",
        "--train_batch_size", "16", "--max_train_samples", "128", "--report_to", "none", "--sample_steps", "0",
        "--logging_steps", "2", "--num_train_timesteps", "100", "--num_sample_images", "10",
        "--sample_inference_steps", "2", "--eval_steps_list", "2", "3", "--lr_warmup_steps", "2"]


def train(data, out, *extra, conditional=True, env=None):
    labels = ["--label_column", "y_train"] if conditional else []
    cmd = [sys.executable, str(REPO / "training" / "train_diffusion.py"), "--dataset", str(data),
           "--image_column", "x_train", *labels, "--output_dir", str(out), *TINY, *extra]
    proc = run(cmd, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def test_tiny_run_is_a_diffusers_folder_that_pushes_samples_and_serves(digits_npz, tmp_path, tmp_hub, launched):
    out = tmp_path / "run"
    train(digits_npz, out, "--max_train_steps", "6", "--checkpointing_steps", "3", "--sample_steps", "3",
          "--report_to", "tensorboard", "--eval_classifier", "mnist", "--eval_image_column", "x_test",
          "--eval_samples", "40", "--push_to_hub", "--hub_model_id", "me/tiny-ddpm", "--guidance_scale", "2",
          "--augment_shift", "0.125", env={"AIGC_HUB_HOME": str(tmp_hub)})
    for name in ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                 "scheduler/scheduler_config.json", "README.md", "sample.png", "samples/step-0000003.png"):
        assert (out / name).exists(), name
    assert list((out / "logs").rglob("events.out.tfevents*")), "tensorboard received the run"
    card = (out / "README.md").read_text()
    for figure in ("FD (classifier features), 2 steps", "FD (classifier features), 3 steps", "FD real-vs-real floor",
                   "conditional accuracy, 3 steps", "| 3 | "):
        assert figure in card, figure
    assert "library_name: diffusers" in card and "type: class-conditional-image-generation" in card
    assert "pipeline_tag:" not in card  # the Hub has no class-conditional task; "unconditional" would be false
    assert "50% of the training images moved by up to 12.5% of their size" in card

    # --eval_only adds a step count to the card and keeps the ones it does not recompute.
    fd3 = re.search(r"FD \(classifier features\), 3 steps \| ([^ |]+)", card)[1]
    train(digits_npz, out, "--max_train_steps", "6", "--eval_classifier", "mnist", "--eval_image_column", "x_test",
          "--eval_samples", "40", "--eval_only", "--eval_steps_list", "4")
    card = (out / "README.md").read_text()
    assert re.search(r"FD \(classifier features\), 3 steps \| ([^ |]+)", card)[1] == fd3
    for figure in ("FD (classifier features), 2 steps", "FD (classifier features), 4 steps",
                   "conditional accuracy, 4 steps", "FD real-vs-real floor", "| 2 | ", "| 3 | ", "| 4 | "):
        assert figure in card, figure

    # Stock diffusers, no project code: the card's own snippet, pointed at the folder.
    snippet = re.search(r"```python\n(import torch\nfrom diffusers import .*?)```", card, re.S)[1]
    scope: dict = {}
    assert "label 10 is the empty label" in card and "uncond + 2 * (cond - uncond)" in snippet
    exec(snippet.replace('"me/tiny-ddpm"', repr(str(out))), scope)
    assert tuple(scope["images"].shape) == (10, 1, 32, 32)
    unet_config = json.loads((out / "unet" / "config.json").read_text())
    assert (unet_config["num_class_embeds"], unet_config["_null_class_label"], unet_config["_guidance_scale"]) == \
        (11, 10, 2.0)

    pushed = tmp_hub / "me" / "tiny-ddpm"
    assert (pushed / "unet" / "diffusion_pytorch_model.safetensors").exists() and not (pushed / "checkpoints").exists()

    # The CLI, by hub id: a grid PNG carrying its parameters, and arrays.
    env = {"AIGC_HUB_HOME": str(tmp_hub)}
    proc = run([sys.executable, "-m", "aigc_hub", "generate", "image", "--model", "me/tiny-ddpm", "--num", "12",
                "--steps", "3", "--sampler", "dpm-solver", "--seed", "0", "--out", str(tmp_path / "grid.png")], env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from aigc_hub.imaging import read_parameters

    text = read_parameters(str(tmp_path / "grid.png"))
    assert "Steps: 3, Sampler: DPM-Solver++ (2M), Seed: 0" in text and "CFG scale: 2" in text
    proc = run([sys.executable, "-m", "aigc_hub", "generate", "image", "--model", "me/tiny-ddpm", "--num", "4",
                "--steps", "2", "--sampler", "ddim", "--seed", "7", "--out", str(tmp_path / "s.npz")], env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(tmp_path / "s.npz") as npz:
        assert npz["images"].shape == (4, 32, 32, 1) and list(npz["seeds"]) == [7, 8, 9, 10]
    proc = run([sys.executable, "-m", "aigc_hub", "generate", "image", "--model", "me/tiny-ddpm", "--num", "1",
                "--steps", "0", "--out", str(tmp_path / "x.png")], env=env)
    assert proc.returncode == 2 and "steps must be between 1 and 1000, got 0" in proc.stderr

    # The app's API: the pushed model is listed, and generates with the asked sampler and steps.
    from gradio_client import Client

    url, _ = launched(image_model="me/tiny-ddpm", tabs=["image"])
    client = Client(url, verbose=False)
    gallery, seed, files = client.predict("me/tiny-ddpm", 3, 4, "5", 2, "euler", api_name="/generate_image")
    assert seed == 3 and len(gallery) == 4
    text = read_parameters(gallery[0]["image"])
    assert "Steps: 2, Sampler: Euler, Seed: 3" in text and "Label: 5" in text


@pytest.mark.parametrize("accumulation, steps, every", [(1, "10", "4"), (2, "6", "4")])
def test_resume_is_exact(digits_npz, tmp_path, accumulation, steps, every):
    """A run resumed from its step-k checkpoint ends with exactly the weights (EMA UNet) of the uninterrupted run."""
    args = ["--max_train_steps", steps, "--checkpointing_steps", every, "--gradient_accumulation_steps",
            str(accumulation), "--checkpoints_total_limit", "1", "--eval_steps_list", "2"]
    proc = resume_from_kept_checkpoint(lambda out, *a: train(digits_npz, out, *a), tmp_path, args,
                                       files=("unet/diffusion_pytorch_model.safetensors",))
    assert "resumed from" in proc.stderr


def test_unconditional_v_prediction_loads_with_the_stock_pipeline(digits_npz, tmp_path):
    out = tmp_path / "uncond"
    train(digits_npz, out, "--max_train_steps", "3", "--prediction_type", "v_prediction", conditional=False)
    from diffusers import DDPMPipeline, DPMSolverMultistepScheduler

    pipe = DDPMPipeline.from_pretrained(str(out))
    assert pipe.scheduler.config.prediction_type == "v_prediction" and pipe.unet.config.num_class_embeds is None
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
    images = pipe(batch_size=2, num_inference_steps=3, output_type="np").images
    assert images.shape == (2, 32, 32, 1)
