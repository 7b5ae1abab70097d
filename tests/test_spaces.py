"""Spaces: build a Space folder, run its app.py from that folder in its own process, call it; deploy dry-run/offline."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
import yaml
from gradio_client import Client

from aigc_hub import hub
from conftest import free_port, run, wait_until_serving

pytestmark = pytest.mark.slow  # every test here runs the CLI or an app in a subprocess

STARTERS = {"image": "aigc-hub/dcgan-mnist", "text": "aigc-hub/gpt-tinyshakespeare",
            "translation": "aigc-hub/translator-en-zh"}


def build(out, tabs, models):
    args = [sys.executable, "-m", "aigc_hub", "space", "build", "--tabs", ",".join(tabs), "--out", str(out)]
    for tab, ref in models.items():
        args += ["--model", f"{tab}={ref}"]
    proc = run(args)
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture
def space_process(tmp_path):
    """Start a built Space's app.py from its folder, with a working directory outside the repository."""
    procs = []

    def start(folder):
        port = free_port()
        elsewhere = tmp_path / "cwd"
        elsewhere.mkdir(exist_ok=True)
        log = open(tmp_path / f"space-{port}.log", "w")
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AIGC_HUB_HOME")}
        env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1",
                   PYTHONUNBUFFERED="1")
        proc = subprocess.Popen([sys.executable, str(folder / "app.py")], cwd=elsewhere, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        procs.append(proc)
        url = wait_until_serving(proc, f"http://127.0.0.1:{port}/", tmp_path / f"space-{port}.log")
        return Client(url, verbose=False)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def test_image_space_from_a_local_hub_model_runs_on_its_own(tmp_hub, tiny_gan, tmp_path, space_process):
    hub.push(tiny_gan, "me/tiny-gan")
    out = tmp_path / "space"
    report = build(out, ["image"], {"image": "me/tiny-gan"}).stdout
    assert "me/tiny-gan" in report and "MiB copied in" in report
    assert (out / "models" / "me" / "tiny-gan" / "model.safetensors").is_file()
    assert not list(out.rglob("*.bin")) and not list(out.rglob("__pycache__"))
    hub.push(tiny_gan, "me/other")  # the Space must not read the builder's hub
    client = space_process(out)
    gallery, seed, _ = client.predict("me/tiny-gan", 3, 4, "any", api_name="/generate_image")
    assert seed == 3 and len(gallery) == 4
    listed = httpx.get(f"{client.src.rstrip('/')}/v1/models", timeout=30).json()["data"]  # the Space speaks /v1 too
    assert [m["id"] for m in listed] == ["me/tiny-gan"]
    with pytest.raises(Exception):
        client.predict("me/other", 3, 1, "any", api_name="/generate_image")


def test_diffusion_space_carries_its_pipeline_and_runs_on_its_own(tmp_hub, tiny_ddpm, tmp_path, space_process):
    """A diffusers pipeline folder travels with its components (unet/, scheduler/) and diffusers is pinned."""
    hub.push(tiny_ddpm, "me/tiny-ddpm")
    out = tmp_path / "space"
    build(out, ["image"], {"image": "me/tiny-ddpm"})
    model = out / "models" / "me" / "tiny-ddpm"
    for name in ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                 "scheduler/scheduler_config.json"):
        assert (model / name).is_file(), name
    assert any(line.startswith("diffusers==") for line in (out / "requirements.txt").read_text().splitlines())
    client = space_process(out)
    gallery, seed, _ = client.predict("me/tiny-ddpm", 3, 2, "any", 2, "ddim", api_name="/generate_image")
    assert seed == 3 and len(gallery) == 2


