"""Seconds per training step of every Train-tab recipe and preset, as a job runs it: each starts through the job
queue (aigc_hub.jobs, the tab's path) on real data from ../shared/data, runs until its progress bar has passed
`--steps` steps (or `--seconds`), and is stopped; the speed is the bar's (tqdm's recent rate). These are the
figures `aigc_hub/jobs/estimate.py` shows before Start on a server that has not trained that preset yet.

    python benchmarks/bench_presets.py [--steps 30] [--seconds 150] [--recipe gan ...]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.chdir(REPO)  # jobs run training/<script> from the repository

DATA_ROOT = REPO.parent / "shared" / "data"
DATA = {"image": "images/mnist/mnist.npz", "text": "text/tinyshakespeare/input.txt",
        "pairs": "translation/en-zh/en-zh.jsonl"}


def main() -> None:
    from aigc_hub.jobs import JobManager, read
    from aigc_hub.recipes import RECIPES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="read the speed once the bar passes this step")
    parser.add_argument("--seconds", type=float, default=150, help="... or after this long running")
    parser.add_argument("--recipe", action="append", choices=list(RECIPES), help="default: all")
    parser.add_argument("--preset", action="append", help="default: every preset of each recipe")
    args = parser.parse_args()
    if not DATA_ROOT.is_dir():
        raise SystemExit(f"needs {DATA_ROOT} (see its README)")
    import torch

    print(f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; a job of 1,000 steps each, "
          f"speed read at step {args.steps} or after {args.seconds:.0f} s")
    with tempfile.TemporaryDirectory() as home:
        os.environ["AIGC_HUB_HOME"] = str(Path(home) / "hub")
        jobs = JobManager(Path(home) / "jobs", devices=["cpu"], data_root=DATA_ROOT)
        for key in args.recipe or list(RECIPES):
            recipe = RECIPES[key]
            for preset in [p for p in recipe.presets if not args.preset or p in args.preset]:
                job = jobs.start(key, DATA[recipe.data], preset, 1000, f"bench/{key}-{preset}")
                began, progress = None, None
                while True:
                    job = jobs.get(job.id)
                    if job.state in ("failed", "done", "stopped"):
                        break
                    if job.state == "running":
                        began = began or time.monotonic()
                        progress = read(jobs.store.log(job.id), jobs.store.output(job.id), job.steps)
                        if progress.steps_per_s and (progress.step >= args.steps or
                                                     time.monotonic() - began > args.seconds):
                            break
                    time.sleep(0.5)  # a job's progress is a file its subprocess writes: polled, as the tab does
                if jobs.get(job.id).state in ("queued", "running"):
                    jobs.stop(job.id)
                while jobs.get(job.id).state in ("running", "stopping", "queued"):
                    time.sleep(0.5)
                if progress is None or not progress.steps_per_s:
                    print(f"  {key:12s} {preset:6s} no speed measured: {job.state} {job.message[:200]}")
                    continue
                print(f"  {key:12s} {preset:6s} {1 / progress.steps_per_s:7.3f} s a step (at step {progress.step})")


if __name__ == "__main__":
    main()
