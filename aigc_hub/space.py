"""Build a self-contained Hugging Face Space from the app, and deploy it.

`build` writes a folder that runs exactly the code tested locally: the template `spaces/app.py` (the same
`build_demo` composition as the local `app.py`), the `aigc_hub` package vendored beside it, an `aigc-hub.yaml`
naming the tabs and models, the models that live only on this machine copied in (safetensors, configs, tokenizers,
cards; never pickles), a pinned `requirements.txt` (no gradio: the front matter's `sdk_version` sets it), and a
README whose front matter Spaces reads. Models that live on the HF Hub are not copied: `preload_from_hub` has Spaces
download them at build time, so the cold start does not.

`deploy` creates the Space repo and uploads the folder; `dry_run=True` only lists what it would do, offline.
"""

from __future__ import annotations

import platform
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import yaml

from . import hub
from .cards import read_card
from .config import AppConfig
from .errors import SpaceError
from .families import TASKS, tab_keys

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "spaces" / "app.py"
PACKAGE = Path(__file__).resolve().parent
# Runtime needs of the served app, pinned to the versions in the project's requirements.txt (gradio excluded).
# openai: remote text models (a Space in front of a serving cluster); mcp: `mcp: true` in the Space's settings.
RUNTIME = ["torch", "transformers", "diffusers", "tokenizers", "sentencepiece", "safetensors", "huggingface_hub",
           "numpy", "pillow", "PyYAML", "psutil", "langcodes", "language_data", "openai", "mcp", "peft"]
# chat_template.jinja: where transformers 5 saves a tokenizer's chat template
MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.spm", "*.jinja", "README.md", "*.png"]
CONNECT_TIMEOUT_S = 5


@dataclass
class SpacePlan:
    folder: Path
    tabs: list[str]
    models: dict[str, str]  # task → reference inside the Space
    copied: dict[str, int] = field(default_factory=dict)  # reference → bytes copied in
    preloaded: list[str] = field(default_factory=list)  # HF ids Spaces downloads at build time
    defaulted: dict[str, str] = field(default_factory=dict)  # task → the app's default model, used without --model

    def report(self) -> str:
        lines = [f"Space folder {self.folder} (tabs: {', '.join(self.tabs)})"]
        for task, ref in self.defaulted.items():
            lines.append(f"  {task} tab: no --model given, so the app's default {ref}")
        for ref, size in self.copied.items():
            lines.append(f"  model {ref}: {size / 2**20:.1f} MiB copied in")
        for ref in self.preloaded:
            lines.append(f"  model {ref}: on the HF Hub, preloaded by Spaces at build time")
        total = sum(f.stat().st_size for f in self.folder.rglob("*") if f.is_file())
        lines.append(f"  total {total / 2**20:.1f} MiB")
        return "\n".join(lines)


