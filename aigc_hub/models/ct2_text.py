"""Text generation on CTranslate2: a causal LM converted once (ct2_convert.py; int8 on CPU), each stream decoded by a
`ctranslate2.Generator` with CTranslate2's own sampling (temperature, top-k, top-p, repetition penalty), and driven
through the same `DecodeJob` as the transformers path (services/decoding.py): the same streaming of token ids, Stop,
stop strings, token budget and sliding window.

Seeds. CTranslate2 draws from one random generator per worker thread, seeded from a process-wide seed the first time
that thread draws; `set_random_seed` changes nothing for a thread that has drawn before. So every stream gets a
Generator of its own (a thread of its own), and a sampled stream holds the process-wide seed, under a lock, from
before its first draw until its first token has come: the same seed then gives the same text, alone or beside other
streams. A Generator of the text starter loads in 2–6 ms here; each holds its own copy of the weights, so at most
`slots` streams decode at once (one per CPU thread: CTranslate2 ran fastest here with one thread per stream and the
streams in parallel) and the others wait their turn. For models of hundreds of MB, transformers is the better
backend: it batches concurrent streams on one copy.

Windows. Learned position tables end at the model's context (CTranslate2 refuses position 128 of a 128-token
model), so a stream whose window fills goes on from its last half, read again, as on transformers.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import torch

from .ct2_convert import folder_bytes, placement

_SEEDING = threading.Lock()  # held from setting the process-wide seed until the stream's thread has drawn once


class _Seed:
    """The process-wide seed, held for one stream until its first token (see the module docstring)."""

    def __init__(self, seed: int) -> None:
        import ctranslate2

        _SEEDING.acquire()
        self.held = True
        ctranslate2.set_random_seed(seed % 0xFFFFFFFF)  # an unsigned int; its largest value means "random"

    def release(self) -> None:
        if self.held:
            self.held = False
            _SEEDING.release()


def read_vocabulary(folder: Path) -> list[str]:
    """The converted model's tokens, in id order (the converter writes vocabulary.json, older versions a .txt)."""
    if (folder / "vocabulary.json").is_file():
        return json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
    return (folder / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]


class CT2Generator:
    """A causal LM on CTranslate2; `start(job)` decodes a `DecodeJob` on a thread of its own."""

    def __init__(self, folder: Path, device: str, threads: int, generation_config: Any) -> None:
        self.folder = folder
        self.kind, self.index, self.compute_type = placement(device)
        self.device = torch.device(device)  # where a job's ids live (its stop strings read them)
        self.slots = threading.BoundedSemaphore(max(1, threads) if self.kind == "cpu" else 1)
        self.vocabulary = read_vocabulary(folder)
        eos = generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        self.rules = self._rules(generation_config)
        self.bytes = folder_bytes(folder)
        self._generator()  # a folder CTranslate2 cannot read fails here, at load, not at the first request

    def _rules(self, config: Any) -> dict:
        """The model's generation_config rules, in CTranslate2's terms (as sampling.model_rules for transformers)."""
        banned = [[i] for i in config.suppress_tokens or []] + [list(ids) for ids in config.bad_words_ids or []]
        rules: dict = {"end_token": sorted(self.eos), "return_end_token": True}
        if banned:
            rules["suppress_sequences"] = [[self.vocabulary[i] for i in ids] for ids in banned]
        if config.no_repeat_ngram_size:
            rules["no_repeat_ngram_size"] = config.no_repeat_ngram_size
        return rules

    def _generator(self) -> Any:
        import ctranslate2

        return ctranslate2.Generator(str(self.folder), device=self.kind, device_index=self.index,
                                     compute_type=self.compute_type, inter_threads=1,
                                     intra_threads=1 if self.kind == "cpu" else 0)

    def start(self, job: Any) -> None:
        """Decode `job` (services/decoding.DecodeJob) on its own thread; its future says when and how it ended."""
        threading.Thread(target=self._run, args=(job,), name="ct2-stream", daemon=True).start()

    def _run(self, job: Any) -> None:
        try:
            with self.slots:
                if job.stop_event.is_set():  # stopped while it waited for a slot
                    job.finish_reason = "stop"
                else:
                    generator = self._generator()
                    seed = _Seed(job.seed) if job.temperature > 0 else None
                    try:
                        while not self._decode(generator, job, seed):
                            job.slide()
                    finally:
                        if seed is not None:
                            seed.release()
                        del generator
        except BaseException as e:
            job.end(e)
        else:
            job.end()

    def _decode(self, generator: Any, job: Any, seed: _Seed | None) -> bool:
        """Generate until the stream ends (True) or its window fills (False)."""
        failure: list[BaseException] = []

        def on_token(step: Any) -> bool:  # on CTranslate2's thread: must return a bool and never raise
            try:
                if seed is not None:
                    seed.release()  # this thread has drawn: its generator is seeded
                job.take(step.token_id)
                return job.finished(step.token_id, self.eos)
            except BaseException as e:
                failure.append(e)
                return True

        room = min(job.max_new_tokens - job.made, job.context - len(job.window))
        sampled = job.temperature > 0
        generator.generate_batch(
            [[self.vocabulary[i] for i in job.window]], max_length=room, include_prompt_in_result=False,
            callback=on_token, sampling_topk=job.top_k if sampled else 1, sampling_topp=job.top_p if sampled else 1.0,
            sampling_temperature=job.temperature if sampled else 1.0, repetition_penalty=job.repetition_penalty,
            **self.rules)
        if failure:
            raise failure[0]
        return job.finish_reason is not None
