"""Crashes on purpose: a training run SIGKILLed after a checkpoint resumes to the same weights; a push killed
half-way leaves the previous version of the hub entry intact and loadable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest


from aigc_hub import hub
from aigc_hub.services import ImageService, ModelRegistry
from conftest import REPO, assert_same_weights

TINY = ["--base_channels", "8", "--latent_dim", "16", "--embed_dim", "8", "--train_batch_size", "32",
        "--max_train_samples", "256", "--report_to", "none", "--sample_steps", "0", "--logging_steps", "5",
        "--max_train_steps", "60", "--checkpointing_steps", "10", "--checkpoints_total_limit", "2",
        "--resume_from_checkpoint", "latest", "--lr_scheduler", "cosine", "--lr_warmup_steps", "5"]


def start(digits_npz, out, log):
    cmd = [sys.executable, str(REPO / "training" / "train_gan.py"), "--dataset", str(digits_npz), "--image_column",
           "x_train", "--label_column", "y_train", "--output_dir", str(out), *TINY]
    return subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ,
                                                                                       "PYTHONUNBUFFERED": "1"})


@pytest.mark.slow  # a subprocess
def test_sigkill_after_a_checkpoint_then_resume_gives_the_uninterrupted_weights(digits_npz, tmp_path):
    full, killed = tmp_path / "full", tmp_path / "killed"
    with open(tmp_path / "full.log", "w") as log:
        assert start(digits_npz, full, log).wait(timeout=600) == 0, (tmp_path / "full.log").read_text()
    with open(tmp_path / "killed.log", "w") as log:
        proc = start(digits_npz, killed, log)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if list((killed / "checkpoints").glob("checkpoint-*/trainer_state.json")):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed: " + (tmp_path / "killed.log").read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "model.safetensors").exists(), "killed before the end"
    with open(tmp_path / "resume.log", "w") as log:
        assert start(digits_npz, killed, log).wait(timeout=600) == 0, (tmp_path / "resume.log").read_text()
    resumed_log = (tmp_path / "resume.log").read_text()
    assert "resumed from" in resumed_log
    state = [p for p in (killed / "checkpoints").glob("checkpoint-*")]
    assert max(int(p.name.split("-")[1]) for p in state) == 50, "it ran to the planned 60 steps (last save at 50)"
    assert_same_weights(full, killed, ("model.safetensors", "discriminator/model.safetensors"))


@pytest.mark.slow  # a subprocess
def test_a_push_killed_half_way_leaves_the_previous_version(tmp_hub, tiny_gan, tmp_path):
    hub.push(tiny_gan, "me/model")
    before = (tmp_hub / "me" / "model" / "model.safetensors").read_bytes()
    v2 = tmp_path / "v2"
    v2.mkdir()
    for f in tiny_gan.iterdir():
        if f.is_file():
            (v2 / f.name).write_bytes(f.read_bytes())
    with open(v2 / "zz-big.safetensors", "wb") as f:  # a large file: the copy takes long enough to be killed in
        for _ in range(48):
            f.write(os.urandom(1 << 22))
    proc = subprocess.Popen([sys.executable, "-m", "aigc_hub", "push", str(v2), "--repo-id", "me/model"], cwd=REPO,
                            env={**os.environ, "AIGC_HUB_HOME": str(tmp_hub)})
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        partial = list((tmp_hub / "me").glob(".model.tmp-*/zz-big.safetensors"))
        if partial and partial[0].stat().st_size > 0:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the push finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    entry = tmp_hub / "me" / "model"
    assert (entry / "model.safetensors").read_bytes() == before and not (entry / "zz-big.safetensors").exists()
    assert [e.ref for e in hub.list_models() if e.source == "local"] == ["me/model"], "no half-written entry listed"
    result = ImageService(ModelRegistry()).generate("me/model", 2, seed=1)
    assert result.images.shape[0] == 2, "the previous version still loads and generates"
    hub.push(v2, "me/model")  # and the next push completes
    assert (entry / "zz-big.safetensors").stat().st_size == 48 << 22


def test_a_push_killed_between_its_two_renames_is_served_read_only_and_undone_at_start_up(tmp_hub, tiny_gan):
    hub.push(tiny_gan, "me/model")
    entry = tmp_hub / "me" / "model"
    aside = entry.parent / ".model.old-deadbeef"
    os.rename(entry, aside)  # the state between "set the old aside" and "move in"
    before = sorted(p.name for p in (tmp_hub / "me").iterdir())
    assert hub.resolve("me/model") == aside, "reading finds the previous version where the push left it"
    assert [e.ref for e in hub.list_models() if e.source == "local"] == ["me/model"]
    assert sorted(p.name for p in (tmp_hub / "me").iterdir()) == before, "reading the hub never writes to it"
    assert hub.recover() == ["me/model"]  # what the app does at start-up (and a push for its own entry)
    assert hub.resolve("me/model") == entry and (entry / "config.json").is_file() and not aside.exists()
