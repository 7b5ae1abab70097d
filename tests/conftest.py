"""Shared fixtures: a temporary local hub, tiny GAN folders, MNIST (or a generated stand-in), a launched app."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
MNIST = REPO.parent / "shared" / "data" / "images" / "mnist" / "mnist.npz"
ARTIFACTS = REPO / "test-artifacts"
EN_ZH = REPO.parent / "shared" / "data" / "translation" / "en-zh" / "en-zh.jsonl"
TINY_MT = ["--source_lang", "en", "--target_lang", "zh", "--bidirectional", "--preset", "tiny", "--vocab_size", "600",
           "--train_batch_size", "16", "--report_to", "none", "--eval_steps", "10", "--eval_sentences", "10",
           "--lr_warmup_steps", "2", "--num_beams", "2", "--validation_split_percentage", "5"]


# Tests using any of these fixtures (directly or through another fixture) start subprocesses, servers or a browser:
# the slow tier (pytest.ini).
SLOW_FIXTURES = {"launched", "tiny_mt", "tiny_lm", "space_process", "browser"}


def pytest_configure(config):
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))  # `-n N` (pytest-xdist): N processes
    if workers > 1:  # share the cores instead of each worker's torch taking all of them
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def use_hub(monkeypatch: pytest.MonkeyPatch, root: Path) -> Path:
    """Point this process's local hub at `root`, offline (HF ids from the cache only)."""
    monkeypatch.setenv("AIGC_HUB_HOME", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return root


@pytest.fixture
def tmp_hub(tmp_path, monkeypatch) -> Path:
    """An empty local hub for this test only."""
    root = use_hub(monkeypatch, tmp_path / "hub")
    return root


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Callable[..., Path]:
    """A Hugging Face cache of this test's own (HF_HUB_CACHE), for HF ids served offline. `put(repo_id, folder)`
    lays a model folder out as huggingface_hub leaves a download: blobs named by content hash, the snapshot's files
    as relative links to them, and refs/main naming the commit. Returns the snapshot folder."""
    import hashlib

    import huggingface_hub.constants

    root = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(root))  # read at import; this process

    def put(repo_id: str, folder: Path, commit: str = "a" * 40) -> Path:
        repo = root / f"models--{repo_id.replace('/', '--')}"
        snapshot = repo / "snapshots" / commit
        for src in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
            data = src.read_bytes()
            blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(data)
            link = snapshot / src.relative_to(folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        return snapshot

    return put


def make_gan(folder: Path, num_classes: int = 10, resolution: int = 32, channels: int = 1, seed: int = 0,
             class_names: list[str] | None = None) -> Path:
    """A small randomly initialised generator saved as a standard model folder with a card."""
    import torch

    from aigc_hub.cards import Figure, render_card
    from aigc_hub.models.dcgan import Generator

    torch.manual_seed(seed)
    gen = Generator(resolution=resolution, channels=channels, num_classes=num_classes, base_channels=8, latent_dim=16,
                    class_names=class_names)
    gen.eval().save_pretrained(str(folder))
    render_card(title="tiny gan", family="dcgan",
                tags=[], datasets=["synthetic"], license="mit",
                figures=[Figure("FD (classifier features)", 12.5, "frechet-distance-classifier", "synthetic")],
                body="A test model.").save(folder / "README.md")
    return folder


@pytest.fixture
def tiny_gan(tmp_path) -> Path:
    return make_gan(tmp_path / "tiny-gan")


def make_diffusion(folder: Path, num_classes: int | None = 10, resolution: int = 16, channels: int = 1,
                   prediction_type: str = "epsilon", seed: int = 0, width: tuple[int, int] = (8, 16)) -> Path:
    """A tiny randomly initialised diffusers pipeline folder, laid out exactly as `DDPMPipeline.save_pretrained`
    writes it (model_index.json, unet/, scheduler/), as diffusers' own tests build theirs."""
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(seed)
    unet = UNet2DModel(sample_size=resolution, in_channels=channels, out_channels=channels, layers_per_block=1,
                       block_out_channels=width, norm_num_groups=4, attention_head_dim=4,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), num_class_embeds=num_classes)
    scheduler = DDPMScheduler(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2",
                              prediction_type=prediction_type)
    DDPMPipeline(unet=unet.eval(), scheduler=scheduler).save_pretrained(str(folder))
    return folder


@pytest.fixture
def tiny_ddpm(tmp_path) -> Path:
    return make_diffusion(tmp_path / "tiny-ddpm")


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory) -> Path:
    """MNIST from ../shared/data when present (a 2,048-image slice), else generated digit-like blobs."""
    out = tmp_path_factory.mktemp("data") / "digits.npz"
    if MNIST.exists():
        with np.load(MNIST) as npz:
            np.savez(out, x_train=npz["x_train"][:2048], y_train=npz["y_train"][:2048],
                     x_test=npz["x_test"][:512], y_test=npz["y_test"][:512])
    else:
        rng = np.random.default_rng(0)
        x = (rng.random((2560, 28, 28)) * 255).astype(np.uint8)
        y = rng.integers(0, 10, 2560).astype(np.uint8)
        np.savez(out, x_train=x[:2048], y_train=y[:2048], x_test=x[2048:], y_test=y[2048:])
    return out


