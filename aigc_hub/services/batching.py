"""Dynamic batching: concurrent requests for the same model merged into one call on the device's worker thread.

A request hands its checked work item to `Batcher.call` and waits. The first item of a batch queues one flush on
the device's worker (after an optional collection window, 0 by default), which takes every pending item of that
model and settings (up to `max_rows`) and runs them as one batched call. While the worker is busy, new requests
gather, so batches grow with the load by themselves and a lone request never waits for company. Each request gets
its own result back; if the batched call fails, its items are run again one at a time, so a failure belongs to the
request that caused it and the others complete. Requests are checked before they get here: hostile input is refused
alone and never joins a batch.

`Batcher(enabled=False)` runs each item alone at once (`--no-batching`), so the gain is measurable in one run.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

RunBatch = Callable[[Sequence[Any]], Sequence[Any]]  # items → one result per item, in order


@dataclass
class _Item:
    value: Any
    rows: int
    future: Future = field(default_factory=Future)


@dataclass
class _Group:
    run: RunBatch
    pending: list[_Item] = field(default_factory=list)
    full: threading.Event = field(default_factory=threading.Event)


class Batcher:
    def __init__(self, submit: Callable[..., Future], run: Callable[..., Any], on_worker: Callable[[str], bool],
                 enabled: bool = True, window_s: float = 0.0, max_rows: int = 64) -> None:
        """ModelRegistry's `submit(device, fn, *args)` (queue fn on the device's worker), `run(device, fn)` (run it
        there and wait) and `on_worker(device)` (the caller is that worker: waiting for a flush would deadlock)."""
        self.submit, self.run, self.on_worker = submit, run, on_worker
        self.enabled, self.window_s, self.max_rows = enabled, window_s, max_rows
        self._groups: dict[tuple[str, Hashable], _Group] = {}
        self._lock = threading.Lock()
        self.batch_sizes: list[int] = []  # items per flushed batch, for tests and benchmarks (bounded below)

    def call(self, device: str, key: Hashable, value: Any, rows: int, run: RunBatch) -> Any:
        """`run([value])[0]`, possibly computed together with other requests' values of the same `key` (same model
        and settings); `rows` is what the value adds to the batch (images, lines)."""
        if not self.enabled or rows >= self.max_rows or self.on_worker(device):
            return self.run(device, lambda: run([value])[0])
        item = _Item(value, rows)
        with self._lock:  # a group lives from its first item until a flush empties it: its creator queues the flush
            opener = (device, key) not in self._groups
            group = self._groups.setdefault((device, key), _Group(run))
            group.pending.append(item)
            if sum(i.rows for i in group.pending) >= self.max_rows:
                group.full.set()
        if opener:
            if self.window_s > 0:  # the collection window: requests arriving together go together
                group.full.wait(self.window_s)
            self.submit(device, self._flush, device, key)
        return item.future.result()

    def waiting(self, device: str) -> int:
        """Items waiting for a batch on `device` (tests, the Models tab)."""
        with self._lock:
            return sum(len(g.pending) for (d, _), g in self._groups.items() if d == device)

    def _flush(self, device: str, key: Hashable) -> None:
        """On the device worker: run the pending items of one group (up to max_rows) as one batch."""
        with self._lock:
            group = self._groups[(device, key)]
            batch, rows = [], 0
            while group.pending and (not batch or rows + group.pending[0].rows <= self.max_rows):
                item = group.pending.pop(0)
                batch.append(item)
                rows += item.rows
            group.full.clear()
            if group.pending:  # more than one batch's worth: the rest goes next, behind work already queued
                self.submit(device, self._flush, device, key)
            else:  # the next request opens a new group (with its own `run`: a reloaded model is a new key anyway)
                del self._groups[(device, key)]
            self.batch_sizes = [*self.batch_sizes[-999:], len(batch)]
        try:
            results = group.run([item.value for item in batch])
        except Exception as e:
            if len(batch) == 1:
                batch[0].future.set_exception(e)
            else:
                for item in batch:  # find whose item fails: each alone, the others still get their results
                    _run_alone(item, group.run)
            return
        for item, result in zip(batch, results):
            item.future.set_result(result)


def _run_alone(item: _Item, run: RunBatch) -> None:
    try:
        item.future.set_result(run([item.value])[0])
    except Exception as e:  # handed to the waiting request, raised there
        item.future.set_exception(e)
