"""Loaded models: which reference is on which device, in which dtype, using how much memory; load and unload.

One registry is shared by every service of a process, so the Models tab sees what the Image, Text and Translation
tabs loaded. Each device has one long-lived worker thread that runs all model work on it (loading, forward passes,
generation, freeing): models on the same device take turns, models on different devices run in parallel. One thread
per device, not one per request, because every Python thread that runs torch CPU ops gets its own OpenMP team, and
two teams on two cores spin against each other (measured: a matmul loop 55 % slower).

Loading checks the folder before any weights are read: safetensors only (a pickle-only checkpoint is refused, never
unpickled), a `config.json` that parses, complete weight files.
"""

from __future__ import annotations

import gc
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from .. import devices, hub, remote
from ..backends import check as check_backend
from ..backends import loader_for
from ..models import adapters
from ..errors import GenerationError, ModelLoadError, UserError
from ..families import Family, checked_folder
from .batching import Batcher


T = TypeVar("T")
_worker_of = threading.local()  # .device is set on each device's worker thread


@dataclass
class LoadedModel:
    ref: str
    family: Family
    path: Path
    model: Any
    device: str  # the device name the registry placed it on: its worker thread and its queue lane
    dtype: torch.dtype
    bytes: int
    config: dict
    tokenizer: Any = None  # text and translation models
    extras: dict = field(default_factory=dict)  # from the family's loader (a diffusion model's scheduler config)

    @property
    def kind(self) -> str:
        """The family it is served as: an adapter's is its base's."""
        return self.extras.get("served_as", self.family.name)

    @property
    def task(self) -> str:
        return self.family.task

    def describe(self) -> str:
        if self.family.base_families:
            return (f"{self.ref} on {self.device} (LoRA adapter, {self.bytes / 2**20:.1f} MiB, on "
                    f"{self.extras['base']}: its weights shared, not loaded again)")
        if self.family.remote:
            return f"{self.ref} on {self.device} ({self.model.model}, served there)"
        runtime = self.extras.get("backend") or str(self.dtype).replace("torch.", "")
        return f"{self.ref} on {self.device} ({runtime}, {self.bytes / 2**20:.1f} MiB)"