def is_user_error(message: str) -> bool:
    """A refusal meant for the user: a message, no traceback, and not our internal-error report (that is a bug)."""
    return bool(message.strip()) and "Traceback" not in message and "internal error" not in message.lower()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float = 300.0, every: float = 0.05) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds (a cap for a broken run, not a figure)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"the state never came in {timeout:.0f} s"
        time.sleep(every)


def wait_until_serving(proc: subprocess.Popen, url: str, log: Path, timeout: float = 180) -> str:
    """Poll `url` until the app in `proc` answers; fail with its log if it exits or never comes up."""
    import time

    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            time.sleep(0.5)
    raise TimeoutError(f"the app did not come up in {timeout:.0f} s")


def assert_same_weights(a: Path, b: Path, files: tuple[str, ...] = ("model.safetensors",)) -> None:
    """Two runs' weight files hold bit-identical tensors."""
    import torch
    from safetensors.torch import load_file

    for name in files:
        x, y = load_file(str(a / name)), load_file(str(b / name))
        assert x.keys() == y.keys(), name
        for k in x:
            assert torch.equal(x[k], y[k]), f"{name}: {k} differs"


def resume_from_kept_checkpoint(train: Callable[..., subprocess.CompletedProcess], root: Path, args: list[str],
                                files: tuple[str, ...] = ("model.safetensors",)) -> subprocess.CompletedProcess:
    """Run `train(out, *args)` to the end, start a second run from the one checkpoint it kept, and check that the
    resumed run ends with the uninterrupted run's weights. Returns the resumed run's process."""
    train(root / "full", *args)
    [checkpoint] = list((root / "full" / "checkpoints").glob("checkpoint-*"))
    shutil.copytree(checkpoint, root / "resumed" / "checkpoints" / checkpoint.name)
    proc = train(root / "resumed", *args, "--resume_from_checkpoint", "latest")
    assert f"at step {checkpoint.name.split('-')[1]}" in proc.stderr, proc.stderr[-2000:]
    assert_same_weights(root / "full", root / "resumed", files)
    return proc


def run(cmd: list[str], env: dict | None = None, timeout: int = 600, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run a command from the repository root; fail with its output when it fails."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    return proc


def start_app(**settings):
    """An app for a config on a free loopback port, launched as `serve` launches it: (url, demo)."""
    from aigc_hub.config import AppConfig
    from aigc_hub.ui import build_demo, launch

    config = AppConfig.of(port=free_port(), **settings)
    demo = build_demo(config)
    launch(demo, config, quiet=True)
    return f"http://127.0.0.1:{config.port}/", demo


def close_app(demo) -> None:
    demo.close()
    demo.aigc_context.close()  # its engine processes, if any


@pytest.fixture
def launched(tmp_hub):
    """Start an app on a free loopback port for a config; yields (url, demo); closes it afterwards."""
    demos = []

    def start(**settings):
        url, demo = start_app(**settings)
        demos.append(demo)
        return url, demo

    yield start
    for demo in demos:
        close_app(demo)


def make_char_gpt2(out, context: int):
    """An untrained 2-layer character-level GPT-2 with a `context`-token window that never ends early."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    from aigc_hub.cards import render_card
    from training.text_tokenizers import train_char_tokenizer

    tok = train_char_tokenizer(["abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ:.,!?\n"])
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_head=2, n_embd=64, n_positions=context, vocab_size=len(tok),
                        bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    model = AutoModelForCausalLM.from_config(config)
    model.config.architectures = ["GPT2LMHeadModel"]
    model.generation_config.suppress_tokens = [tok.eos_token_id]  # random weights: never end early by chance
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    render_card(title=out.name, family="causal-lm", tags=[], datasets=[],
                license="mit", figures=[], body="untrained").save(out / "README.md")
    return out


@pytest.fixture(scope="session")
def long_lm(tmp_path_factory):
    """A 2,048-token context: slow enough to stop half-way."""
    return make_char_gpt2(tmp_path_factory.mktemp("lm") / "long-lm", 2048)


@pytest.fixture(scope="session")
def short_lm(tmp_path_factory):
    """A 32-token context: generation slides its window after a few tokens."""
    return make_char_gpt2(tmp_path_factory.mktemp("lm") / "short-lm", 32)


@pytest.fixture(scope="session")
def pairs_file(tmp_path_factory):
    """1,500 real Tatoeba pairs, or generated number sentences where ../shared/data is absent."""
    import json

    out = tmp_path_factory.mktemp("mt") / "pairs.jsonl"
    if EN_ZH.exists():
        rows = [json.loads(line) for line in EN_ZH.read_text(encoding="utf-8").splitlines()[:1500]]
    else:
        digits = "零一二三四五六七八九"
        rows = [{"en": f"I have {n} books.", "zh": f"我有{''.join(digits[int(d)] for d in str(n))}本书。"}
                for n in range(1500)]
    out.write_text("".join(json.dumps({"en": r["en"], "zh": r["zh"]}, ensure_ascii=False) + "\n" for r in rows),
                   encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def tiny_mt(pairs_file, tmp_path_factory):
    """A bidirectional en/zh translation model after 30 tiny steps (it translates badly, but it translates)."""
    out = tmp_path_factory.mktemp("mt") / "tiny-mt"
    proc = run([sys.executable, str(REPO / "training" / "train_translation.py"), "--dataset", str(pairs_file),
                "--output_dir", str(out), *TINY_MT, "--max_train_steps", "30", "--length_penalty", "0.5"])
    assert proc.returncode == 0, proc.stderr[-5000:]
    return out
