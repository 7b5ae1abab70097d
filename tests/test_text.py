"""Text path: tokenizers, tiny train → push → stock transformers load, TextService, Text tab over gradio_client."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from gradio_client import Client

from aigc_hub import hub
from aigc_hub.services import GenerationError, ModelRegistry, SamplingSettings, TextService
from conftest import REPO, assert_same_weights, is_user_error, resume_from_kept_checkpoint, run

SHAKESPEARE = REPO.parent / "shared" / "data" / "text" / "tinyshakespeare" / "input.txt"
TINY = ["--preset", "nano", "--n_layer", "2", "--n_embd", "64", "--block_size", "64", "--train_batch_size", "8",
        "--report_to", "none", "--eval_steps", "10", "--eval_batches", "2", "--sample_tokens", "20",
        "--lr_warmup_steps", "2"]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """40k characters of Tiny Shakespeare, or generated verse-like text where ../shared/data is absent."""
    out = tmp_path_factory.mktemp("text") / "corpus.txt"
    if SHAKESPEARE.exists():
        out.write_text(SHAKESPEARE.read_text()[:40_000])
    else:
        words = ["thou", "art", "my", "lord", "and", "the", "king", "shall", "speak", "now", "ROMEO:", "\n"]
        g = torch.Generator().manual_seed(0)
        out.write_text(" ".join(words[int(i)] for i in torch.randint(0, len(words), (8000,), generator=g)))
    return out


def train_text(corpus, out, *extra, env=None):
    proc = run([sys.executable, str(REPO / "training" / "train_text.py"), "--dataset", str(corpus), "--output_dir",
                str(out), *TINY, *extra], env=env)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc


@pytest.fixture(scope="session")
def tiny_lm(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("lm") / "tiny-lm"
    train_text(corpus, out, "--max_train_steps", "20")
    return out


def test_tokenizers_round_trip():
    from training.text_tokenizers import train_bpe_tokenizer, train_char_tokenizer

    text = "ROMEO: But, soft!  what light\tthrough yonder window breaks?\n\nIt is the east."
    char = train_char_tokenizer([text])
    ids = char(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text) and char.decode(ids) == text
    mixed = "Déjà vu — 你好，世界! 🙂 tabs\tand\nnewlines  "
    bpe = train_bpe_tokenizer([text * 20, mixed * 20], vocab_size=300)
    for sample in (text, mixed, "never seen: Ωμέγα ∑ 🚀"):
        assert bpe.decode(bpe(sample, add_special_tokens=False)["input_ids"]) == sample


def test_tiny_run_loads_with_stock_transformers(tiny_lm, tmp_hub):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hub.push(tiny_lm, "me/tiny-lm")
    pushed = tmp_hub / "me" / "tiny-lm"
    assert (pushed / "model.safetensors").exists() and (pushed / "tokenizer.json").exists()
    tok = AutoTokenizer.from_pretrained(str(pushed))
    model = AutoModelForCausalLM.from_pretrained(str(pushed))
    ids = tok("ROMEO:", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=10, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 10
    card = hub.list_models()[0].card
    assert card.pipeline_tag == "text-generation"
    assert {f.metric_type for f in card.figures} >= {"nats-per-char", "perplexity"}


@pytest.mark.slow  # a subprocess
def test_resume_is_exact(corpus, tmp_path):
    args = ["--max_train_steps", "12", "--checkpointing_steps", "5", "--checkpoints_total_limit", "1",
            "--dropout", "0.1", "--gradient_accumulation_steps", "2"]
    proc = resume_from_kept_checkpoint(lambda out, *a: train_text(corpus, out, *a), tmp_path, args)
    assert "at step 10" in proc.stderr


@pytest.mark.slow  # a subprocess
def test_streaming_corpus_resumes_exactly(corpus, tmp_path):
    """--streaming: a jsonl corpus read lazily, BPE tokenizer, validation = the head of the stream; exact resume."""
    import json

    docs = tmp_path / "docs.jsonl"
    with docs.open("w") as f:
        for para in corpus.read_text().split("\n\n"):
            f.write(json.dumps({"text": para}) + "\n")
    args = ["--dataset", str(docs), "--streaming", "--tokenizer", "bpe", "--vocab_size", "300", "--validation_docs",
            "40", "--max_train_steps", "12", "--checkpointing_steps", "5", "--checkpoints_total_limit", "1"]
    proc = resume_from_kept_checkpoint(lambda out, *a: train_text(corpus, out, *a), tmp_path, args)
    assert "streamed blocks" in proc.stderr and "at step 10" in proc.stderr


def test_service_seed_stop_and_limits(tiny_lm):
    svc = TextService(ModelRegistry())
    ref = str(tiny_lm)
    a, s1 = svc.generate(ref, "ROMEO:", SamplingSettings(max_new_tokens=30), seed=7)
    b, _ = svc.generate(ref, "ROMEO:", SamplingSettings(max_new_tokens=30), seed=7)
    assert a == b and s1.seed == 7 and s1.tokens == 30
    long = svc.stream(ref, "x" * 100_000, SamplingSettings(max_new_tokens=2048), seed=1)
    "".join(long.chunks)
    assert any("prompt cut" in n for n in long.notices) and long.prompt_tokens <= 64 and long.max_new_tokens == 2048
    with pytest.raises(GenerationError, match="max_new_tokens must be between 1 and 2048, got 1000000"):
        svc.stream(ref, "x", SamplingSettings(max_new_tokens=10**6), seed=1)  # refused, as by every front end
    greedy, _ = svc.generate(ref, "ROMEO:", SamplingSettings(max_new_tokens=10, temperature=0), seed=1)
    assert greedy == svc.generate(ref, "ROMEO:", SamplingSettings(max_new_tokens=10, temperature=0), seed=2)[0]


def test_generation_longer_than_the_context_slides_its_window(short_lm):
    """A 32-token context asked for 300 tokens writes 300, streamed, the same for the same seed; Stop still works."""
    svc = TextService(ModelRegistry())
    ref = str(short_lm)
    stream = svc.stream(ref, "ROMEO:", SamplingSettings(max_new_tokens=300), seed=4)
    pieces = list(stream.chunks)
    # 300 tokens, a character each (but the few special tokens an untrained model draws, which print nothing)
    assert stream.tokens == 300 and len("".join(pieces)) > 250 and len(pieces) > 1
    assert any("the window slides" in n and "last 16 tokens" in n for n in stream.notices)
    text, again = svc.generate(ref, "ROMEO:", SamplingSettings(max_new_tokens=300), seed=4)
    assert text == "".join(pieces) and again.tokens == 300
    short, quiet = svc.generate(ref, "ROMEO:", SamplingSettings(max_new_tokens=20), seed=4)
    assert text.startswith(short) and not quiet.notices  # within the context: no slide, no notice
    stream = svc.stream(ref, "A", SamplingSettings(max_new_tokens=2000), seed=1)
    for i, _ in enumerate(stream.chunks):
        if i == 100:  # in a later window
            stream.stop()
    assert 100 <= stream.tokens < 2000
    stopped, _ = svc.generate(ref, "A", SamplingSettings(max_new_tokens=40, stop=["q"]), seed=2)
    assert "q" not in stopped[:-1] and len(stopped) <= 40


def test_stop_ends_the_computation(long_lm):
    svc = TextService(ModelRegistry())
    stream = svc.stream(str(long_lm), "A", SamplingSettings(max_new_tokens=2000, temperature=1.0), seed=1)
    for i, _ in enumerate(stream.chunks):
        if i == 5:
            stream.stop()
    assert 5 <= stream.tokens < 1000, f"{stream.tokens} tokens: the worker did not stop"
    text, again = svc.generate(str(long_lm), "A", SamplingSettings(max_new_tokens=20), seed=1)
    assert again.tokens == 20, "the device lock was released"


@pytest.mark.parametrize("prompt, settings, message", [
    ("", {}, "empty"),
    ("   ", {}, "empty"),
    ("x" * 300_000, {}, "limit"),
    ("hi", {"temperature": -1}, "temperature"),
    ("hi", {"temperature": float("nan")}, "finite"),
    ("hi", {"top_p": 1.5}, "top_p"),
    ("hi", {"top_p": 0}, "top_p"),
    ("hi", {"top_k": -3}, "top_k"),
    ("hi", {"max_new_tokens": "lots"}, "integer"),
    ("hi", {"repetition_penalty": 0}, "repetition_penalty"),
])
def test_bad_text_requests(tiny_lm, prompt, settings, message):
    with pytest.raises(GenerationError, match=message):
        TextService().stream(str(tiny_lm), prompt, SamplingSettings(**settings), seed=0)


@pytest.fixture
def text_app(launched, tmp_hub, tiny_lm, tiny_gan, long_lm):
    hub.push(tiny_lm, "me/tiny-lm")
    hub.push(long_lm, "me/long-lm")
    hub.push(tiny_gan, "me/tiny-gan")
    url, _ = launched(image_model="me/tiny-gan", text_model="me/tiny-lm")
    return Client(url, verbose=False)


def _args(prompt="ROMEO:", n=40, temperature=0.8, top_k=50, top_p=0.95, rep=1.0, stops="", seed=3, model="me/tiny-lm"):
    return (model, prompt, n, temperature, top_k, top_p, rep, stops, seed)


def test_text_tab_streams_over_the_api(text_app):
    job = text_app.submit(*_args(), api_name="/generate_text")
    outputs = list(job)
    texts = [o[0] for o in outputs]
    assert len([t for t in texts if t]) > 1, "more than one chunk arrived"
    assert all(texts[i + 1].startswith(texts[i]) for i in range(len(texts) - 1)), "each chunk extends the last"
    assert job.result()[1] == 3
    assert "Stopped" not in job.result()[2], "a generation that ran to its end was not stopped"
    again = text_app.predict(*_args(), api_name="/generate_text")
    assert again[0] == texts[-1], "the same seed gives the same text"


def test_stop_ends_generation_and_frees_the_worker(text_app):
    job = text_app.submit(*_args(n=2000, prompt="A", model="me/long-lm", temperature=1.0), api_name="/generate_text")
    deadline = time.time() + 60
    while not (job.outputs() and job.outputs()[-1][0]) and time.time() < deadline:
        time.sleep(0.05)
    assert text_app.predict(api_name="/stop_text") == "Stopped."
    deadline = time.time() + 30
    while not job.done() and time.time() < deadline:
        time.sleep(0.05)
    assert job.done(), "generation stopped"
    assert len(job.outputs()[-1][0]) < 1500, "fewer tokens than asked"
    assert "Stopped." in job.outputs()[-1][2], "the stream's last update says it was stopped"
    # The lane is free: the next request completes.
    assert len(text_app.predict(*_args(n=5), api_name="/generate_text")[0]) > 0


@pytest.mark.parametrize("args", [
    _args(prompt=""), _args(temperature=-1), _args(top_p=1.5), _args(model="me/nothing"), _args(model="../../etc"),
    _args(model="me/tiny-gan"), _args(seed=-9), _args(n=10**6),  # the slider's bound: refused, not clamped
])
def test_bad_input_over_the_api_is_refused_and_the_server_keeps_serving(text_app, args):
    with pytest.raises(Exception) as err:
        text_app.predict(*args, api_name="/generate_text")
    assert is_user_error(str(err.value)), str(err.value)
    assert text_app.predict(*_args(n=3), api_name="/generate_text")[1] == 3


def test_huge_requests_are_clamped_with_a_notice(text_app):
    text, seed, notice = text_app.predict(*_args(n=2048, prompt="x" * 100_000), api_name="/generate_text")
    assert seed == 3 and "prompt cut" in notice and "the window slides" in notice


def test_cli_streams_text(tiny_lm):
    cmd = [sys.executable, "-m", "aigc_hub", "generate", "text", "--model", str(tiny_lm), "--prompt", "ROMEO:",
           "--max-new-tokens", "20", "--seed", "5"]
    first, second = run(cmd), run(cmd)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("ROMEO:") and first.stdout == second.stdout
    assert "seed 5, 20 new tokens" in first.stderr
    for bad, message in [(["--prompt", ""], "empty"), (["--temperature", "-1"], "temperature"),
                         (["--top-p", "2"], "top_p"), (["--model", "nobody/none"], "not in the local hub")]:
        args = cmd[:]
        for flag, value in zip(bad[::2], bad[1::2]):
            if flag in args:
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
        proc = run(args)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_token_queue_decodes_multibyte_text_in_pieces():
    """Byte-level tokens of one character arrive separately; no piece may hold half a character."""
    from aigc_hub.services.text import _TokenQueue
    from training.text_tokenizers import train_bpe_tokenizer

    text = "你好，世界! déjà vu\nnext line 🙂 end"
    tok = train_bpe_tokenizer(["unrelated english words only"], vocab_size=260)  # no merges for these bytes
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text), "several tokens per character"
    import threading

    q = _TokenQueue()

    def produce():  # one token at a time, as the decode loop emits them
        for i in ids:
            time.sleep(0.002)
            q.queue.put([i])
        q.end()

    producer = threading.Thread(target=produce)
    producer.start()
    pieces = list(q.text(tok, timeout=5))
    producer.join()
    assert "".join(pieces) == text and all("\ufffd" not in p for p in pieces) and len(pieces) > 3


def test_a_paced_stream_sends_the_tokens_of_an_interval_together():
    """The app's update budget: pieces at least `pace` apart, nothing lost, the last piece not held back."""
    import threading

    from aigc_hub.services.text import _TokenQueue
    from aigc_hub.ui.common import UpdateBudget
    from training.text_tokenizers import train_char_tokenizer

    text = "First Citizen: Before we proceed any further, hear me speak."  # (one line: a line is decoded apart)
    tok = train_char_tokenizer([text])
    budget = UpdateBudget(per_s=10)
    q = _TokenQueue()

    def produce():  # a token every 5 ms, as a busy decode loop might emit them
        for i in tok(text, add_special_tokens=False)["input_ids"]:
            time.sleep(0.005)
            q.queue.put([i])
        q.end()

    producer = threading.Thread(target=produce)
    with budget.share():  # one stream running: a piece every 0.1 s
        assert budget.interval() == 0.1
        producer.start()
        pieces, times = [], []
        for piece in q.text(tok, timeout=5, pace=budget.interval):
            pieces.append(piece)
            times.append(time.monotonic())
    producer.join()
    assert "".join(pieces) == text
    assert len(pieces) < len(text) / 3
    gaps = [b - a for a, b in zip(times, times[1:-1])]  # (the last piece goes as soon as the stream ends)
    assert gaps and min(gaps) >= 0.095
    assert budget.interval() == 0


