"""train_gan.py end to end: tiny runs, exact resume (with and without accumulation), 2-process data parallel."""

from __future__ import annotations

import shlex
import sys

import pytest

from conftest import REPO, free_port, resume_from_kept_checkpoint, run

pytestmark = pytest.mark.slow  # every test here trains in a subprocess

TINY = ["--base_channels", "8", "--latent_dim", "16", "--embed_dim", "8", "--train_batch_size", "32",
        "--max_train_samples", "256", "--report_to", "none", "--sample_steps", "0", "--logging_steps", "2"]


def train(digits_npz, out, *extra, launcher=(sys.executable,), env=None):
    cmd = [*launcher, str(REPO / "training" / "train_gan.py"), "--dataset", str(digits_npz),
           "--image_column", "x_train", "--label_column", "y_train", "--output_dir", str(out), *TINY, *extra]
    proc = run(cmd, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def test_tiny_run_writes_a_standard_model_and_pushes(digits_npz, tmp_path, tmp_hub):
    out = tmp_path / "run"
    train(digits_npz, out, "--max_train_steps", "6", "--checkpointing_steps", "3", "--sample_steps", "3",
          "--report_to", "tensorboard", "--push_to_hub", "--hub_model_id", "me/tiny-gan",
          env={"AIGC_HUB_HOME": str(tmp_hub)})
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    assert (out / "discriminator" / "model.safetensors").exists()
    assert (out / "samples" / "step-0000003.png").exists() and (out / "sample.png").exists()
    assert list((out / "logs").rglob("events.out.tfevents*")), "tensorboard received the run"
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["checkpoint-3"]
    pushed = tmp_hub / "me" / "tiny-gan"
    assert (pushed / "model.safetensors").exists() and not (pushed / "checkpoints").exists()
    from aigc_hub.models.dcgan import Generator

    gen = Generator.from_pretrained(str(pushed), strict=True)
    assert gen.num_classes == 10 and gen.resolution == 32


@pytest.mark.parametrize("accumulation, steps, every", [
    (1, "12", "5"),  # resumes mid-epoch (8 batches an epoch), then crosses into the next epoch
    (2, "8", "3"),  # with accumulation: 4 optimizer steps an epoch
    (1, "12", "8"),  # the checkpoint closes an epoch exactly
])
def test_resume_is_exact(digits_npz, tmp_path, accumulation, steps, every):
    """A run resumed from its step-k checkpoint ends with exactly the weights of the uninterrupted run."""
    args = ["--max_train_steps", steps, "--checkpointing_steps", every, "--gradient_accumulation_steps",
            str(accumulation), "--checkpoints_total_limit", "1", "--lr_scheduler", "cosine", "--lr_warmup_steps", "2"]
    proc = resume_from_kept_checkpoint(lambda out, *a: train(digits_npz, out, *a), tmp_path, args,
                                       files=("model.safetensors", "discriminator/model.safetensors"))
    assert "resumed from" in proc.stderr


def test_resume_latest_without_checkpoint_starts_fresh(digits_npz, tmp_path):
    proc = train(digits_npz, tmp_path / "fresh", "--max_train_steps", "2", "--resume_from_checkpoint", "latest")
    assert "starting from scratch" in proc.stderr


def readme_multi_cpu_command() -> tuple[dict[str, str], list[str]]:
    """The README's command for several CPU processes, as written: (environment, argv)."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if " torchrun " in f" {line}")
    command = lines[start]
    while command.endswith("\\"):
        start += 1
        command = command[:-1] + lines[start]
    words = shlex.split(command)
    env = {}
    while "=" in words[0]:  # leading NAME=value assignments
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    return env, words


def test_two_process_data_parallel_with_the_readme_command(digits_npz, tmp_path, tmp_hub):
    """The README's torchrun command: accelerate runs MULTI_CPU over gloo, replicas stay identical, only rank 0
    writes and pushes. Its data and output folder are swapped for a small slice and a temporary folder."""
    env, argv = readme_multi_cpu_command()
    assert argv[:3] == ["torchrun", "--nproc_per_node", "2"] and env == {"OMP_NUM_THREADS": "1"}
    out = tmp_path / "ddp"
    argv[argv.index("--dataset") + 1] = str(digits_npz)
    argv[argv.index("--output_dir") + 1] = str(out)
    argv[1:1] = ["--master_port", str(free_port())]  # the default port may be taken on a busy machine
    argv += [*TINY, "--max_train_steps", "4", "--checkpointing_steps", "2", "--report_to", "tensorboard",
             "--push_to_hub", "--hub_model_id", "me/ddp-gan"]
    proc = run(argv, env={**env, "AIGC_HUB_HOME": str(tmp_hub)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    log = proc.stderr
    assert "MULTI_CPU, 2 process(es)" in log
    assert "replicas in sync across 2 process(es)" in log
    assert log.count("pushed to") == 1, "only the main process pushes"
    writers = {f.name.split(".")[-2] for f in (out / "logs").rglob("events.out.tfevents*")}  # ...{host}.{pid}.{n}
    assert len(writers) == 1, "only the main process logs"
    assert (tmp_hub / "me" / "ddp-gan" / "model.safetensors").exists()
    assert (out / "checkpoints" / "checkpoint-2" / "random_states_1.pkl").exists(), "each rank's RNG is saved"


def test_rgb_image_folder_at_64px(tmp_path):
    """Not only MNIST: an unconditional 3-channel 64 px model from a plain image folder."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(16):
        Image.fromarray((rng.random((50, 50, 3)) * 255).astype(np.uint8)).save(tmp_path / "imgs" / f"{i}.png")
    out = tmp_path / "rgb"
    proc = run([sys.executable, str(REPO / "training" / "train_gan.py"), "--dataset", str(tmp_path / "imgs"),
                "--resolution", "64", "--output_dir", str(out), "--max_train_steps", "2", "--base_channels", "4",
                "--train_batch_size", "8", "--report_to", "none"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    from aigc_hub.models.dcgan import Generator

    gen = Generator.from_pretrained(str(out), strict=True)
    assert (gen.resolution, gen.channels, gen.num_classes) == (64, 3, 0)


def test_colour_emoji_like_data_with_string_labels_and_a_grouped_holdout(tmp_path):
    """The Twemoji recipe's path on a small stand-in: string categories become named classes, a seeded grouped
    hold-out is evaluated by a classifier trained on the training side only, and the card states the figures."""
    import json

    import numpy as np

    rng = np.random.default_rng(0)
    colours = np.array([[230, 40, 40], [40, 200, 60], [50, 80, 230]], dtype=np.uint8)
    groups = np.arange(120) // 2  # 60 "emoji", each with a variant
    labels = groups % 3
    images = np.zeros((120, 32, 32, 4), dtype=np.uint8)
    images[..., :3] = colours[labels][:, None, None] + rng.integers(0, 20, (120, 32, 32, 3), dtype=np.uint8)
    images[:, 6:26, 6:26, 3] = 255  # an opaque square on a transparent background
    data = tmp_path / "emoji.npz"
    np.savez(data, images=images, names=np.array([f"E{g}" for g in groups]),
             categories=np.array(["red", "green", "blue"])[labels])
    split = ["--dataset", str(data), "--image_column", "images", "--label_column", "categories",
             "--holdout_fraction", "0.2", "--holdout_group_column", "names", "--resolution", "32"]
    clf = tmp_path / "classifier"
    proc = run([sys.executable, str(REPO / "training" / "train_eval_classifier.py"), *split, "--in_channels", "3",
                "--background", "1", "--epochs", "8", "--batch_size", "16", "--output_dir", str(clf)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((clf / "evaluation.json").read_text())
    assert report["held_out_images"] == 24 and report["train_images"] == 96 and report["accuracy"] >= 0.9
    out = tmp_path / "gan"
    proc = run([sys.executable, str(REPO / "training" / "train_gan.py"), *split, "--channels", "4",
                "--eval_classifier", str(clf), "--eval_samples", "48", "--diff_augment", "0.125",
                "--output_dir", str(out), "--max_train_steps", "3", "--base_channels", "8", "--latent_dim", "16",
                "--train_batch_size", "16", "--report_to", "none", "--card_dataset", "emoji-like"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((out / "config.json").read_text())
    assert config["class_names"] == ["blue", "green", "red"] and config["channels"] == 4
    card = (out / "README.md").read_text()
    assert "emoji-like held-out (24)" in card and "conditional accuracy" in card and "FD real-vs-real floor" in card
    assert "classifier accuracy on the real held-out images" in card
