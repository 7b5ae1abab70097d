"""What a job shows while it runs, read from what its script writes: the step, speed and time left from its progress
bar in the log, the loss curves and evaluation figures from its tensorboard logs (read with tensorboard's own
reader), the newest sample grid of an image script, the newest text samples of a text or translation script."""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BAR = re.compile(r"steps:\s+\d+%\|[^|]*\|\s*(\d+)/(\d+) \[([0-9:]+)<([0-9:?]+),\s*([0-9.?]+)\s*(s/it|it/s)")
TAIL_BYTES = 64 << 10
COLLAPSE_POINTS, COLLAPSE_LOSS_D = 3, 0.05  # loss_d below this at the last logged points: D wins, G collapsed
NOTICE = re.compile(r"^notice: (.{1,600})$", re.M)  # what a script tells its user (training.common.notice)


@dataclass
class Progress:
    step: int = 0
    total: int = 0
    elapsed: str = ""
    remaining: str = ""
    steps_per_s: float | None = None
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # tag → (step, value), in order
    figures: dict[str, float] = field(default_factory=dict)  # each tag's latest value
    sample: Path | None = None  # the newest sample grid (image scripts)
    texts: dict[str, str] = field(default_factory=dict)  # the newest text samples (text, translation scripts)
    notices: list[str] = field(default_factory=list)  # the script's notices, in order, each once

    def warnings(self) -> list[str]:
        """What the curves say has gone wrong, in words a user can act on (the live view shows them)."""
        said = []
        if any(math.isnan(v) or math.isinf(v) for points in self.curves.values() for _, v in points[-1:]):
            said.append("a loss is not a number: training diverged; start again with a lower learning rate")
        d = [v for _, v in self.curves.get("loss_d", [])[-COLLAPSE_POINTS:]]
        if len(d) == COLLAPSE_POINTS and max(d) < COLLAPSE_LOSS_D:
            said.append("the discriminator wins outright (loss_d ≈ 0): the generator has likely collapsed (the "
                        "samples look alike or blank). On little data: more images, more steps (on 48 digits a GAN "
                        "drew blobs at 1,000 steps and every class at 3,000), or the diffusion recipe, which drew "
                        "varied images where a GAN drew one per class")
        return said


def read(log: Path, output: Path, total: int) -> Progress:
    p = Progress(total=total)
    bar(log, p)
    _tensorboard(output / "logs", p)
    p.step = max(p.step, max((s for points in p.curves.values() for s, _ in points[-1:]), default=0))
    samples = sorted((output / "samples").glob("step-*.png"))
    p.sample = samples[-1] if samples else None
    return p


def log_tail(log: Path, size: int = TAIL_BYTES, head: bool = False) -> str:
    """The last (`head`: the first) `size` bytes of a log, as text."""
    try:
        with open(log, "rb") as f:
            if not head:
                f.seek(max(0, f.seek(0, 2) - size))
            return f.read(size).decode("utf-8", errors="replace")
    except OSError:
        return ""


def bar(log: Path, p: Progress) -> None:
    """The step, total, times and speed of the latest progress bar in `log`, and the script's notices."""
    tail = log_tail(log).replace("\r", "\n")
    head = log_tail(log, head=True).replace("\r", "\n")  # most notices come at the start
    p.notices = list(dict.fromkeys(NOTICE.findall(head + "\n" + tail)))
    found = BAR.findall(tail)
    if found:
        step, total, p.elapsed, p.remaining, rate, unit = found[-1]
        p.step, p.total = int(step), int(total)
        if rate != "?" and float(rate) > 0:
            p.steps_per_s = float(rate) if unit == "it/s" else 1 / float(rate)


def _tensorboard(logs: Path, p: Progress) -> None:
    if not logs.is_dir():
        return
    from tensorboard.util import tensor_util

    for folder in sorted({f.parent for f in logs.rglob("events.out.tfevents.*")}):
        events = _accumulator(str(folder))
        events.Reload()  # reads only what was written since the last call
        tags = events.Tags()
        for tag in tags.get("scalars", []):
            points = {e.step: e.value for e in events.Scalars(tag)}  # a resumed run writes its steps again
            p.curves[tag] = sorted(points.items())
            p.figures[tag] = p.curves[tag][-1][1]
        for tag in tags.get("tensors", []):
            last = events.Tensors(tag)[-1]
            value = tensor_util.make_ndarray(last.tensor_proto).flatten()
            if value.size and isinstance(value[0], bytes):
                p.texts[tag.split("/")[0]] = value[0].decode("utf-8", errors="replace")


@functools.lru_cache(maxsize=64)
def _accumulator(folder: str) -> Any:
    """One reader per log folder, kept: the live view asks every second, and a reader resumes where it stopped."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    return EventAccumulator(folder, size_guidance={"scalars": 0, "tensors": 1, "images": 1})