class ModelRegistry:
    """Thread-safe: callers on any thread; all model work on one device runs on that device's worker thread."""

    def __init__(self, device_overrides: dict[str, str] | None = None, batching: bool = True,
                 batch_window_ms: float = 0.0, max_batch: int = 64, backends: dict[str, str] | None = None) -> None:
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self._workers: dict[str, ThreadPoolExecutor] = {}
        self._loading: dict[str, threading.Lock] = {}  # one per reference asked for
        self.device_overrides = dict(device_overrides or {})
        self.backends = {ref: check_backend(name) for ref, name in (backends or {}).items()}  # ref or "*" → name
        # ZeroGPU runs each GPU function in a forked process, where a worker thread started earlier does not exist:
        # there, work runs on the calling thread (or a fresh one for streams).
        self.inline = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")
        # Concurrent requests for one model merge into one call on its device's worker (see batching.py).
        # ZeroGPU runs each request in its own forked process: nothing to merge there.
        self.batcher = Batcher(self.submit, self.run, lambda device: getattr(_worker_of, "device", None) == device,
                               batching and not self.inline, batch_window_ms / 1000, max_batch)

    def submit(self, device: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> "Future[T]":
        """Queue `fn(*args, **kwargs)` on `device`'s worker thread (FIFO); the future holds its result."""
        if self.inline:
            future: Future[T] = Future()
            threading.Thread(target=_fill, args=(future, fn, args, kwargs), daemon=True).start()
            return future
        with self._lock:
            worker = self._workers.get(device)
            if worker is None:
                worker = self._workers[device] = ThreadPoolExecutor(
                    1, thread_name_prefix=f"aigc-{device}", initializer=setattr,
                    initargs=(_worker_of, "device", device))
        return worker.submit(fn, *args, **kwargs)

    def run(self, device: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on `device`'s worker, waiting for it (directly when already on that worker)."""
        if self.inline or getattr(_worker_of, "device", None) == device:
            return fn(*args, **kwargs)
        return self.submit(device, fn, *args, **kwargs).result()

    def override(self, ref: str) -> str | None:
        """The configured placement of `ref`: its own entry, else the entry for every model ("*")."""
        return self.device_overrides.get(ref) or self.device_overrides.get("*")

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return list(self._models.values())

    def get(self, ref: str, device: str | None = None) -> LoadedModel:
        """The loaded model for `ref`, loading it first if needed (on `device`, or where the policy places it)."""
        def loaded() -> LoadedModel | None:
            with self._lock:
                current = self._models.get(ref)
            return current if current is not None and device in (None, "auto", current.device) else None

        current = loaded()
        if current is not None:
            return current
        with self._lock:
            loading = self._loading.setdefault(ref, threading.Lock())
        with loading:  # requests arriving together for a model not loaded yet load it once, and share it
            return loaded() or self.load(ref, device)

    def get_for(self, ref: str, task: str) -> LoadedModel:
        """`get(ref)`, refused with a clear message when the model serves another task than `task`."""
        entry = self.get(ref)
        if entry.task != task:
            raise GenerationError(f"{ref} is a {entry.kind} model for {entry.task}, not for {task}")
        return entry

    def folder_of(self, ref: str) -> tuple[Family, Path, dict]:
        """The family, folder and checked config file of `ref`, without loading its weights."""
        with self._lock:
            current = self._models.get(ref)
        if current:
            return current.family, current.path, current.extras.get("adapter_config", current.config)
        path = hub.resolve(ref)
        family, config = checked_folder(path, ref)
        return family, path, config

    def base_folder_of(self, ref: str) -> tuple[Family, Path, dict]:
        """`folder_of(ref)`, or for an adapter its base's (what it is served as: its conventions, its context)."""
        family, path, config = self.folder_of(ref)
        if family.base_families:
            base = adapters.base_ref(config, ref)
            hub.resolve(base, offline=True)  # never a download for an adapter
            return self.folder_of(base)
        return family, path, config

    def planned_device(self, ref: str, device: str | None = None) -> str:
        """Where `ref` is, or would go if it were loaded now."""
        with self._lock:
            current = self._models.get(ref)
        if current is not None and device in (None, "auto"):
            return current.device
        path = hub.resolve(ref)
        family, config = checked_folder(path, ref)
        if family.base_families:  # an adapter goes where its base is
            return self.planned_device(adapters.base_ref(config, ref), device or self.override(ref))
        return _placement(family, config, _weights_bytes(path, family), device or self.override(ref))

    def load(self, ref: str, device: str | None = None, backend: str | None = None) -> LoadedModel:
        """Load `ref` (again), on `device` or where the policy places it; `backend` chooses its runtime from now on
        (the Models tab), else the configured one."""
        if backend is not None:
            self.backends[ref] = check_backend(backend)
        path = hub.resolve(ref)
        family, config = checked_folder(path, ref)
        if family.base_families:
            return self._add_adapter(ref, path, family, config, device)
        size = _weights_bytes(path, family)
        target = _placement(family, config, size, device or self.override(ref))
        dtype = devices.dtype_for("cpu" if family.remote else target)
        load = loader_for(family, self.backends.get(ref) or self.backends.get("*"), ref not in self.backends)
        try:
            loaded = self.run(target, load, path, config, target, dtype)
        except UserError:
            raise
        except Exception as e:  # a truncated or mismatched safetensors file, an unreadable folder
            raise ModelLoadError(f"{ref}: the weights could not be loaded ({type(e).__name__}: {e})") from None
        entry = LoadedModel(ref, family, path, loaded.model, target, dtype, loaded.extras.get("bytes", size), config,
                            loaded.tokenizer, loaded.extras)
        with self._lock:
            old = self._models.pop(ref, None)
            self._models[ref] = entry
            for rider in [m for m in self._models.values() if m.extras.get("base") == ref]:
                self._models.pop(rider.ref)  # adapters of the old copy: added to the new one when next asked for
        if old is not None:
            self.run(old.device, _free, old)
        return entry

    def _add_adapter(self, ref: str, path: Path, family: Family, config: dict, device: str | None) -> LoadedModel:
        """Add the adapter at `path` to its base, loading the base first if it is not (once, however many of its
        adapters are asked for). The base must be here already (a local hub id, a folder, an HF id in the cache):
        an adapter never makes the server download."""
        name = adapters.base_ref(config, ref)
        try:
            hub.resolve(name, offline=True)
        except (UserError, OSError) as e:
            raise ModelLoadError(f"{ref}: its base model {name[:100]} is not here ({str(e)[:200]}); add the base "
                                 "first (Models tab, or python -m aigc_hub add)") from None
        kind = self.folder_of(name)[0].name  # from its folder: a base of another family is never loaded
        if kind not in family.base_families:
            raise ModelLoadError(f"{ref} is a LoRA adapter for {' or '.join(family.base_families)} models; its base "
                                 f"{name[:100]} is a {kind} model")
        base = self.get(name, device or self.override(ref))
        if "backend" in base.extras:  # another runtime's model has no layers to add an adapter to
            raise ModelLoadError(f"{ref}: LoRA adapters are served on transformers; its base {name[:100]} is loaded "
                                 f"on {base.extras['backend']} (load the base with the transformers backend)")
        tokenizer = base.tokenizer
        if tokenizer is not None and (path / "tokenizer_config.json").is_file():  # an adapter may ship its own (an
            # added chat template)
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)

        def add() -> Any:
            shared = base.extras.setdefault("adapters", adapters.Adapters(base.model))
            with self._lock:
                old = self._models.get(ref)
            if old is not None and old.extras.get("base") == name:
                shared.remove(ref)  # loaded again (a push replaced it): the new weights
            return shared.add(ref, path)

        view = self.run(base.device, add)
        extras = {k: v for k, v in base.extras.items() if k != "adapters"}  # a diffusion base's scheduler, ...
        entry = LoadedModel(ref, family, path, view, base.device, base.dtype, _weights_bytes(path, family),
                            base.config, tokenizer, {**extras, "base": name, "adapter_config": config,
                                                     "served_as": base.kind})
        with self._lock:
            self._models[ref] = entry
        return entry

    def unload(self, ref: str) -> bool:
        """Free `ref`: an adapter leaves its base; a base takes its adapters with it."""
        with self._lock:
            entry = self._models.pop(ref, None)
            riders = [m for m in self._models.values() if m.extras.get("base") == ref] if entry else []
            for rider in riders:
                self._models.pop(rider.ref, None)
        if entry is None:
            return False
        if entry.extras.get("base"):
            with self._lock:
                base = self._models.get(entry.extras["base"])
            if base is not None and "adapters" in base.extras:
                self.run(entry.device, base.extras["adapters"].remove, ref)
            return True
        self.run(entry.device, _free, entry)  # after the work queued before it: never under a running generation
        return True


def _fill(future: Future, fn: Callable, args: tuple, kwargs: dict) -> None:
    try:
        future.set_result(fn(*args, **kwargs))
    except BaseException as e:
        future.set_exception(e)


def _placement(family: Family, config: dict, size: int, wanted: str | None) -> str:
    """The device a model of `size` bytes goes on; a remote model's lane is its server (`remote:host:port`), so that
    waiting for it never holds a local device's lane."""
    if family.remote:
        from urllib.parse import urlparse

        return f"remote:{urlparse(config[remote.KEY]['base_url']).netloc}"
    return devices.place(size, wanted)


def _weights_bytes(path: Path, family: Family) -> int:
    return sum(p.stat().st_size for p in path.glob(family.weights))


def _free(entry: LoadedModel) -> None:
    entry.model = None
    gc.collect()
    if entry.device.startswith("cuda"):
        torch.cuda.empty_cache()
