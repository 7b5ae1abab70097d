"""The app core that every front end shares (the tabs, /v1, MCP through the tabs, the Train tab's jobs): settings,
the model registry, one service per task, the device lanes, and how much the app takes at once. No Gradio here.

A request enters through `admit(ref, task)`: the hub must list `ref` for `task` (models pushed while the app runs
count), then the request holds a slot on the lane of the device its model is on (or will be placed on). A front end
only words the refusal for its wire format: UnknownModel and WrongTask are UserErrors with the facts as attributes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from . import added_models, hub
from .config import AppConfig
from .errors import UserError
from .families import TASKS
from .services import Lanes, ModelRegistry, service_for

SCRATCH_TTL_S = 3600


class UnknownModel(UserError):
    def __init__(self, ref: object, task: str) -> None:
        self.ref, self.task = str(ref)[:100], task
        super().__init__(f"unknown model {self.ref!r} for the {TASKS[task].title} tab: pick one from the list "
                         "(↻ refreshes it)")


class WrongTask(UserError):
    def __init__(self, ref: str, task: str, serves: str) -> None:
        self.ref, self.task, self.serves = ref, task, serves
        super().__init__(f"{ref} is a model for {serves}, not for {task}")


@dataclass(frozen=True)
class Capacity:
    """How much the app takes at once, from the settings, in one place: per device lane the requests in flight
    (with batching, enough to meet in a batch) and those that may wait; Gradio's queue no tighter than one lane's
    in flight + waiting (or it would refuse what the lane admits); the API's threads one per request in flight or
    waiting, and a few for the listings."""

    in_flight: int
    waiting: int

    @classmethod
    def of(cls, config: AppConfig) -> "Capacity":
        slots = max(config.lane_concurrency, config.max_batch) if config.batching else config.lane_concurrency
        return cls(slots, config.queue_size)

    @property
    def queue(self) -> int:
        return self.in_flight + self.waiting

    @property
    def api_threads(self) -> int:
        return self.queue + 8


@dataclass
class AppContext:
    """Everything a front end needs, built once per app."""

    config: AppConfig
    registry: ModelRegistry
    services: dict[str, Any] = field(init=False)  # task → its service, from the family table
    capacity: Capacity = field(init=False)
    lanes: Lanes = field(init=False)
    scratch_root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="aigc-hub-")))

    def __post_init__(self) -> None:
        # ZeroGPU Spaces attach a GPU only inside this process's @spaces.GPU functions: no engine process there.
        zero_gpu = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "true")
        if self.config.engine == "process" and not zero_gpu:  # one engine process per device (aigc_hub/engine)
            from .engine.services import engine_services

            self.registry, self.services = engine_services(self.registry, self.config)
        else:
            self.services = {task: service_for(task, self.registry, **vars(self.config)) for task in TASKS}
        self.capacity = Capacity.of(self.config)
        self.lanes = Lanes(self.capacity.in_flight, self.capacity.waiting)

    def service(self, task: str) -> Any:
        return self.services[task]

    @functools.cached_property
    def jobs(self) -> Any:
        """The training jobs (aigc_hub.jobs), made when the Train tab or its API first needs them."""
        from .jobs import JobManager, Limits

        root = Path(self.config.jobs_dir) if self.config.jobs_dir else hub.hub_home().parent / "jobs"
        limits = Limits(self.config.max_queued_jobs, self.config.max_queued_jobs_per_user, self.config.hf_namespaces)
        return JobManager(root, data_root=Path(self.config.data_dir) if self.config.data_dir else None, limits=limits)

    def scratch(self, prefix: str) -> Path:
        """A fresh folder for one request's files; folders older than an hour are deleted here and the whole root
        when the app exits (the UI registers that)."""
        cutoff = time.time() - SCRATCH_TTL_S
        for old in self.scratch_root.iterdir():
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.scratch_root))

    def remove_scratch(self) -> None:
        shutil.rmtree(self.scratch_root, ignore_errors=True)

    def close(self) -> None:
        """Stop the engine processes (if any) and remove the scratch folders."""
        close = getattr(self.registry, "close", None)
        if close is not None:
            close()
        self.remove_scratch()

    def models(self, task: str | None = None) -> list[hub.ModelEntry]:
        """The hub's models (cached listing), those of one task when `task` is given. The tabs' configured models
        are listed too (an HF id or a folder set as `image_model` need not be repeated in `extra_models`)."""
        entries = added_models.listed([*self.config.models.values(), *self.config.extra_models])
        return [e for e in entries if task is None or e.task == task]

    def refresh(self, task: str | None = None) -> list[str]:
        """Read the hub again (the ↻ buttons); the refs of `task`."""
        hub.invalidate()
        return [e.ref for e in self.models(task)]

    def entry(self, ref: str, task: str | None = None) -> hub.ModelEntry | None:
        return next((e for e in self.models(task) if e.ref == ref), None)

    def default_model(self, task: str) -> str | None:
        """The configured model of a task's tab when the hub lists it, else the first the hub lists."""
        refs = [e.ref for e in self.models(task)]
        wanted = self.config.model_for(task)
        return wanted if wanted in refs else (refs[0] if refs else None)

    def check(self, ref: object, task: str) -> str:
        """`ref` if the hub lists it for `task` now; UnknownModel or WrongTask otherwise."""
        if isinstance(ref, str) and self.entry(ref, task) is not None:
            return ref
        other = self.entry(ref) if isinstance(ref, str) else None
        if other is not None and other.task:
            raise WrongTask(ref, task, other.task)  # type: ignore[arg-type]
        raise UnknownModel(ref, task)

    @contextlib.contextmanager
    def lane(self, ref: str) -> Iterator[str]:
        """Hold a slot on the lane of the device `ref` is on (or will be placed on) for the block."""
        device = self.registry.planned_device(ref)
        with self.lanes.hold(device):
            yield device

    @contextlib.contextmanager
    def admit(self, ref: object, task: str) -> Iterator[str]:
        """The one way in for a request: `ref` checked against the listing for `task`, then a slot on its device's
        lane held for the block (QueueFull when the lane's line is full). Yields the checked ref."""
        checked = self.check(ref, task)
        with self.lane(checked):
            yield checked
