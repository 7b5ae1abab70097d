"""Dynamic batching: concurrent requests merged on the device worker, each getting exactly its own result."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import pytest

from aigc_hub.services import GenerationError, ImageService, ModelRegistry, TranslationService
from aigc_hub.services.batching import Batcher
from conftest import wait_for

wait_for = partial(wait_for, timeout=60, every=0.001)  # polled as often as before


class Worker:
    """One worker thread that can be held, so that requests pile up behind it as they do under load."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(1)
        self.gate = threading.Event()

    def hold(self) -> None:
        self.gate.clear()
        self.pool.submit(self.gate.wait)

    def submit(self, device, fn, *args):
        return self.pool.submit(fn, *args)

    def run(self, device, fn, *args):
        return self.pool.submit(fn, *args).result()


def in_threads(calls) -> list:
    """Each call on its own thread; their results (or exceptions) in order."""
    out: list = [None] * len(calls)

    def one(k: int) -> None:
        try:
            out[k] = calls[k]()
        except Exception as e:  # returned, asserted by the caller
            out[k] = e

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(calls))]
    for t in threads:
        t.start()
    return threads, out


def join(threads) -> None:
    for t in threads:
        t.join(120)
        assert not t.is_alive()


def test_requests_waiting_together_run_as_one_batch_each_with_its_own_result():
    worker, seen = Worker(), []
    batcher = Batcher(worker.submit, worker.run, lambda d: False, max_rows=64)

    def square(items):
        seen.append(list(items))
        return [x * x for x in items]

    worker.hold()
    threads, out = in_threads([lambda k=k: batcher.call("cpu", "sq", k, 1, square) for k in range(6)])
    wait_for(lambda: batcher.waiting("cpu") == 6)
    worker.gate.set()
    join(threads)
    assert out == [k * k for k in range(6)]
    assert sorted(seen[0]) == list(range(6)) and len(seen) == 1


def test_a_batch_stops_at_max_rows_and_the_rest_follows():
    worker, seen = Worker(), []
    batcher = Batcher(worker.submit, worker.run, lambda d: False, max_rows=4)
    worker.hold()
    threads, out = in_threads([lambda k=k: batcher.call("cpu", "id", k, 1, lambda xs: seen.append(len(xs)) or xs)
                               for k in range(10)])
    wait_for(lambda: batcher.waiting("cpu") == 10)
    worker.gate.set()
    join(threads)
    assert out == list(range(10)) and seen == [4, 4, 2]


def test_a_failing_item_fails_alone_and_the_others_complete():
    worker = Worker()
    batcher = Batcher(worker.submit, worker.run, lambda d: False)

    def strict(items):
        if any(x < 0 for x in items):
            raise ValueError("negative")
        return [x + 1 for x in items]

    worker.hold()
    threads, out = in_threads([lambda k=k: batcher.call("cpu", "k", k, 1, strict) for k in (1, -1, 2, 3)])
    wait_for(lambda: batcher.waiting("cpu") == 4)
    worker.gate.set()
    join(threads)
    assert out[0] == 2 and out[2:] == [3, 4]
    assert isinstance(out[1], ValueError)


def test_different_keys_never_share_a_batch_and_off_means_alone():
    worker, seen = Worker(), []
    batcher = Batcher(worker.submit, worker.run, lambda d: False)
    worker.hold()
    threads, _ = in_threads([lambda k=k: batcher.call("cpu", k % 2, k, 1, lambda xs: seen.append(sorted(xs)) or xs)
                             for k in range(4)])
    wait_for(lambda: batcher.waiting("cpu") == 4)
    worker.gate.set()
    join(threads)
    assert sorted(seen) == [[0, 2], [1, 3]]
    off = Batcher(worker.submit, worker.run, lambda d: False, enabled=False)
    assert off.call("cpu", "k", 5, 1, lambda xs: [len(xs)]) == 1 and off.waiting("cpu") == 0


def held(registry: ModelRegistry, device: str = "cpu") -> threading.Event:
    gate = threading.Event()
    registry.submit(device, gate.wait)
    return gate


