"""JobManager: training jobs as subprocesses running the project's own training scripts, one job per device at a
time (the others wait, queued), with Stop, Resume and a state on disk that survives the server.

- Start: the data is checked and prepared (uploads.py), the script's command is written into the job, and the job
  waits for a free device. It runs as `python training/train_<recipe>.py ...` (the same command a user types), with its
  device chosen by `CUDA_VISIBLE_DEVICES`; the script pushes the model to the hub when it ends well.
- Stop sends SIGTERM: the script saves a checkpoint of the step it is at and exits 75 (training/stopping.py). Resume
  runs the same command with `--resume_from_checkpoint latest`, to the same final weights as an unstopped run.
- The server never trains in its own process. A job dies with the server (Linux: the parent-death signal is SIGTERM,
  so it still saves its step); a restarted server shows it as interrupted, and Resume goes on from its checkpoint.
- What a client may ask is bounded (`Limits`): jobs waiting in all and per logged-in user, a hub id that names a
  starter, an existing model or another job's target only with `overwrite` (never a starter), the HF Hub only under
  the operator's owners. A job runs in an empty folder of its own, so a dataset "name" never reaches a file of the
  server's (a name is a file of the data folder, resolved here, or a Hugging Face dataset id).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .. import hub
from ..errors import UserError
from .commands import command
from .store import Job, JobStore

REPO = Path(__file__).resolve().parents[2]
STOPPED_EXIT = 75  # training/stopping.py


@dataclass
class Limits:
    """What a client may ask of the job queue (AppConfig's max_queued_jobs, max_queued_jobs_per_user,
    hf_namespaces)."""

    queued: int = 4
    queued_per_user: int = 2
    hf_namespaces: list[str] = field(default_factory=list)


class JobManager:
    def __init__(self, root: Path, devices: list[str] | None = None, data_root: Path | None = None,
                 limits: Limits | None = None) -> None:
        from .. import devices as inventory

        self.limits = limits or Limits()
        self.store = JobStore(Path(root).resolve())
        self.devices = devices or [d.name for d in inventory.inventory() if d.kind == "cuda"] or ["cpu"]
        self.data_root = data_root
        self._lock = threading.RLock()
        self._procs: dict[str, subprocess.Popen] = {}
        # Jobs are started from this one long-lived thread: Linux sends the parent-death signal when the thread
        # that started a child ends, and a request thread may end long before the server does.
        self._launcher = ThreadPoolExecutor(1, thread_name_prefix="aigc-jobs")
        self._recover()

    # --- what the API calls ---------------------------------------------------------------------------------------
    def start(self, recipe: str, data: object, preset: str | None, steps: object, hub_id: str, hf: bool = False,
              trackio: bool = False, overwrite: bool = False, user: str | None = None, base: str | None = None,
              lora_rank: object = 16) -> Job:
        """A new job (queued until its device is free): `hf` publishes to the Hugging Face Hub (HF_TOKEN) instead
        of the local hub, `trackio` logs to trackio beside tensorboard, `overwrite` may replace the model published
        as `hub_id` (never a starter); `user` is the logged-in user, whose waiting jobs are counted; `base` adapts
        that listed model (LoRA of `lora_rank`, 0 = every weight) instead of training from scratch."""
        self._check_target(hub_id, hf, overwrite)
        self._check_room(user)  # before the data is prepared: a full queue refuses at once
        job_id = self.store.new_id()
        try:
            argv, preset_name, n = command(recipe, data, preset, steps, hub_id, self.store.output(job_id),
                                           self.store.data(job_id), self.data_root, hf, trackio, base, lora_rank,
                                           overwrite)
            label = data.name if isinstance(data, Path) else str(data)
            job = Job(job_id, recipe, label, preset_name, n, hub_id, argv, owner=user)
            with self._lock:  # checked again with the job saved under the lock: starts that raced count
                self._check_room(user)
                self.store.save(job)
        except BaseException:
            shutil.rmtree(self.store.folder(job_id), ignore_errors=True)  # what the refused data left behind
            raise
        self._schedule()
        return self.store.load(job_id)

    def free_id(self, stem: str) -> str:
        """`stem`, or `stem-2`, `stem-3`, …: the first id that no model, starter or job of the local hub has (the
        tab's default: publishing over a model must be a choice)."""
        for n in range(1, 1000):
            repo_id = stem if n == 1 else f"{stem}-{n}"
            try:
                self._check_target(repo_id, False, False)
                return repo_id
            except UserError:
                continue
        return stem

    def _check_target(self, hub_id: object, hf: bool, overwrite: bool) -> None:
        """Refuse a hub id that would replace what others are served, unless asked (and never a starter's)."""
        repo_id = hub.validate_repo_id(hub_id)  # type: ignore[arg-type]
        if hf:
            from huggingface_hub import get_token

            owner = repo_id.split("/")[0]
            if owner not in self.limits.hf_namespaces:
                allowed = ", ".join(self.limits.hf_namespaces) or "none (the operator's --hf-namespace)"
                raise UserError(f"this server publishes to the Hugging Face Hub only under: {allowed}; not "
                                f"{owner!r}")
            if not get_token():
                raise UserError("publishing to the Hugging Face Hub needs a token: `hf auth login` or HF_TOKEN on "
                                "the server")
            return
        if hub.is_model_folder(hub.STARTERS_ROOT / repo_id):
            raise UserError(f"{repo_id} is a starter shipped with the app; publish under another id")
        if overwrite:
            return
        source, _ = hub.locate(repo_id)
        if source == "local":
            raise UserError(f"{repo_id} is in the hub already: choose another id, or ask to overwrite it")
        pending = [j for j in self.store.all()
                   if j.hub_id == repo_id and j.state != "finished" and "--hf" not in j.argv]
        if pending:
            raise UserError(f"job {pending[0].id} ({pending[0].state}) publishes as {repo_id} already: choose "
                            "another id, or ask to overwrite it")

    def _check_room(self, user: str | None) -> None:
        waiting = [j for j in self.store.all() if j.state == "queued"]
        if len(waiting) >= self.limits.queued:
            raise UserError(f"{len(waiting)} training jobs are waiting for a device already (the limit): start "
                            "this one when one of them has started")
        if user is not None and sum(j.owner == user for j in waiting) >= self.limits.queued_per_user:
            raise UserError(f"you have {self.limits.queued_per_user} training jobs waiting already (the limit per "
                            "user)")

    def stop(self, job_id: str) -> Job:
        with self._lock:
            job = self._job(job_id)
            if job.state == "queued":
                job.state, job.ended, job.message = "stopped", time.time(), "stopped before it started"
                self.store.save(job)
            elif job.state == "running":
                job.state, job.message = "stopping", "saving a checkpoint of the step it is at"
                self.store.save(job)
                proc = self._procs.get(job_id)
                if proc is not None:
                    proc.send_signal(signal.SIGTERM)
                elif job.pid is not None and _alive(job.pid, job_id):  # started by the server before a restart
                    os.kill(job.pid, signal.SIGTERM)
            elif job.state != "stopping":
                raise UserError(f"job {job_id} is {job.state}: only a queued or running job can be stopped")
            return job

    def resume(self, job_id: str) -> Job:
        with self._lock:
            job = self._job(job_id)
            if not job.resumable:
                raise UserError(f"job {job_id} is {job.state}: only a stopped, failed or interrupted job resumes")
            if "--resume_from_checkpoint" not in job.argv:
                job.argv = [*job.argv, "--resume_from_checkpoint", "latest"]  # no checkpoint yet: from the start
            job.state, job.message, job.ended = "queued", "", None
            self.store.save(job)
        self._schedule()
        return self.store.load(job_id)

    def get(self, job_id: str) -> Job:
        return self._job(job_id)

    def jobs(self) -> list[Job]:
        return self.store.all()

    def running_on(self) -> dict[str, Job]:
        """device → the job training on it now (the Models tab shows it beside the models it serves)."""
        return {j.device: j for j in self.store.all() if j.state in ("running", "stopping")}

    def close(self) -> None:
        """Stop every running job (they save their step) and wait for them: the app is shutting down."""
        with self._lock:
            procs = list(self._procs.values())
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait()
        self._launcher.shutdown(wait=True)

    # --- scheduling -----------------------------------------------------------------------------------------------
    def _job(self, job_id: object) -> Job:
        try:
            return self.store.load(job_id)  # type: ignore[arg-type]
        except KeyError:
            raise UserError(f"no job {str(job_id)[:40]!r} (list_jobs lists them)") from None

    def _schedule(self) -> None:
        """Start the oldest queued job on each free device."""
        with self._lock:
            jobs = self.store.all()
            busy = {j.device for j in jobs if j.state in ("running", "stopping")}
            waiting = sorted((j for j in jobs if j.state == "queued"), key=lambda j: j.created)
            for device in self.devices:
                if device not in busy and waiting:
                    job = waiting.pop(0)
                    job.device, job.state, job.message = device, "running", ""
                    job.started, job.runs = time.time(), job.runs + 1
                    self.store.save(job)
                    busy.add(device)
                    self._procs[job.id] = self._launcher.submit(self._spawn, job).result()
                    threading.Thread(target=self._watch, args=(job.id,), daemon=True,
                                     name=f"aigc-job-{job.id}").start()

    def _spawn(self, job: Job) -> subprocess.Popen:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": job.device.partition(":")[2]
               if job.device.startswith("cuda") else ""}
        if env.pop("AIGC_HUB_SET_OMP", None):  # the server's setting for serving; training keeps OpenMP's default
            env.pop("OMP_WAIT_POLICY", None)
        log = open(self.store.log(job.id), "a", encoding="utf-8")
        log.write(f"\n$ {' '.join(job.argv)}\n")
        log.flush()
        # An empty folder of its own as the working directory: a dataset name that is no file of the data folder
        # reaches the script as a Hugging Face id and never a file beside the server (the script's path is absolute).
        work = self.store.folder(job.id) / "work"
        work.mkdir(exist_ok=True)
        with log:
            proc = subprocess.Popen([sys.executable, str(REPO / job.argv[0]), *job.argv[1:]], cwd=work, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    preexec_fn=_die_with_parent)
        job.pid = proc.pid
        self.store.save(job)
        return proc

    def _watch(self, job_id: str) -> None:
        code = self._procs[job_id].wait()
        with self._lock:
            self._procs.pop(job_id, None)
            job = self.store.load(job_id)
            job.ended, job.pid = time.time(), None
            if code == 0:
                job.state, job.published = "finished", job.hub_id
                job.message = f"published as {job.hub_id}" + (" on the Hugging Face Hub" if "--hf" in job.argv else "")
            elif code == STOPPED_EXIT:
                job.state, job.message = "stopped", "stopped with a checkpoint: Resume goes on from it"
            elif code == -signal.SIGTERM and job.state == "stopping":  # stopped while the script was starting up
                job.state, job.message = "stopped", "stopped before its first step: Resume goes on from its last checkpoint"
            else:
                job.state, job.message = "failed", _last_error(self.store.log(job_id), code)
            self.store.save(job)
        self._schedule()

    def _recover(self) -> None:
        """A job that was running when the server stopped is interrupted (once its process has ended: it saves its
        step first); the queued ones start."""
        for job in self.store.all():
            if job.state in ("running", "stopping"):
                threading.Thread(target=self._interrupted, args=(job,), daemon=True).start()
        self._schedule()

    def _interrupted(self, job: Job) -> None:
        while job.pid is not None and _alive(job.pid, job.id):
            time.sleep(0.5)
        with self._lock:
            job = self.store.load(job.id)
            if job.state in ("running", "stopping") and job.id not in self._procs:
                job.state, job.ended, job.pid = "interrupted", time.time(), None
                job.message = "the server stopped while it ran: Resume goes on from its last checkpoint"
                self.store.save(job)
        self._schedule()


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the server goes (Linux), which the script takes as Stop."""
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _alive(pid: int, job_id: str) -> bool:
    """Whether `pid` is still this job's script (and not another process that got its number)."""
    import psutil

    try:
        return job_id in " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _last_error(log: Path, code: int) -> str:
    try:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()[-40:]]
    except OSError:
        lines = []
    errors = [line for line in lines if line.startswith(("error", "Error", "SystemExit")) or "Error:" in line]
    plain = [line for line in lines if line and "|" not in line and not line.startswith(("$", "20"))]  # not bars, logs
    reason = errors[-1] if errors else plain[-1] if plain else f"the script exited with code {code}"
    return reason[:500] + " (the log has the details)"