def build(out: str | Path, tabs: list[str], models: dict[str, str], *, title: str = "AIGC Hub",
          emoji: str = "🎨", license: str | None = None, hardware: str = "cpu-basic",
          defaults: AppConfig | None = None) -> SpacePlan:
    """Write the Space folder `out` for `tabs`, serving `models` (task → model reference); a task tab without one
    serves the app's default model for it (from `defaults`, else the app's settings)."""
    unknown = [t for t in tabs if t not in tab_keys()]
    if unknown or not tabs:
        raise SpaceError(f"unknown or no tabs {unknown or tabs}: choose from {', '.join(tab_keys())}")
    if "train" in tabs:
        raise SpaceError("a Space cannot have the Train tab: it serves models and does not carry the training scripts")
    stray = [t for t in models if t not in TASKS]
    if stray:
        raise SpaceError(f"--model takes TAB=REF with TAB one of {', '.join(TASKS)}; got {stray}")
    defaults = defaults or AppConfig.load()
    defaulted = {t: defaults.model_for(t) for t in tabs if t in TASKS and t not in models}
    models = {**defaulted, **models}
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SpaceError(f"{out} exists and is not empty: pick a new folder")
    plan = SpacePlan(out, list(tabs), {}, defaulted=defaulted)
    cards, datasets, licenses = [], [], []
    tmp = out.with_name(f".{out.name}.building")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for tab, ref in models.items():
            source, path = hub.locate(ref)
            if source == "hf":
                _check_on_hf(ref)
                plan.models[tab] = ref
                plan.preloaded.append(hub.parse_ref(ref)[0])
                continue
            space_ref = ref if source in ("local", "starter") else f"local/{path.name}"
            target = tmp / "models" / space_ref
            if not target.exists():
                _copy_model(path, target)
            _bring_base(path, tmp, plan)  # an adapter is served on its base: the Space needs that too
            plan.models[tab] = space_ref
            plan.copied[space_ref] = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
            card = read_card(path)
            cards.append(card)
            datasets += card.datasets
            licenses += [card.license] if card.license else []
        shutil.copytree(PACKAGE, tmp / "aigc_hub",  # the README's screenshots are not the app's (416 KB)
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "weights", "screenshots"))
        shutil.copy2(TEMPLATE, tmp / "app.py")
        config = {"tabs": list(tabs), "preload": True, **{f"{t}_model": ref for t, ref in plan.models.items()}}
        (tmp / "aigc-hub.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (tmp / "requirements.txt").write_text(requirements())
        meta = front_matter(title, emoji, license or (licenses[0] if licenses else "mit"), tabs,
                            models=plan.preloaded, datasets=sorted(set(datasets)), hardware=hardware)
        (tmp / "README.md").write_text(readme(meta, plan, [c.summary() for c in cards]))
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return plan


def _bring_base(path: Path, tmp: Path, plan: SpacePlan) -> None:
    """For an adapter folder: its base copied beside it (a local hub model or starter, under the id the adapter
    names), or preloaded by Spaces (an HF id); a base that is only a folder on this machine is refused."""
    from .models.adapters import base_of_folder

    base = base_of_folder(path) if (path / "adapter_config.json").is_file() else None
    if base is None:
        return
    source, base_path = hub.locate(base)
    if source == "hf":
        _check_on_hf(base)
        plan.preloaded.append(hub.parse_ref(base)[0])
    elif source == "folder":
        raise SpaceError(f"{path.name} is an adapter of {base}, a folder on this machine: push the base to the hub "
                         "(python -m aigc_hub push) and train the adapter from that id")
    elif not (tmp / "models" / base).exists():
        _copy_model(base_path, tmp / "models" / base)
        plan.copied[base] = sum(f.stat().st_size for f in (tmp / "models" / base).rglob("*") if f.is_file())


def _check_on_hf(ref: str) -> None:
    """An HF-hosted model must exist (checked in seconds when online; offline it cannot be, and is trusted)."""
    from huggingface_hub import constants, model_info
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    if constants.HF_HUB_OFFLINE:
        return
    repo_id, revision = hub.parse_ref(ref)
    try:
        model_info(repo_id, revision=revision, timeout=CONNECT_TIMEOUT_S)
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise SpaceError(f"{ref} is neither in the local hub nor on the Hugging Face Hub") from None
    except Exception as e:  # no network: say so rather than build a Space that cannot start
        raise SpaceError(f"{ref} is not in the local hub and the Hugging Face Hub could not be reached "
                         f"({type(e).__name__}); set HF_HUB_OFFLINE=1 to build without checking") from None


def _copy_model(src: Path, dst: Path) -> None:
    from .families import checked_folder

    _, config = checked_folder(src)  # refuses pickle-only folders and broken configs before anything is copied
    # A diffusers pipeline keeps its components in sub-folders named in model_index.json (unet/, scheduler/).
    components = [k for k, v in config.items() if isinstance(v, list) and (src / k).is_dir()]
    for folder, target in [(src, dst), *((src / k, dst / k) for k in components)]:
        target.mkdir(parents=True)
        for pattern in MODEL_FILES:
            for f in folder.glob(pattern):
                if f.is_file():
                    shutil.copy2(f, target / f.name)


def requirements() -> str:
    """Pinned runtime requirements, from the project's own pins."""
    pins: dict[str, str] = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = f"{name.strip()}=={version.strip()}"
    missing = [n for n in RUNTIME if n.lower().replace("_", "-") not in pins]
    if missing:
        raise SpaceError(f"requirements.txt pins no version for {missing}")
    header = "# Pinned from AIGC Hub's requirements.txt; gradio comes from the README's sdk_version.\n"
    return header + "".join(pins[n.lower().replace("_", "-")] + "\n" for n in RUNTIME)


def front_matter(title: str, emoji: str, license: str, tabs: list[str], *, models: list[str], datasets: list[str],
                 hardware: str) -> dict:
    import gradio

    meta = {
        "title": title[:60],
        "emoji": emoji,
        "colorFrom": "indigo",
        "colorTo": "pink",
        "sdk": "gradio",
        "sdk_version": gradio.__version__,
        "app_file": "app.py",
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "license": license,
        "short_description": f"AIGC Hub demo: {', '.join(t for t in tabs if t != 'models')}"[:60],
        "suggested_hardware": hardware,
        "tags": ["aigc-hub", *tabs],
    }
    if models:
        meta["models"] = models
        meta["preload_from_hub"] = models
    if datasets:
        meta["datasets"] = datasets
    return meta


def readme(meta: dict, plan: SpacePlan, summaries: list[str]) -> str:
    rows = "\n".join(f"- `{ref}`" for ref in plan.models.values())
    figures = "\n".join(f"- {s}" for s in summaries)
    return (f"---\n{yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)}---\n\n# {meta['title']}\n\n"
            f"Built with `python -m aigc_hub space build`: the same app as AIGC Hub's local `app.py`.\n\n"
            f"Models:\n{rows}\n\n{figures}\n")


def deploy(folder: str | Path, space_id: str, *, private: bool = False, hardware: str | None = None,
           dry_run: bool = False) -> str:
    """Create the Space `space_id` and upload `folder`; with dry_run, say what would happen and touch nothing."""
    folder = Path(folder)
    hub.validate_repo_id(space_id)
    if not (folder / "app.py").is_file() or not (folder / "README.md").is_file():
        raise SpaceError(f"{folder} is not a built Space (no app.py / README.md): run `space build` first")
    files = sorted(f for f in folder.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    if dry_run:
        total = sum(f.stat().st_size for f in files)
        lines = [f"would create Space {space_id} (sdk gradio, {'private' if private else 'public'}"
                 f"{f', hardware {hardware}' if hardware else ''}) and upload {len(files)} files, "
                 f"{total / 2**20:.1f} MiB:"]
        lines += [f"  {f.relative_to(folder)} ({f.stat().st_size} bytes)" for f in files]
        return "\n".join(lines)
    from huggingface_hub import HfApi, constants, get_token

    if not get_token():
        raise SpaceError("deploying a Space needs a Hugging Face token: run `hf auth login` or set HF_TOKEN")
    if constants.HF_HUB_OFFLINE:
        raise SpaceError("HF_HUB_OFFLINE is set: deploying needs the network (unset it, or use --dry-run)")
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:  # fail in seconds, not after the HTTP client's retries, when there is no network
        socket.create_connection((host, 443), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        raise SpaceError(f"cannot reach {host} ({e}): no network?") from None
    api = HfApi()
    try:
        api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True,
                        space_hardware=hardware)
        info = api.upload_folder(folder_path=str(folder), repo_id=space_id, repo_type="space",
                                 ignore_patterns=["**/__pycache__/**"], commit_message="Deploy with AIGC Hub")
    except Exception as e:  # HTTP errors (bad token, taken name) and network errors alike
        raise SpaceError(f"deploy to {space_id} failed: {type(e).__name__}: {e}") from None
    return str(getattr(info, "commit_url", f"https://huggingface.co/spaces/{space_id}"))
