"""Model references and the hub: resolve, push, list.

A reference is resolved in this order (first match wins):

1. an existing directory holding a `config.json` or a diffusers `model_index.json` (a training output, an unpacked
   download), or any path that starts
   with `/`, `.` or `~` (which must then exist);
2. `owner/name` in the **local hub**: `$AIGC_HUB_HOME/owner/name` (default `~/.cache/aigc-hub/hub`);
3. `owner/name` among the **starters** shipped with this repository (`starters/owner/name`, read-only);
4. `owner/name[@revision]` on the **Hugging Face Hub**, downloaded into the HF cache (safetensors, configs,
   tokenizer files and the card only; never pickles). With `HF_HUB_OFFLINE=1` only the cache is read, and a network
   that does not answer fails after a bounded timeout instead of hanging.

A push into the local hub writes to a hidden temporary folder beside the target and renames it into place, so a
reader sees the old version or the new one, never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub.utils import HFValidationError
from huggingface_hub.utils import validate_repo_id as _hf_validate

from .cards import CardInfo, read_card
from .errors import HubError
from .paths import STARTERS_ROOT, hub_home

# What a model folder may hold when pushed: weights as safetensors, configs, tokenizers, the card, a sample image.
PUSH_IGNORE = ["checkpoints/**", "logs/**", "samples/**", "merged/**", "*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt",
               ".*"]
# What is downloaded from the HF Hub: configs, weights, tokenizers (tokenizer.json, vocab / merges, sentencepiece models
# as OPUS-MT, M2M100, mBART and T5 ship them, chat_template.jinja), the card and a sample image; never pickles.
HF_ALLOW = ["*.json", "*.safetensors", "*.txt", "*.model", "*.spm", "*.jinja", "README.md", "*.png"]
# A diffusers pipeline (model_index.json): its components' folders only. Stable Diffusion repos also hold multi-GB
# single-file checkpoints at the top and fp16 / non-EMA variants beside each component's weights
# (name.VARIANT.safetensors).
PIPELINE_ALLOW = ["model_index.json", "README.md", "*/*.json", "*/*.txt", "*/*.model", "*/*.safetensors"]
PIPELINE_IGNORE = ["*/*.*.safetensors"]
_UMASK = os.umask(0o022)  # read once, at import (setting it is process-wide: never while threads serve)
os.umask(_UMASK)
_REF = re.compile(r"^(?P<repo>[^@]+?)(?:@(?P<rev>[\w.\-/]+))?$")


@dataclass
class ModelEntry:
    ref: str  # what a user passes to load it
    source: str  # "local" | "starter" | "hf" | "folder"
    path: Path | None  # None for an HF model not in the local cache
    card: CardInfo = field(default_factory=CardInfo)
    family: str | None = None  # the families.FAMILIES entry its folder matches; None: unknown or not downloaded

    @property
    def task(self) -> str | None:
        """The task (tab) that serves it, from the family table."""
        from .families import FAMILIES

        return FAMILIES[self.family].task if self.family else None

    @property
    def base(self) -> str | None:
        """For an adapter: the base model it is served on (its adapter_config.json's), else None."""
        from .families import FAMILIES
        from .models.adapters import base_of_folder

        adapter = self.path is not None and self.family and FAMILIES[self.family].base_families
        return base_of_folder(self.path) if adapter else None


def validate_repo_id(repo_id: str) -> str:
    """Return `repo_id` if it is a safe `owner/name`; raise HubError otherwise (no `..`, no absolute paths)."""
    if not isinstance(repo_id, str) or not repo_id.strip():
        raise HubError("empty model id: expected owner/name")
    parts = repo_id.split("/")
    if repo_id.startswith(("/", "\\", "~")) or len(parts) != 2 or not all(parts):
        raise HubError(f"invalid model id {repo_id!r}: expected owner/name (two non-empty parts, no absolute path)")
    try:
        _hf_validate(repo_id)
    except HFValidationError as e:
        raise HubError(f"invalid model id {repo_id!r}: {e}") from None
    return repo_id


def parse_ref(ref: str) -> tuple[str, str | None]:
    """`owner/name[@rev]` → (repo_id, revision)."""
    m = _REF.match(ref.strip()) if isinstance(ref, str) else None
    if not m:
        raise HubError(f"invalid model reference {ref!r}")
    return validate_repo_id(m["repo"]), m["rev"]


# A model folder holds one of these: a transformers / DCGAN config, or a diffusers pipeline's index.
MODEL_MARKERS = ("config.json", "model_index.json", "adapter_config.json")


def is_model_folder(path: Path) -> bool:
    return any((path / name).is_file() for name in MODEL_MARKERS)


def _is_path_ref(ref: str) -> bool:
    return ref.startswith(("/", ".", "~")) or (Path(ref).is_dir() and is_model_folder(Path(ref)))


def locate(ref: str) -> tuple[str, Path | None]:
    """Where `ref` lives, without any network and without writing: ("folder" | "local" | "starter", its folder)
    or ("hf", None)."""
    if not isinstance(ref, str) or not ref.strip():
        raise HubError("no model given")
    ref = ref.strip()
    if _is_path_ref(ref):
        path = Path(ref).expanduser()
        if not is_model_folder(path):
            raise HubError(f"{ref}: not a model folder (no config.json, model_index.json or adapter_config.json)")
        return "folder", path
    repo_id, revision = parse_ref(ref)
    for source, root in (("local", hub_home()), ("starter", STARTERS_ROOT)):
        path = root / repo_id
        if source == "local" and not path.exists():
            path = _set_aside(path) or path  # a push killed between its two renames: serve what it set aside
        if is_model_folder(path):
            if revision:
                raise HubError(f"{repo_id} is in the local hub, which keeps no revisions: drop '@{revision}'")
            return source, path
    return "hf", None


def resolve(ref: str, *, offline: bool | None = None, max_bytes: int | None = None) -> Path:
    """The local folder that holds model `ref` (downloading it from the HF Hub when it lives only there; refused
    before any download when what would be downloaded exceeds `max_bytes`)."""
    source, path = locate(ref)
    if path is not None:
        return path
    return _download(*parse_ref(ref.strip()), offline=offline, max_bytes=max_bytes)


def download_size(files: dict[str, int]) -> int:
    """Bytes a download of a repository holding `files` (name → size) fetches, by the patterns above."""
    from huggingface_hub.utils import filter_repo_objects

    allow, ignore = (PIPELINE_ALLOW, PIPELINE_IGNORE) if "model_index.json" in files else (HF_ALLOW, None)
    return sum(files[name] for name in filter_repo_objects(list(files), allow_patterns=allow,
                                                            ignore_patterns=ignore))


def _check_download_size(repo_id: str, revision: str | None, max_bytes: int) -> None:
    from huggingface_hub import HfApi

    info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    size = download_size({s.rfilename: s.size or 0 for s in info.siblings or []})
    if size > max_bytes:
        raise HubError(f"model {repo_id!r} would download {size / 2**30:.1f} GiB; this server allows "
                       f"{max_bytes / 2**30:.1f} GiB from here (max_download_mb)")


def _download(repo_id: str, revision: str | None, *, offline: bool | None, max_bytes: int | None = None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        if max_bytes is not None and not offline:  # what is in the cache already costs nothing more
            _check_download_size(repo_id, revision, max_bytes)
        # model_index.json first: a pipeline's repository is fetched component by component.
        index = Path(snapshot_download(repo_id, revision=revision, allow_patterns=["model_index.json"], etag_timeout=5,
                                       local_files_only=offline)) / "model_index.json"
        allow, ignore = (PIPELINE_ALLOW, PIPELINE_IGNORE) if index.is_file() else (HF_ALLOW, None)
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=allow, ignore_patterns=ignore,
                                      etag_timeout=5, local_files_only=offline))
    except (RepositoryNotFoundError, RevisionNotFoundError):
        raise HubError(f"model {repo_id!r} not found in the local hub, the starters or on the Hugging Face Hub") from None
    except LocalEntryNotFoundError:
        where = "offline (HF_HUB_OFFLINE=1)" if offline else "the Hugging Face Hub could not be reached"
        raise HubError(f"model {repo_id!r} is not in the local hub or the starters, and {where}") from None
    except HubError:
        raise
    except Exception as e:  # network errors: OSError or the HTTP client's own exceptions
        raise HubError(f"model {repo_id!r}: download from the Hugging Face Hub failed: {e}") from None


