"""How long a job will train, said before Start (the Train tab): its steps × seconds a step.

The seconds a step come from this server's own history when it has one: the speed the progress bar of its latest
job of the same recipe, preset (or base model) and kind of device showed. Otherwise, on a CPU, from the project's
figures for 2 cores (`benchmarks/bench_presets.py`: each preset run as a job on real data). They count training
steps only: sample grids, checkpoints and the final evaluation add to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .commands import MAX_STEPS
from .progress import Progress, bar

if TYPE_CHECKING:
    from .manager import JobManager

# Seconds a step as a job runs each preset on 2 CPU cores (x86_64, torch 2.13 CPU; MNIST, Tiny Shakespeare, Tatoeba
# en-zh), `python benchmarks/bench_presets.py`, 2026-12-04.
CPU_SECONDS_PER_STEP = {
    ("gan", "small"): 0.036, ("gan", "tiny"): 0.010, ("gan", "base"): 0.103,
    ("diffusion", "tiny"): 0.877, ("diffusion", "small"): 1.910, ("diffusion", "base"): 5.550,
    ("text", "nano"): 0.125, ("text", "micro"): 0.309, ("text", "mini"): 0.461, ("text", "small"): 0.889,
    ("translation", "tiny"): 0.052, ("translation", "small"): 0.124, ("translation", "base"): 0.694,
}
REFERENCE = "2 CPU cores, the project's measurement"


def seconds_per_step(jobs: "JobManager", recipe: str, preset: str, device: str) -> tuple[float, str] | None:
    """The seconds a step for a new job, and where that figure comes from; None when nothing says."""
    kind = device.partition(":")[0]
    for job in sorted(jobs.jobs(), key=lambda j: j.created, reverse=True):
        if job.recipe == recipe and job.preset == preset and job.device.partition(":")[0] == kind:
            p = Progress()
            bar(jobs.store.log(job.id), p)
            if p.steps_per_s:
                return 1 / p.steps_per_s, f"job {job.id} ran at that speed on this server"
    if kind == "cpu" and (recipe, preset) in CPU_SECONDS_PER_STEP:
        return CPU_SECONDS_PER_STEP[recipe, preset], REFERENCE
    return None


def expected(jobs: "JobManager", recipe: str, preset: str, steps: object) -> str:
    """One line for the Train tab: about how long `steps` steps of `preset` take on the device a job would get."""
    if not isinstance(steps, (int, float)) or not 1 <= steps <= MAX_STEPS:  # (NaN and infinity too) Start refuses
        return ""
    device = jobs.devices[0]
    found = seconds_per_step(jobs, recipe, preset, device)
    if found is None:
        return (f"_Expected time: the live view shows it once training starts (nothing measured yet for this "
                f"{'preset' if preset in _presets(recipe) else 'model'} on {device})._")
    each, source = found
    return (f"_Expected: about {_duration(each * steps)} of training on {device} for {int(steps):,} steps "
            f"({each:.3g} s a step: {source}); samples, checkpoints and the final evaluation add to it._")


def _presets(recipe: str) -> tuple[str, ...]:
    from ..recipes import RECIPES

    return tuple(RECIPES[recipe].presets) if recipe in RECIPES else ()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