def test_gan_requests_batched_give_the_images_they_give_alone(tiny_gan):
    registry = ModelRegistry()
    service = ImageService(registry)
    ref = str(tiny_gan)
    asks = [dict(num=3, seed=10), dict(num=5, seed=99, label=7), dict(num=1, seed=11), dict(num=8, seed=4, label=2)]
    alone = [service.generate(ref, **a).images for a in asks]
    gate = held(registry)
    threads, out = in_threads([lambda a=a: service.generate(ref, **a) for a in asks]
                              + [lambda: service.generate(ref, 2, seed=1, label=99)])  # hostile: refused alone
    wait_for(lambda: registry.batcher.waiting("cpu") == len(asks))
    gate.set()
    join(threads)
    assert registry.batcher.batch_sizes[-1] == len(asks)
    for result, expected in zip(out, alone):
        assert np.array_equal(result.images, expected)
    assert isinstance(out[-1], GenerationError) and "label must be" in str(out[-1])


def test_diffusion_requests_share_the_denoising_loop_and_a_stopped_one_leaves_the_others_intact(tiny_ddpm):
    from aigc_hub.services.image import GenerationStopped

    registry = ModelRegistry()
    service = ImageService(registry)
    ref = str(tiny_ddpm)
    asks = [dict(num=3, seed=10, label=1), dict(num=2, seed=50), dict(num=4, seed=7, label=9)]
    alone = [service.generate(ref, steps=4, sampler="euler-a", **a).images for a in asks]
    stop_mid, stop_early = threading.Event(), threading.Event()
    calls = [lambda a=a: service.generate(ref, steps=4, sampler="euler-a", **a) for a in asks] + [
        # stops itself at its first step, inside the batch; another is stopped before its batch starts
        lambda: service.generate(ref, 2, seed=3, steps=4, sampler="euler-a", stop=stop_mid,
                                 progress=lambda done, total: stop_mid.set()),
        lambda: service.generate(ref, 2, seed=4, steps=4, sampler="euler-a", stop=stop_early),
        lambda: service.generate(ref, 1, seed=10, steps=4, sampler="ddim"),  # another sampler: its own batch
    ]
    gate = held(registry)
    threads, out = in_threads(calls)
    wait_for(lambda: registry.batcher.waiting("cpu") == len(calls))
    stop_early.set()
    gate.set()
    join(threads)
    assert sorted(registry.batcher.batch_sizes[-2:]) == [1, 5]
    for result, expected in zip(out, alone):  # batched convolutions round differently: at most one level apart
        assert result.images.shape == expected.shape
        assert np.abs(result.images.astype(int) - expected.astype(int)).max() <= 1
    assert isinstance(out[3], GenerationStopped) and isinstance(out[4], GenerationStopped)
    assert out[5].images.shape[0] == 1


@pytest.mark.slow
def test_translations_batched_give_what_they_give_alone():
    ref = "aigc-hub/translator-en-zh"
    texts = ["Hello.\nHow are you?", "I like tea.", "Where is the station?\n\nIt is late.", "Thank you very much."]
    alone = [TranslationService(ModelRegistry(batching=False)).translate(ref, t, "en", "zh", 4).text for t in texts]
    # Each request tokenizes its lines on the worker before it joins a batch, so the worker is not held here: a long
    # collection window closes when all 6 lines have arrived (max_batch).
    registry = ModelRegistry(batch_window_ms=60_000, max_batch=6)
    service = TranslationService(registry)
    threads, out = in_threads([lambda t=t: service.translate(ref, t, "en", "zh", 4).text for t in texts])
    join(threads)
    assert registry.batcher.batch_sizes == [len(texts)]
    assert out == alone


TEXT_ASKS = [("ROMEO:", dict(max_new_tokens=60), 1), ("JULIET:\nO", dict(max_new_tokens=30, temperature=0), 2),
             ("First Citizen:", dict(max_new_tokens=80, top_k=5, repetition_penalty=1.3), 3),
             ("KING", dict(max_new_tokens=50, stop=["\n"]), 4)]


