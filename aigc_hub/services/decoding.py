"""Batched decoding for causal LMs: the text streams of one model decoded together, one token per step.

Each model has one `DecodeLoop` on its device's worker thread. Streams join between two steps: the prompts of those
waiting are read in one forward pass (prefill; a stream whose prompt fails it is found by reading each alone), their
first tokens chosen, and their KV caches put beside the others', left-padded to a common length (the attention mask
hides the padding, the position ids count each stream's own tokens). Every step then feeds each stream's last token
through one batched forward pass and chooses every row's next token in one pass (sampling.py), each with that
stream's own settings, random generator (seeded: the same seed gives the same text) and repetition penalty; then each
stream checks its own stop strings. A stream leaves when it ends (end-of-text, its token budget, a stop string, Stop,
or an error of its own), without ending the others. A stream whose window fills slides it (keeps the last half) and
joins again. With batching off each stream runs alone, in arrival order, through the same code.

The loop gives the worker back every `SLICE_S`, so that image and translation work for the same device is not starved
by a long run of text streams. Caches are merged only for models whose cache is transformers' plain `DynamicCache`
(GPT-2, Llama, Qwen, ...); others (sliding-window or state-space caches) decode one stream at a time.
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

# The longest the loop holds the device's worker before other work on it gets a turn. A batch of image or
# translation requests holds it 0.1-0.5 s under load, and a short slice leaves text streams a small share (32 users
# × 5 requests, paired runs: text p95 3.2-4.1 s with 0.15 s, 3.0-3.5 s with 0.3 s; image and translation p95 ~2 s
# either way).
SLICE_S = 0.3
PREFILL_TOKENS = 8192  # the most prompt tokens (rows × the longest) read in one prefill pass


@dataclass(eq=False)
class DecodeJob:
    """One stream: its window of token ids (prompt, then what it generated), settings and outputs."""

    prompt: torch.Tensor  # (1, L) ids on the model's device
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
    finish_reason: str | None = None  # once ended: "stop" (end of text, a stop string, Stop) or "length"

    def __post_init__(self) -> None:
        self.sampling = RowSettings(self.temperature, self.top_k, self.top_p, self.repetition_penalty, self.seed)
        self.window: list[int] = self.prompt[0].tolist()  # the last id is not in the cache yet
        self.device = self.prompt.device
        self._seq: torch.Tensor | None = self.prompt

    @property
    def seq(self) -> torch.Tensor:
        """The window as a (1, L) tensor, made when asked for (a prefill, a slide, stop strings, a penalty): a
        tensor per row per step cost a tenth of a batched step."""
        if self._seq is None:
            self._seq = torch.tensor([self.window], device=self.device)
        return self._seq

    def slide(self) -> None:
        """The window is full: keep its last half, to be read again (see TextService's docstring)."""
        self.window, self._seq = self.window[-max(1, self.context // 2):], None

    def take(self, token: int) -> None:
        """Append the chosen token to the window and emit it."""
        self.window.append(token)
        self._seq = None
        self.made += 1
        self.emit(token)

    def finished(self, token: int, eos: set[int]) -> bool:
        if token in eos or self.stop_event.is_set() or (
                self.stop_strings is not None and self.stop_strings(self.seq, None).any()):
            self.finish_reason = "stop"
        elif self.made >= self.max_new_tokens:
            self.finish_reason = "length"
        return self.finish_reason is not None

    def end(self, error: BaseException | None = None) -> None:
        """The stream is over (once): its future gets the token count, or its own error."""
        if self.future.done():
            return
        if error is None:
            self.future.set_result(self.made)
        else:
            self.future.set_exception(error)


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

    @torch.inference_mode()
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
                job.end(e)
        self.on_idle(self)

    # --- joining -----------------------------------------------------------------------------------------------
    def _admit(self, deadline: float) -> None:
        """Prefill the waiting streams, together, as far as the batch has room and the slice has time."""
        while True:
            with self.lock:
                room = self.max_batch - len(self.rows)
                if not self.inbox or room <= 0:
                    return
                if self.rows and time.perf_counter() > deadline:  # the rest joins in a later slice
                    return
                jobs, width = [], 0
                while self.inbox and len(jobs) < room:
                    width = max(width, len(self.inbox[0].window))
                    if jobs and width * (len(jobs) + 1) > PREFILL_TOKENS:
                        break
                    jobs.append(self.inbox.popleft())
            for job in [job for job in jobs if job.stop_event.is_set()]:  # stopped while it waited
                job.end()
            jobs = [job for job in jobs if not job.future.done()]
            if not jobs:
                continue
            made = [job.made for job in jobs]
            try:
                self._prefill(jobs)
            except Exception as e:
                for job, before in zip(jobs, made):  # find whose prompt fails: each alone
                    if job.future.done():
                        continue
                    if len(jobs) == 1 or job.made != before:  # its own failure, or one after its prompt was read
                        job.end(e)
                        continue
                    try:
                        self._prefill([job])
                    except Exception as own:
                        job.end(own)

    def _prefill(self, jobs: list[DecodeJob]) -> None:
        """Read the streams' prompts in one forward pass (left-padded to the longest), choose their first tokens,
        and put the caches of those that go on into the batch."""
        lengths = [len(job.window) for job in jobs]
        width = max(lengths)
        ids = torch.cat([_left_pad(job.seq, width, dim=1) for job in jobs])
        mask = torch.cat([_left_pad(torch.ones_like(job.seq), width, dim=1) for job in jobs])
        positions = (mask.cumsum(1) - 1).clamp_(min=0)
        cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True)
        keep = []
        for i, (job, token) in enumerate(zip(jobs, self._choose(jobs, out.logits[:, -1, :]))):
            if isinstance(token, Exception):
                job.end(token)
                continue
            job.take(token)
            if job.finished(token, self.eos):
                job.end()
            elif len(job.window) >= job.context:  # a window of one prompt-and-token: slide before it joins
                self._slide(job)
            else:
                keep.append(i)
        if keep:  # (the forward pass filled the cache in place)
            mask = _keep_rows(cache, mask, keep)
            self._join([jobs[i] for i in keep], cache, mask, [lengths[i] for i in keep])

    def _join(self, jobs: list[DecodeJob], cache: DynamicCache, mask: torch.Tensor, lengths: list[int]) -> None:
        if not self.rows:
            self.rows, self.cache, self.mask, self.lengths = jobs, cache, mask, lengths
            return
        if not (_mergeable(cache) and _mergeable(self.cache)):
            raise RuntimeError("this model's cache cannot be batched")  # not reached: max_batch is 1 for such models
        width = max(self.mask.shape[1], mask.shape[1])
        for a, b in zip(self.cache.layers, cache.layers):
            a.keys = torch.cat([_left_pad(a.keys, width), _left_pad(b.keys, width)])
            a.values = torch.cat([_left_pad(a.values, width), _left_pad(b.values, width)])
        self.mask = torch.cat([_left_pad(self.mask, width, dim=1), _left_pad(mask, width, dim=1)])
        self.rows += jobs
        self.lengths += lengths

    def _slide(self, job: DecodeJob) -> None:
        """The window is full: keep its last half and read it again."""
        job.slide()
        with self.lock:
            self.inbox.appendleft(job)

    # --- one step ----------------------------------------------------------------------------------------------
    def _step(self) -> None:
        ids = torch.tensor([[job.window[-1]] for job in self.rows], device=self.rows[0].device)
        mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], 1)
        positions = torch.tensor(self.lengths, device=ids.device).unsqueeze(1)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=self.cache, use_cache=True)
        self.mask = mask
        self.lengths = [n + 1 for n in self.lengths]
        keep, sliding = [], []
        for i, (job, token) in enumerate(zip(self.rows, self._choose(self.rows, out.logits[:, -1, :]))):
            if isinstance(token, Exception):  # this stream's own failure: it leaves, the others go on
                job.end(token)
                continue
            job.take(token)
            if job.finished(token, self.eos):
                job.end()
            elif len(job.window) >= job.context:
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
            return next_tokens([job.sampling for job in jobs], [_history(job) for job in jobs], logits, self.rules)
        except Exception as e:
            if len(jobs) == 1:
                return [e]
        chosen: list[int | Exception] = []
        for i, job in enumerate(jobs):
            try:
                chosen.append(next_tokens([job.sampling], [_history(job)], logits[i : i + 1], self.rules)[0])
            except Exception as e:
                chosen.append(e)
        return chosen

    def _select(self, keep: list[int]) -> None:
        """Keep only these rows."""
        self.rows = [self.rows[i] for i in keep]
        self.lengths = [self.lengths[i] for i in keep]
        if keep:
            self.mask = _keep_rows(self.cache, self.mask, keep)
        else:
            self.cache = self.mask = None


def _keep_rows(cache: DynamicCache, mask: torch.Tensor, keep: list[int]) -> torch.Tensor:
    """Keep these rows of a cache (in place) and of its mask, without the columns of padding none of them needs;
    the new mask."""
    if keep == list(range(mask.shape[0])):
        return mask
    index = torch.tensor(keep, device=mask.device)
    mask = mask[index]
    first = int((mask.sum(0) > 0).nonzero()[0])
    for layer in cache.layers:
        layer.keys = layer.keys[index][..., first:, :]
        layer.values = layer.values[index][..., first:, :]
    return mask[:, first:]


def _history(job: DecodeJob) -> torch.Tensor | None:
    return job.seq if job.sampling.history_rules else None  # only rows with a penalty or history rules read it


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