def push(folder: str | Path, repo_id: str, *, hf: bool = False, private: bool = False, weights: bool = True) -> str:
    """Publish a model folder as `repo_id`: atomically into the local hub, or to the HF Hub with `hf=True`.

    Training checkpoints, logs and pickled weights are never published. Returns where it went. `weights=False`:
    a folder that holds none (a remote entry, remote.py).
    """
    validate_repo_id(repo_id)
    folder = Path(folder)
    if not is_model_folder(folder):
        raise HubError(f"{folder}: not a model folder (no config.json, model_index.json or adapter_config.json)")
    if weights and not any(folder.glob("*.safetensors")) and not any(folder.glob("*/*.safetensors")):
        raise HubError(f"{folder}: no .safetensors weights to push")
    if hf:
        return _push_hf(folder, repo_id, private)
    dest = hub_home() / repo_id
    dest.parent.mkdir(parents=True, exist_ok=True)
    _recover(dest)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(folder, tmp, ignore=_ignore_for_push)
        _apply_umask(tmp)
        _fsync_tree(tmp)
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(dest, old)
            os.rename(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        invalidate()
    return str(dest)


_LEFT_BY_PUSH = re.compile(r"^\.(?P<name>.+)\.(?:old|tmp)-[0-9a-f]+$")  # `.name.old-1a2b3c4d`, `.name.tmp-…`


def _entries_with_leftovers(owner: Path) -> list[str]:
    """Names under an owner folder that an interrupted push left something for (a set-aside or temporary copy)."""
    return sorted({m["name"] for p in owner.iterdir() if (m := _LEFT_BY_PUSH.match(p.name))})


def recover(root: Path | None = None) -> list[str]:
    """Finish what killed pushes left in the local hub (at start-up; a push does it for its own entry).
    Returns the repo ids it touched."""
    root = root or hub_home()
    touched = []
    for owner in root.iterdir() if root.is_dir() else []:
        if not owner.is_dir() or owner.name.startswith("."):
            continue
        touched += [f"{owner.name}/{name}" for name in _entries_with_leftovers(owner) if _recover(owner / name)]
    if touched:
        invalidate()
    return touched


def _set_aside(dest: Path) -> Path | None:
    """The newest complete previous version of `dest` that a push set aside (`.name.old-*`), if any."""
    if not dest.parent.is_dir():
        return None
    olds = sorted(dest.parent.glob(f".{dest.name}.old-*"), key=lambda p: p.stat().st_mtime)
    olds = [p for p in olds if is_model_folder(p)]
    return olds[-1] if olds else None


def _recover(dest: Path) -> bool:
    """Undo what a push killed mid-way left behind: the previous version set aside in the instant between its two
    renames comes back, and temporary copies of pushes that died more than an hour ago are removed."""
    if not dest.parent.is_dir():
        return False
    changed = False
    if not dest.exists():
        old = _set_aside(dest)
        if old is not None:
            os.rename(old, dest)
            changed = True
    cutoff = time.time() - 3600
    for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
        if stale.stat().st_mtime < cutoff:
            shutil.rmtree(stale, ignore_errors=True)
            changed = True
    return changed


def _ignore_for_push(directory: str, names: list[str]) -> set[str]:
    """shutil.copytree filter: hidden files, run folders (checkpoints, logs, samples) and pickles stay behind."""
    import fnmatch

    run_dirs = {p.split("/")[0] for p in PUSH_IGNORE if p.endswith("/**")}
    skipped = set()
    for name in names:
        is_run_dir = name in run_dirs and (Path(directory) / name).is_dir()
        if is_run_dir or any(fnmatch.fnmatch(name, pat) for pat in PUSH_IGNORE if "/" not in pat):
            skipped.add(name)
    return skipped


def _apply_umask(root: Path) -> None:
    """Published files get the modes the user's umask gives new files (copies of mkstemp files are 0600)."""
    for path in [root, *root.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_UMASK)


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def _push_hf(folder: Path, repo_id: str, private: bool) -> str:
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    if not get_token():
        raise HubError("pushing to the Hugging Face Hub needs a token: run `hf auth login` or set HF_TOKEN")
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, ignore_patterns=PUSH_IGNORE,
                                 commit_message="Upload model trained with AIGC Hub")
    except HfHubHTTPError as e:
        raise HubError(f"push to the Hugging Face Hub failed: {e} (is HF_TOKEN set, with write access?)") from None
    except Exception as e:  # network errors: OSError or the HTTP client's own exceptions
        raise HubError(f"push to the Hugging Face Hub failed: no network? ({type(e).__name__}: {e})") from None
    return str(getattr(info, "commit_url", f"https://huggingface.co/{repo_id}"))


