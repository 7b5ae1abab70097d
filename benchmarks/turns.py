"""Timing variants that take turns (so a busy moment of the machine falls on all of them) and printing each against
the baseline of the same run: the loop benchmarks share it."""

from __future__ import annotations

import statistics
from typing import Callable


def take_turns(variants: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Each variant's figure (ms a step) per repeat, the variants run one after the other in every repeat."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            times[name].append(run())
    return times


def print_against(times: dict[str, list[float]], baseline: str, width: int = 55) -> None:
    """One line per variant: its range of ms a step and its ratio to the baseline's, per repeat and median."""
    base = times[baseline]
    for name, values in times.items():
        ratios = [v / b for v, b in zip(values, base)]
        print(f"  {name:{width}s} {min(values):6.1f}–{max(values):6.1f} ms a step; per repeat {min(ratios):.3f}–"
              f"{max(ratios):.3f}x the {baseline}, median {statistics.median(ratios):.3f}x")