@pytest.mark.slow  # subprocesses
def test_sigterm_stops_at_a_checkpoint_and_the_resumed_run_ends_with_the_same_weights(corpus, tmp_path):
    """Stop as the Train tab sends it: the script saves the step it is at and exits 75; resuming from that checkpoint
    ends with the weights of a run that was never stopped."""
    args = ["--max_train_steps", "300", "--checkpointing_steps", "1000", "--dropout", "0.1"]
    train_text(corpus, tmp_path / "full", *args)
    log = tmp_path / "stopped.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, str(REPO / "training" / "train_text.py"), "--dataset", str(corpus),
                                 "--output_dir", str(tmp_path / "stopped"), *TINY, *args], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + 300
    while not any(int(s) >= 5 for s in re.findall(r"(\d+)/300", log.read_text())):  # a few steps in
        assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=300) == 75, log.read_text()[-3000:]
    [checkpoint] = (tmp_path / "stopped" / "checkpoints").glob("checkpoint-*")
    assert 5 <= int(checkpoint.name.split("-")[1]) < 300 and "SIGTERM: stopping" in log.read_text()
    resumed = train_text(corpus, tmp_path / "stopped", *args, "--resume_from_checkpoint", "latest")
    assert f"at step {checkpoint.name.split('-')[1]}" in resumed.stderr
    assert_same_weights(tmp_path / "full", tmp_path / "stopped")
