"""Models a user added by hand (Models tab, `python -m aigc_hub add`, the `extra_models` setting): Hugging Face ids
(`owner/name[@rev]`) and local folders, listed beside the local hub and the starters and remembered across restarts
in `.added-models.json` in the local hub's folder.

Adding checks the model before it is remembered: the reference must resolve (an HF id is downloaded, or read from the
HF cache when offline) and its folder must be one a family serves, with safetensors weights. A model that cannot be
served is refused with the loader's one-line reason and nothing is written.

Who adds matters: the operator (the CLI) may add any folder of the server; a web client (the Models tab, its API,
MCP) only a folder under the roots the operator configured (`model_dirs`), never one it uploaded itself (Gradio's
upload and cache folders are outside them), and never a remote entry (remote.py: only `remote add` makes those).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

from . import hub, remote
from .cards import render_card
from .errors import HubError
from .families import checked_folder
from .paths import within

FILE_NAME = ".added-models.json"
_lock = threading.Lock()


def _file() -> Path:
    return hub.hub_home() / FILE_NAME


def added_refs() -> list[str]:
    """The remembered references, oldest first ([] when none, or when the file is unreadable)."""
    try:
        refs = json.loads(_file().read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    return [r for r in refs if isinstance(r, str)] if isinstance(refs, list) else []


def _write(refs: list[str]) -> None:
    path = _file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(refs, indent=1), encoding="utf-8")
    os.replace(tmp, path)  # readers see the old list or the new one


def canonical(ref: str) -> str:
    """How a reference is remembered: an HF / local-hub id as given (stripped), a folder as its absolute path."""
    if not isinstance(ref, str) or not ref.strip():
        raise HubError("no model given: an HF id (owner/name[@rev]), a local hub id or a model folder")
    ref = ref.strip()
    source, path = hub.locate(ref)
    return str(path.resolve()) if source == "folder" and path is not None else ref


def add(ref: str, folder_roots: list[Path] | None = None, max_download_bytes: int | None = None,
        never_under: list[Path] = ()) -> hub.ModelEntry:
    """Check that `ref` can be served, remember it, and return its listing entry. `folder_roots`: a web client's
    add, where a folder must lie under one of these (None: the operator's, anywhere) and never under `never_under`
    (the web server's upload and cache folders, even inside a root); `max_download_bytes` caps what an HF id may
    download."""
    ref = canonical(ref)
    source, folder = hub.locate(ref)
    if source == "folder" and folder_roots is not None:
        if within(folder, never_under):
            raise HubError("a folder uploaded to this server cannot be added as a model")
        if not within(folder, folder_roots):
            raise HubError("a model folder can be added from here only under the folders the operator configured "
                           "(model_dirs)" + ("" if folder_roots else ": none are") + "; an HF id or a local hub id "
                           "can be added as it is")
    # an HF id: downloaded (or found in the cache offline), within the cap; HubError when it cannot be
    path = hub.resolve(ref, max_bytes=max_download_bytes)
    family, _ = checked_folder(path, ref)  # ModelLoadError with the reason when no family serves it
    if family.remote:
        remote.check_operator_made(path)
    if source in ("hf", "folder"):  # local hub ids and starters are listed anyway
        with _lock:
            refs = added_refs()
            if ref not in refs:
                _write([*refs, ref])
    hub.invalidate()
    entry = next((e for e in listed() if e.ref == ref), None)
    return entry or hub.ModelEntry(ref, "hf", path, family=family.name)


def remove(ref: str) -> bool:
    """Forget an added reference (its files stay where they are); False when it was not added."""
    ref = ref.strip() if isinstance(ref, str) else ""
    with _lock:
        refs = added_refs()
        forms = {ref, str(Path(ref).expanduser().resolve())} if ref else set()  # as given, or as a folder
        keep = [r for r in refs if r not in forms]
        if keep == refs:
            return False
        _write(keep)
    hub.invalidate()
    return True


def listed(extra_refs: list[str] | tuple[str, ...] = ()) -> list[hub.ModelEntry]:
    """The hub's listing with `extra_refs` (the app config's) and the models added by hand, last."""
    return hub.list_models([*extra_refs, *added_refs()])


def remote_settings(repo_id: str) -> dict | None:
    """The settings of the local hub's remote entry (remote.py) named `repo_id`; None when it is no remote entry."""
    try:
        config = json.loads((hub.hub_home() / hub.validate_repo_id(repo_id) / "config.json").read_text(
            encoding="utf-8"))
    except (HubError, OSError, ValueError):
        return None
    return config[remote.KEY] if remote.is_remote(config) else None


def is_remote_entry(repo_id: str) -> bool:
    return remote_settings(repo_id) is not None


def remove_remote(repo_id: str) -> str:
    """Delete the local hub entry `repo_id` when it is a remote entry (only those: a model's weights are never
    deleted here); where it was. It is renamed aside first, so a crash midway leaves either the entry or nothing."""
    if not is_remote_entry(repo_id):
        raise HubError(f"{str(repo_id)[:80]}: no remote entry of that name in the local hub ({hub.hub_home()})")
    dest = hub.hub_home() / repo_id
    gone = dest.parent / f".{dest.name}.gone-{uuid.uuid4().hex[:8]}"
    os.rename(dest, gone)
    shutil.rmtree(gone, ignore_errors=True)
    hub.invalidate()
    return str(dest)


def add_remote(repo_id: str, base_url: str, model: str, api_key_env: str | None = None, chat: bool = True) -> str:
    """Write a remote entry (remote.py) into the local hub as `repo_id`, atomically as a push; where it went. The
    operator's call (`python -m aigc_hub remote add`): only entries in the local hub are honoured."""
    config = remote.entry_config(base_url, model, api_key_env, chat)
    settings = config[remote.KEY]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        render_card(title=repo_id, family="openai-remote", tags=["remote"], datasets=[], license="other",
                    figures=[], body=f"`{model}` served by the OpenAI-compatible server at {settings['base_url']}. "
                    "Its quality is that model's: see its own card.").save(folder / "README.md")
        return hub.push(folder, repo_id, weights=False)
