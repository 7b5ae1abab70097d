"""Batched decoding for causal LMs: the text streams of one model decoded together, one token per step.

Each model has one `DecodeLoop` on its device's worker thread. A stream joins between two steps: its prompt is read
in one forward pass of its own (prefill), its first token sampled, and its KV cache put beside the others',
left-padded to a common length (the attention mask hides the padding, the position ids count each stream's own
tokens). Every step then feeds each stream's last token through one batched forward pass and chooses every row's
next token in one pass (sampling.py), each with that stream's own settings, random generator (seeded: the same seed
gives the same text) and repetition penalty; then each stream checks its own stop strings. A stream leaves when it ends (end-of-text, its token budget, a stop string, Stop, or an error of its
own), without ending the others. A stream whose window fills slides it (keeps the last half) and joins again. With
batching off each stream runs alone, in arrival order, through the same code.

The loop gives the worker back every `SLICE_S`, so that image and translation work for the same device is not
starved by a long run of text streams. Caches are merged only for models whose cache is transformers' plain
`DynamicCache` (GPT-2, Llama, Qwen, ...); others (sliding-window or state-space caches) decode one stream at a time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from .sampling import RowSettings, model_rules, next_tokens

SLICE_S = 0.05  # the longest the loop holds the device's worker before other work on it gets a turn


@dataclass(eq=False)
class DecodeJob:
    """One stream: its window of token ids (prompt, then what it generated), settings and outputs."""

    seq: torch.Tensor  # (1, L) ids on the model's device; the last one is not in the cache yet
    max_new_tokens: int
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    seed: int
    context: int
    stop_event: threading.Event
    emit: Callable[[int], None]  # a new token id, as it is sampled
    stop_strings: Any = None  # transformers' StopStringCriteria, or None
    made: int = 0
    future: Future = field(default_factory=Future)  # done when the stream ends; an exception of its own, if any

    def __post_init__(self) -> None:
        self.sampling = RowSettings(self.temperature, self.top_k, self.top_p, self.repetition_penalty, self.seed)

    def take(self, token: int) -> None:
        """Append the sampled token to the window and emit it."""
        self.seq = torch.cat([self.seq, self.seq.new_full((1, 1), token)], 1)
        self.made += 1
        self.emit(token)

    def finished(self, token: int, eos: set[int]) -> bool:
        if token in eos or self.made >= self.max_new_tokens or self.stop_event.is_set():
            return True
        return bool(self.stop_strings is not None and self.stop_strings(self.seq, None).any())


class DecodeLoop:
    """The streams of one model on one device (see the module docstring)."""

    def __init__(self, model: Any, submit: Callable[..., Future], device: str, batching: bool, max_batch: int,
                 on_idle: Callable[["DecodeLoop"], None]) -> None:
        self.model, self.submit, self.device = model, submit, device
        self.max_batch = max_batch if batching and mergeable_model(model) else 1
        self.on_idle = on_idle  # the owner forgets an idle loop (a later stream starts a new one)
        config = model.generation_config
        eos = config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        self.rules = model_rules(config, model.device)
        self.inbox: deque[DecodeJob] = deque()
        self.rows: list[DecodeJob] = []  # the batch, in cache row order
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # (B, T): 0 where a row is left-padded
        self.lengths: list[int] = []  # each row's own token count in the cache: its next position id
        self.lock = threading.Lock()
        self.scheduled = False
        self.closed = False

    def add(self, job: DecodeJob) -> bool:
        """Queue a stream; False if this loop has gone idle and been closed (the caller makes a new one)."""
        with self.lock:
            if self.closed:
                return False
            job.sampling.with_model_rules(self.rules)
            self.inbox.append(job)
            if not self.scheduled:
                self.scheduled = True
                self.submit(self.device, self.run)
        return True

    @torch.no_grad()
    def run(self) -> None:
        """On the device worker: admit waiting streams, step the batch; give the worker back after SLICE_S."""
        deadline = time.perf_counter() + SLICE_S
        try:
            while True:
                self._admit(deadline)
                if not self.rows:
                    with self.lock:
                        if not self.inbox:
                            self.scheduled, self.closed = False, True
                            break
                    continue
                self._step()
                if time.perf_counter() > deadline:
                    self.submit(self.device, self.run)
                    return
        except BaseException as e:  # a failure of the batch as a whole (a forward pass): every stream in it ends
            with self.lock:
                jobs, self.rows = [*self.rows, *self.inbox], []
                self.inbox.clear()
                self.scheduled, self.closed = False, True
            for job in jobs:
                _end(job, e)
        self.on_idle(self)

    # --- joining -----------------------------------------------------------------------------------------------
    def _admit(self, deadline: float) -> None:
        while True:
            with self.lock:
                if not self.inbox or len(self.rows) >= self.max_batch:
                    return
                if self.rows and time.perf_counter() > deadline:  # the rest joins in a later slice
                    return
                job = self.inbox.popleft()
            if job.stop_event.is_set():  # stopped while it waited
                _end(job)
                continue
            try:
                self._prefill(job)
            except Exception as e:  # this stream's own failure (its prompt, its sampling)
                _end(job, e)

    def _prefill(self, job: DecodeJob) -> None:
        ids = job.seq
        cache = DynamicCache(config=self.model.config)
        positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        out = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), position_ids=positions, cache=cache,
                         use_cache=True)
        token = self._choose([job], out.logits[:, -1, :])[0]
        if isinstance(token, Exception):
            raise token
        job.take(token)
        if job.finished(token, self.eos):
            _end(job)
            return
        if job.seq.shape[1] >= job.context:  # a window of one prompt-and-token: slide before it joins
            self._slide(job)
            return
        self._join(job, cache, ids.shape[1])  # (the forward pass filled the cache in place)

    def _join(self, job: DecodeJob, cache: DynamicCache, length: int) -> None:
        mask = torch.ones(1, length, dtype=torch.long, device=job.seq.device)
        if not self.rows:
            self.rows, self.cache, self.mask, self.lengths = [job], cache, mask, [length]
            return
        if not (_mergeable(cache) and _mergeable(self.cache)):
            raise RuntimeError("this model's cache cannot be batched")  # not reached: max_batch is 1 for such models
        width = max(self.mask.shape[1], length)
        old, new = self.cache.layers, cache.layers
        for a, b in zip(old, new):
            a.keys = torch.cat([_left_pad(a.keys, width), _left_pad(b.keys, width)])
            a.values = torch.cat([_left_pad(a.values, width), _left_pad(b.values, width)])
        self.mask = torch.cat([_left_pad(self.mask, width, dim=1), _left_pad(mask, width, dim=1)])
        self.rows.append(job)
        self.lengths.append(length)

    def _slide(self, job: DecodeJob) -> None:
        """The window is full: keep its last half and read it again (see TextService's docstring)."""
        job.seq = job.seq[:, -max(1, job.context // 2):]
        with self.lock:
            self.inbox.appendleft(job)

    # --- one step ----------------------------------------------------------------------------------------------
    def _step(self) -> None:
        ids = torch.cat([job.seq[:, -1:] for job in self.rows])
        mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], 1)
        positions = torch.tensor(self.lengths, device=ids.device).unsqueeze(1)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=self.cache, use_cache=True)
        self.mask = mask
        self.lengths = [n + 1 for n in self.lengths]
        keep, sliding = [], []
        for i, (job, token) in enumerate(zip(self.rows, self._choose(self.rows, out.logits[:, -1, :]))):
            if isinstance(token, Exception):  # this stream's own failure: it leaves, the others go on
                _end(job, token)
                continue
            job.take(token)
            if job.finished(token, self.eos):
                _end(job)
            elif job.seq.shape[1] >= job.context:
                sliding.append(job)
            else:
                keep.append(i)
        if len(keep) < len(self.rows):
            self._select(keep)
        for job in sliding:
            self._slide(job)

    def _choose(self, jobs: list[DecodeJob], logits: torch.Tensor) -> list[int | Exception]:
        """Each row's next token, all rows at once (sampling.py); if that fails, row by row, so that a failure
        stays with the row that caused it (as an exception in its place)."""
        try:
            return next_tokens([job.sampling for job in jobs], [job.seq for job in jobs], logits, self.rules)
        except Exception as e:
            if len(jobs) == 1:
                return [e]
        chosen: list[int | Exception] = []
        for i, job in enumerate(jobs):
            try:
                chosen.append(next_tokens([job.sampling], [job.seq], logits[i : i + 1], self.rules)[0])
            except Exception as e:
                chosen.append(e)
        return chosen

    def _select(self, keep: list[int]) -> None:
        """Keep only these rows; drop the columns of padding no remaining row needs."""
        self.rows = [self.rows[i] for i in keep]
        self.lengths = [self.lengths[i] for i in keep]
        if not keep:
            self.cache = self.mask = None
            return
        index = torch.tensor(keep, device=self.mask.device)
        self.mask = self.mask[index]
        first = int((self.mask.sum(0) > 0).nonzero()[0])
        self.mask = self.mask[:, first:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[index][..., first:, :]
            layer.values = layer.values[index][..., first:, :]


def mergeable_model(model: Any) -> bool:
    """Whether the model's streams can share a batch: its cache is a plain DynamicCache."""
    probe = DynamicCache(config=model.config)
    return _mergeable(probe)


def _mergeable(cache: Any) -> bool:
    return isinstance(cache, DynamicCache) and all(type(layer) is DynamicLayer for layer in cache.layers)


def _left_pad(x: torch.Tensor, width: int, dim: int = -2) -> torch.Tensor:
    missing = width - x.shape[dim]
    if missing <= 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x.new_zeros(shape), x], dim)


def _end(job: DecodeJob, error: BaseException | None = None) -> None:
    if job.future.done():
        return
    if error is None:
        job.future.set_result(job.made)
    else:
        job.future.set_exception(error)
