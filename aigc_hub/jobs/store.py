"""Training jobs on disk: one folder per job under the jobs root, its state in `job.json` (written atomically), the
script's log, its prepared data and its output folder. The server keeps nothing about a job only in memory, so the
job list survives a page reload and a server restart."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATES = ("queued", "running", "stopping", "stopped", "failed", "finished", "interrupted")
ENDED = ("stopped", "failed", "finished", "interrupted")
RESUMABLE = ("stopped", "failed", "interrupted")
JOB_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")


@dataclass
class Job:
    id: str
    recipe: str  # a key of aigc_hub.recipes.RECIPES: gan | diffusion | text | translation
    data: str  # what the user named: an uploaded file's name, a dataset name, a file of the data folder
    preset: str
    steps: int
    hub_id: str
    argv: list[str]  # the script and its arguments (resume adds --resume_from_checkpoint latest)
    device: str = "cpu"
    state: str = "queued"
    pid: int | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    message: str = ""  # why it failed, where it was published, what to do next
    published: str | None = None
    runs: int = 0  # starts, resumes included
    owner: str | None = None  # the logged-in user who started it (None: no login); their waiting jobs are counted

    @property
    def resumable(self) -> bool:
        return self.state in RESUMABLE


class JobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def new_id() -> str:
        return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]

    def folder(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
            raise KeyError(job_id)
        return self.root / job_id

    def log(self, job_id: str) -> Path:
        return self.folder(job_id) / "train.log"

    def output(self, job_id: str) -> Path:
        return self.folder(job_id) / "output"

    def data(self, job_id: str) -> Path:
        return self.folder(job_id) / "data"

    def save(self, job: Job) -> None:
        folder = self.folder(job.id)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".job.json.{uuid.uuid4().hex[:6]}"
        tmp.write_text(json.dumps(asdict(job), indent=1), encoding="utf-8")
        os.replace(tmp, folder / "job.json")  # a reader never sees half a file

    def load(self, job_id: str) -> Job:
        path = self.folder(job_id) / "job.json"
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(fields, dict) and "task" in fields:  # written before recipes had their name
                fields["recipe"] = fields.pop("task")
            return Job(**fields)
        except (OSError, ValueError, TypeError) as e:
            raise KeyError(job_id) from e

    def all(self) -> list[Job]:
        """Every job, newest first; folders that hold no readable job are skipped."""
        jobs = []
        for folder in self.root.iterdir():
            if JOB_ID.fullmatch(folder.name):
                try:
                    jobs.append(self.load(folder.name))
                except KeyError:
                    continue
        return sorted(jobs, key=lambda j: j.created, reverse=True)