def test_text_streams_decoded_together_write_what_they_write_alone(monkeypatch):
    from aigc_hub.services import SamplingSettings, TextService
    from aigc_hub.services import decoding
    from aigc_hub.services.sampling import next_tokens

    ref = "aigc-hub/gpt-tinyshakespeare"
    alone_service = TextService(ModelRegistry(batching=False))
    alone = [alone_service.generate(ref, p, SamplingSettings(**s), seed)[0] for p, s, seed in TEXT_ASKS]
    registry = ModelRegistry()
    service = TextService(registry)
    registry.get(ref)
    gate = held(registry)
    streams = [service.stream(ref, p, SamplingSettings(**s), seed) for p, s, seed in TEXT_ASKS]
    calls = {"with 9": 0, "failing": False}

    def failing_choice(rows, histories, logits, rules):  # the stream of seed 9 fails at its fourth token, in a batch
        if any(row.seed == 9 for row in rows):
            if len(rows) == 1 and calls["failing"]:  # the retry row by row: its row fails again, alone
                calls["failing"] = False
                raise RuntimeError("this stream's own failure")
            calls["with 9"] += 1
            if calls["with 9"] == 4:
                calls["failing"] = True
                raise RuntimeError("this stream's own failure")
        return next_tokens(rows, histories, logits, rules)

    monkeypatch.setattr(decoding, "next_tokens", failing_choice)
    failing = service.stream(ref, "ROMEO:", SamplingSettings(max_new_tokens=50), 9)
    stopped = service.stream(ref, "ROMEO:", SamplingSettings(max_new_tokens=2000), 10)
    gate.set()  # all six join the batch behind the held worker
    pieces = next(stopped.chunks)  # the stopped stream has begun: then Stop ends it, and only it
    stopped.stop()
    threads, out = in_threads([lambda st=st: "".join(st.chunks) for st in streams])
    join(threads)
    assert out == alone
    with pytest.raises(GenerationError, match="generation failed: RuntimeError: this stream's own failure"):
        "".join(failing.chunks)
    assert failing.tokens == 3
    rest = "".join(stopped.chunks)
    assert stopped.tokens < 2000 and len(pieces + rest) < 2000


def test_a_text_stream_joins_a_running_batch_between_tokens():
    from aigc_hub.services import SamplingSettings, TextService

    ref = "aigc-hub/gpt-tinyshakespeare"
    alone = TextService(ModelRegistry(batching=False)).generate(ref, "KING", SamplingSettings(max_new_tokens=40), 5)[0]
    registry = ModelRegistry()
    service = TextService(registry)
    first = service.stream(ref, "ROMEO:", SamplingSettings(max_new_tokens=2000), 1)
    next(first.chunks)  # decoding has started
    # The loop hands the worker back between slices of steps: hold it there, so the late stream surely finds the
    # first one mid-way, then let both go.
    entered, gate = threading.Event(), threading.Event()
    registry.submit("cpu", lambda: (entered.set(), gate.wait()))
    assert entered.wait(60)
    late = service.stream(ref, "KING", SamplingSettings(max_new_tokens=40), 5)
    gate.set()
    assert "".join(late.chunks) == alone
    assert first.tokens < 2000 and not first.stop_event.is_set(), "the first stream runs on beside the late one"
    first.stop()
    "".join(first.chunks)
    assert first.tokens < 2000


def test_a_prompt_that_fails_the_shared_prefill_fails_alone():
    from aigc_hub.services import SamplingSettings, TextService

    ref = "aigc-hub/gpt-tinyshakespeare"
    asks = [("ROMEO:", 1), ("KING", 2), ("First Citizen:", 3)]
    alone_service = TextService(ModelRegistry(batching=False))
    alone = [alone_service.generate(ref, p, SamplingSettings(max_new_tokens=20), seed)[0] for p, seed in asks]
    registry = ModelRegistry()
    service = TextService(registry)
    entry = registry.get(ref)
    poison = entry.tokenizer("QQQ")["input_ids"]
    forward = entry.model.forward

    rows_read: list[int] = []

    def failing_forward(input_ids=None, **kwargs):  # a prompt this model cannot read, wherever it is in a batch
        rows_read.append(input_ids.shape[0])
        if any(poison == row[-len(poison):].tolist() for row in input_ids) and input_ids.shape[1] > 1:
            raise RuntimeError("this prompt's own failure")
        return forward(input_ids=input_ids, **kwargs)

    entry.model.forward = failing_forward
    gate = held(registry)
    streams = [service.stream(ref, p, SamplingSettings(max_new_tokens=20), seed) for p, seed in asks[:2]]
    bad = service.stream(ref, "QQQ", SamplingSettings(max_new_tokens=20), 4)
    streams.append(service.stream(ref, asks[2][0], SamplingSettings(max_new_tokens=20), asks[2][1]))
    gate.set()  # all four are prefilled together behind the held worker
    threads, out = in_threads([lambda st=st: "".join(st.chunks) for st in streams])
    join(threads)
    assert out == alone
    with pytest.raises(GenerationError, match="this prompt's own failure"):
        "".join(bad.chunks)
    assert rows_read[0] == 4  # the four prompts were read in one pass first
