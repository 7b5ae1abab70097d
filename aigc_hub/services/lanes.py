"""Device lanes: requests queue on the lane of the device their model is on, not on a lane fixed when the UI was built.

Gradio's `concurrency_id` is fixed per event when the app is built, so it cannot follow a model that the Models tab
moves, or a model picked from a dropdown that lives on another GPU. The app therefore admits model requests into
Gradio's queue without a per-event limit and gates them here: each device has `slots` requests in flight (the
device's worker thread still runs their model work in turn; a second slot overlaps one request's encoding with
another's compute) and at most `max_waiting` waiting, beyond which a request is refused at once ("queue full").
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import UserError


class QueueFull(UserError):
    """Too many requests wait for one device; the message says to try again."""


@dataclass
class _Lane:
    in_flight: int = 0
    waiting: deque = field(default_factory=deque)  # tickets, first come first served


class Lanes:
    def __init__(self, slots: int = 2, max_waiting: int = 64) -> None:
        self.slots, self.max_waiting = slots, max_waiting
        self._lanes: dict[str, _Lane] = {}
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, device: str) -> Iterator[None]:
        """Hold one of `device`'s slots for the block, in arrival order; refuse at once when the line is full."""
        with self._changed:
            lane = self._lanes.setdefault(device, _Lane())
            if lane.in_flight >= self.slots or lane.waiting:
                if len(lane.waiting) >= self.max_waiting:
                    raise QueueFull(f"the queue for {device} is full ({len(lane.waiting)} requests waiting): "
                                    "try again in a moment")
                ticket = object()
                lane.waiting.append(ticket)
                try:
                    self._changed.wait_for(lambda: lane.waiting[0] is ticket and lane.in_flight < self.slots)
                finally:
                    lane.waiting.remove(ticket)
                    self._changed.notify_all()  # the next in line may fit now too
            lane.in_flight += 1
        try:
            yield
        finally:
            with self._changed:
                lane.in_flight -= 1
                self._changed.notify_all()

    def busy(self) -> dict[str, tuple[int, int]]:
        """device → (requests in flight, requests waiting), for the devices with any."""
        with self._changed:
            return {d: (lane.in_flight, len(lane.waiting)) for d, lane in self._lanes.items()
                    if lane.in_flight or lane.waiting}