def test_front_matter_and_requirements(tmp_hub, tiny_gan, tmp_path):
    import gradio

    hub.push(tiny_gan, "me/tiny-gan")
    out = tmp_path / "space"
    build(out, ["image", "models"], {"image": "me/tiny-gan"})
    text = (out / "README.md").read_text()
    assert text.startswith("---\n")
    meta = yaml.safe_load(text.split("---\n")[1])
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__ and meta["app_file"] == "app.py"
    assert meta["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert not (out / "aigc_hub" / "ui" / "screenshots").exists()  # the README's pictures: not the app's
    for key in ("title", "emoji", "colorFrom", "colorTo", "license", "short_description", "suggested_hardware"):
        assert meta.get(key), key
    assert len(meta["short_description"]) <= 60
    requirements = [line for line in (out / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    assert requirements and all("==" in line for line in requirements), requirements
    assert not any(line.lower().startswith("gradio") for line in requirements)
    assert yaml.safe_load((out / "aigc-hub.yaml").read_text())["tabs"] == ["image", "models"]


def test_hf_hosted_models_are_preloaded_not_copied(tmp_hub, tiny_gan, tmp_path):
    hub.push(tiny_gan, "me/tiny-gan")
    out = tmp_path / "space"
    build(out, ["image", "translation"], {"image": "me/tiny-gan", "translation": "someone/mt-model"})
    meta = yaml.safe_load((out / "README.md").read_text().split("---\n")[1])
    assert meta["preload_from_hub"] == ["someone/mt-model"] and meta["models"] == ["someone/mt-model"]
    assert not (out / "models" / "someone").exists()


@pytest.mark.parametrize("args, message", [
    (["--tabs", "image", "--model", "image=../../etc"], "not a model folder"),
    (["--tabs", "image", "--model", "image=a/b/c"], "invalid model id"),
    (["--tabs", "painting", "--model", "image=me/x"], "unknown"),
    (["--tabs", "image", "--model", "video=me/x"], "TAB=REF"),
])
def test_bad_builds_fail_clearly(tmp_hub, tmp_path, args, message):
    proc = run([sys.executable, "-m", "aigc_hub", "space", "build", "--out", str(tmp_path / "s"), *args])
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_deploy_dry_run_lists_everything_and_offline_deploys_fail_fast(tmp_hub, tiny_gan, tmp_path):
    hub.push(tiny_gan, "me/tiny-gan")
    out = tmp_path / "space"
    build(out, ["image"], {"image": "me/tiny-gan"})
    deploy = [sys.executable, "-m", "aigc_hub", "space", "deploy", str(out), "--space-id", "me/demo"]
    dry = run([*deploy, "--dry-run", "--private"], env={"HF_TOKEN": ""})
    assert dry.returncode == 0, dry.stderr
    assert "would create Space me/demo (sdk gradio, private" in dry.stdout
    files = [f.relative_to(out).as_posix() for f in out.rglob("*") if f.is_file()]
    assert all(f in dry.stdout for f in files) and "app.py" in files
    no_token = run(deploy, env={"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf")})
    assert no_token.returncode == 2 and "token" in no_token.stderr
    start = time.time()
    offline_mode = run(deploy, env={"HF_TOKEN": "hf_fake", "HF_HUB_OFFLINE": "1"})
    assert offline_mode.returncode == 2 and "HF_HUB_OFFLINE" in offline_mode.stderr
    # A host that never resolves stands for "no network" (here and in CI alike).
    offline = run(deploy, env={"HF_TOKEN": "hf_fake", "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "https://hub.invalid"})
    assert offline.returncode == 2 and "cannot reach" in offline.stderr and "Traceback" not in offline.stderr
    assert time.time() - start < 60, "bounded by the connect timeout"
    bad = run([*deploy[:-1], "../../etc", "--dry-run"])
    assert bad.returncode == 2 and "invalid model id" in bad.stderr


def test_three_tab_space_with_the_apps_default_models(tmp_hub, tmp_path, space_process, monkeypatch):
    """No --model: each tab serves the app's default model (the starters), and the report says which."""
    if not all((hub.STARTERS_ROOT / ref / "config.json").is_file() for ref in STARTERS.values()):
        pytest.fail("a starter checkpoint is missing from starters/")
    monkeypatch.delenv("AIGC_HUB_CONFIG", raising=False)
    out = tmp_path / "space"
    report = build(out, ["image", "text", "translation"], {}).stdout
    for tab, ref in STARTERS.items():
        assert f"{tab} tab: no --model given, so the app's default {ref}" in report, report
    client = space_process(out)
    gallery, _, _ = client.predict(STARTERS["image"], 1, 2, "7", api_name="/generate_image")
    assert len(gallery) == 2
    text, seed, _ = client.predict(STARTERS["text"], "ROMEO:", 20, 0.8, 50, 0.95, 1.0, "", 4,
                                   api_name="/generate_text")
    assert seed == 4 and len(text) > 0
    translated, _, _ = client.predict(STARTERS["translation"], "Hello.\n\nThank you.", "en", "zh", 2, 1,
                                      api_name="/translate")
    lines = translated.split("\n")
    assert len(lines) == 3 and lines[0] and not lines[1] and lines[2]


def test_a_space_of_an_adapter_carries_its_base_and_serves_it(tmp_hub, tmp_path, space_process):
    """adapt → hub → Space: the LoRA adapter travels with its base (and its chat template), and the Space serves it."""
    from tiny_hub_models import make_chat_llama, make_lora

    base = make_chat_llama(tmp_path / "base")
    hub.push(base, "me/chat-base")
    hub.push(make_lora(base, tmp_path / "lora", "me/chat-base"), "me/chat-lora")
    out = tmp_path / "space"
    build(out, ["text"], {"text": "me/chat-lora"})
    assert (out / "models" / "me" / "chat-lora" / "adapter_model.safetensors").is_file()
    assert (out / "models" / "me" / "chat-base" / "chat_template.jinja").is_file()
    assert any(line.startswith("peft==") for line in (out / "requirements.txt").read_text().splitlines())
    client = space_process(out)
    sampling = ["", 8, 0.0, 50, 1.0, 1.0, "", 1]  # system, max new, temp, top-k, top-p, penalty, stops, seed
    history, _, seed, _ = client.predict("me/chat-lora", "Hi", [], *sampling, api_name="/chat")
    assert seed == 1 and history[-1]["role"] == "assistant"
