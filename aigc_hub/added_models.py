"""Models a user added by hand (Models tab, `python -m aigc_hub add`, the `extra_models` setting): Hugging Face ids
(`owner/name[@rev]`) and local folders, listed beside the local hub and the starters and remembered across restarts
in `.added-models.json` in the local hub's folder.

Adding checks the model before it is remembered: the reference must resolve (an HF id is downloaded, or read from the
HF cache when offline) and its folder must be one a family serves, with safetensors weights. A model that cannot be
served is refused with the loader's one-line reason and nothing is written.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from pathlib import Path

from . import hub
from .errors import HubError

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


def add(ref: str) -> hub.ModelEntry:
    """Check that `ref` can be served, remember it, and return its listing entry."""
    from .services.registry import inspect

    ref = canonical(ref)
    source, _ = hub.locate(ref)
    path = hub.resolve(ref)  # an HF id: downloaded (or found in the cache offline); HubError when it cannot be
    family, _ = inspect(path, ref)  # ModelLoadError with the reason when no family serves it
    if source in ("hf", "folder"):  # local hub ids and starters are listed anyway
        with _lock:
            refs = added_refs()
            if ref not in refs:
                _write([*refs, ref])
    hub.invalidate()
    entry = next((e for e in hub.list_models() if e.ref == ref), None)
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