class _Listing:
    """The hub listing, parsed once and kept until a push, a refresh or a change in the hub's folders.

    The check for a change costs a few `stat` calls per model (folders, config / index, README.md), not a parse of
    every card on every request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signature: tuple = ()
        self._entries: dict[str, ModelEntry] = {}
        self._extras: dict[str, ModelEntry] = {}

    def invalidate(self) -> None:
        with self._lock:
            self._signature, self._extras = (), {}

    def entries(self, extra_refs: list[str] | tuple[str, ...]) -> list[ModelEntry]:
        roots = (("local", hub_home()), ("starter", STARTERS_ROOT))
        signature = tuple(_signature(root) for _, root in roots) + (str(hub_home()),)
        with self._lock:
            if signature != self._signature:
                self._entries, self._extras = _scan(roots), {}
                self._signature = signature
            entries = dict(self._entries)
            for ref in extra_refs:
                if ref in entries:
                    continue
                if ref not in self._extras:
                    self._extras[ref] = _extra_entry(ref)
                entries[ref] = self._extras[ref]
        return list(entries.values())


def _signature(root: Path) -> tuple:
    """What changes when a model is added, removed, replaced or has its card or config edited."""
    marks: list = []
    try:
        marks.append(root.stat().st_mtime_ns)
        for owner in sorted(os.scandir(root), key=lambda e: e.name):
            if not owner.is_dir():
                continue
            marks.append((owner.name, owner.stat().st_mtime_ns))
            for model in sorted(os.scandir(owner.path), key=lambda e: e.name):
                for name in (*MODEL_MARKERS, "README.md"):
                    with contextlib.suppress(OSError):
                        marks.append((model.path, name, os.stat(os.path.join(model.path, name)).st_mtime_ns))
    except OSError:  # no hub folder yet
        pass
    return tuple(marks)


def _scan(roots: tuple[tuple[str, Path], ...]) -> dict[str, ModelEntry]:
    from .families import family_of_folder

    entries: dict[str, ModelEntry] = {}
    for source, root in roots:
        for path in sorted({m.parent for name in MODEL_MARKERS for m in root.glob(f"*/*/{name}")}):
            repo_id = f"{path.parent.name}/{path.name}"
            if path.name.startswith(".") or path.parent.name.startswith(".") or repo_id in entries:
                continue
            family = family_of_folder(path)
            entries[repo_id] = ModelEntry(repo_id, source, path, read_card(path), family.name if family else None)
        if source != "local":
            continue
        for owner in (o for o in root.iterdir() if o.is_dir()) if root.is_dir() else []:
            for name in _entries_with_leftovers(owner):  # a push killed between its renames: still listed
                repo_id, aside = f"{owner.name}/{name}", _set_aside(owner / name)
                if repo_id not in entries and aside is not None and not (owner / name).exists():
                    family = family_of_folder(aside)
                    entries[repo_id] = ModelEntry(repo_id, source, aside, read_card(aside),
                                                  family.name if family else None)
    return entries


def _extra_entry(ref: str) -> ModelEntry:
    from .families import family_of_folder

    if _is_path_ref(ref):
        family = family_of_folder(Path(ref))
        return ModelEntry(ref, "folder", Path(ref), read_card(Path(ref)), family.name if family else None)
    try:
        path = _download(*parse_ref(ref), offline=True)
    except HubError:
        return ModelEntry(ref, "hf", None)
    family = family_of_folder(path)
    return ModelEntry(ref, "hf", path, read_card(path), family.name if family else None)


_LISTING = _Listing()


def invalidate() -> None:
    """Forget the cached listing: the next `list_models` reads the hub again."""
    _LISTING.invalidate()


def list_models(extra_refs: list[str] | tuple[str, ...] = ()) -> list[ModelEntry]:
    """Every model the hub knows: local hub, then starters (a local entry hides a starter of the same id), then
    `extra_refs` (HF ids and folders from the app config, and the models added by hand: added_models.listed; their
    cards are read only when they are already in the HF cache). Cached: see `_Listing`."""
    return _LISTING.entries(tuple(dict.fromkeys(extra_refs)))
