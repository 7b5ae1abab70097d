"""Text backends side by side, in one process on the same prompts: the text starter on transformers (fp32) and on
CTranslate2 (int8), through TextService. Quality: nats per character on the starter's own validation split (its
recipe: the last 10 % of Tiny Shakespeare), computed by each runtime (transformers' logits; CTranslate2's
`score_batch`). Speed: tokens per second of `--prompts` requests one after another (single stream), then the same
requests from `--streams` users at once; the backends take turns, median of the repeats. Targets: ≥ 1.5× the
single-stream tokens/s of transformers at nats/char within 1 %.

    python benchmarks/bench_text_backends.py [--prompts 1000] [--max-new-tokens 32] [--streams 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch

from aigc_hub import hub
from aigc_hub.evaluation.text_metrics import evaluate_lm
from aigc_hub.services import ModelRegistry, SamplingSettings, TextService
from benchmarks.turns import take_turns

STARTER = "aigc-hub/gpt-tinyshakespeare"
DATA = REPO.parent / "shared" / "data" / "text" / "tinyshakespeare" / "input.txt"
BACKENDS = ("transformers", "ctranslate2")


def validation() -> str:
    from training.text_data import load_texts

    return load_texts(str(DATA), validation_percentage=10, seed=0).validation[0]


def nats_per_char(service: TextService, text: str) -> float:
    """The loaded model's mean next-token loss over 128-token blocks of `text`, per character."""
    from training.text_data import pack

    entry = service.registry.get(STARTER)
    blocks = pack([text], entry.tokenizer, entry.config["n_positions"])
    chars_per_token = len(text) / len(entry.tokenizer(text, add_special_tokens=False)["input_ids"])
    if isinstance(entry.model, torch.nn.Module):  # on the model's device thread: torch work on this thread too made
        # the generations after it 3x slower (two OpenMP teams on two cores)
        return service.registry.run(entry.device, evaluate_lm, entry.model, blocks, chars_per_token).nats_per_char
    import ctranslate2

    # One thread: a Generator's idle OpenMP team spins, and slowed the transformers runs after it (199 against 590
    # tokens/s) while it was alive.
    generator = ctranslate2.Generator(str(entry.model.folder), compute_type=entry.model.compute_type, intra_threads=1)
    vocab = entry.model.vocabulary
    results = generator.score_batch([[vocab[i] for i in row] for row in blocks.tolist()], max_batch_size=64)
    losses = [-p for r in results for p in r.log_probs]
    return statistics.fmean(losses) / chars_per_token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--streams", type=int, default=8, help="users at once in the second measure")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not DATA.is_file():
        raise SystemExit(f"needs Tiny Shakespeare at {DATA} (see ../shared/data/README)")
    text = validation()
    step = max(1, (len(text) - 40) // args.prompts)
    prompts = [text[i * step : i * step + 24] for i in range(args.prompts)]
    settings = SamplingSettings(max_new_tokens=args.max_new_tokens, temperature=0.8, top_k=50)
    print(f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; {len(prompts)} "
          f"prompts × {args.max_new_tokens} tokens; {hub.resolve(STARTER).name}")
    services = {b: TextService(ModelRegistry(backends={"*": b})) for b in BACKENDS}
    quality = {b: nats_per_char(services[b], text) for b in BACKENDS}  # loads (and converts) first: not timed

    def single(backend: str) -> float:
        start, tokens = time.perf_counter(), 0
        for i, prompt in enumerate(prompts):
            tokens += services[backend].generate(STARTER, prompt, settings, seed=i)[1].tokens
        return tokens / (time.perf_counter() - start)

    def together(backend: str) -> float:
        counts = [0] * args.streams

        def user(u: int) -> None:
            for i in range(u, len(prompts), args.streams):
                counts[u] += services[backend].generate(STARTER, prompts[i], settings, seed=i)[1].tokens

        start = time.perf_counter()
        threads = [threading.Thread(target=user, args=(u,)) for u in range(args.streams)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(counts) / (time.perf_counter() - start)

    for title, measure in (("one stream", single), (f"{args.streams} streams at once", together)):
        rates = take_turns({b: (lambda b=b: measure(b)) for b in BACKENDS}, args.repeats)
        base = statistics.median(rates["transformers"])
        print(f"{title}:")
        for backend in BACKENDS:
            rate = statistics.median(rates[backend])
            print(f"  {backend:13s} {rate:7.1f} tokens/s ({min(rates[backend]):.1f}–{max(rates[backend]):.1f}), "
                  f"{rate / base:.2f}x transformers")
    for backend in BACKENDS:
        entry = services[backend].registry.get(STARTER)
        change = quality[backend] / quality["transformers"] - 1
        print(f"{backend:13s} validation nats/char {quality[backend]:.4f} ({change:+.2%} against transformers); "
              f"{entry.describe()}")


if __name__ == "__main__":
    main()
