"""Backends side by side, in one process on the same sentences: the shipped translator on transformers (fp32) and on
CTranslate2 (int8), both directions, through TranslationService (beam 4). The sentences are the starter's own
held-out split (its recipe: 3 % of Tatoeba en-zh, grouped, seed 0). Sentences per second (the backends take turns,
median of the repeats), sacreBLEU against the references, and the loaded model's size. Targets: CTranslate2 int8
≥ 3× the sentences per second of transformers, BLEU within 0.5.

    python benchmarks/bench_backends.py [--repeats 3] [--beams 4]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch

from aigc_hub.evaluation.translation_metrics import score
from aigc_hub.services import ModelRegistry, TranslationService
from benchmarks.adapt_targets import EN_ZH
from benchmarks.turns import take_turns

STARTER = "aigc-hub/translator-en-zh"
BACKENDS = ("transformers", "ctranslate2")


def held_out() -> tuple[list[str], list[str]]:
    from training.translation_data import grouped_split, load_pairs

    _, val = grouped_split(load_pairs(str(EN_ZH), ("en", "zh")), 3.0, 0)
    return list(val.sentences["en"]), list(val.sentences["zh"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--beams", type=int, default=4)
    args = parser.parse_args()
    if not EN_ZH.is_file():
        raise SystemExit(f"needs Tatoeba en-zh at {EN_ZH} (see ../shared/data/README)")
    en, zh = held_out()
    print(f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; {len(en)} held-out "
          f"pairs, beam {args.beams}")
    services = {b: TranslationService(ModelRegistry(backends={"*": b})) for b in BACKENDS}
    for src, tgt, sources, references in (("en", "zh", en, zh), ("zh", "en", zh, en)):
        outputs: dict[str, list[str]] = {}

        def timed(backend: str) -> float:
            start = time.perf_counter()
            result = services[backend].translate(STARTER, sources, src, tgt, beams=args.beams)
            outputs[backend] = [line.text for line in result.lines]
            return len(sources) / (time.perf_counter() - start)

        for backend in BACKENDS:  # load (and convert) first: not timed
            services[backend].translate(STARTER, sources[:4], src, tgt, beams=args.beams)
        rates = take_turns({b: (lambda b=b: timed(b)) for b in BACKENDS}, args.repeats)
        base = statistics.median(rates["transformers"])
        print(f"{src}→{tgt}:")
        for backend in BACKENDS:
            entry = services[backend].registry.get(STARTER)
            bleu = score(outputs[backend], [[r] for r in references], tgt, f"{src}-{tgt}").bleu
            rate = statistics.median(rates[backend])
            print(f"  {backend:13s} {rate:6.1f} sentences/s ({min(rates[backend]):.1f}–{max(rates[backend]):.1f}), "
                  f"{rate / base:.2f}x transformers; BLEU {bleu:.2f}; {entry.describe()}")


if __name__ == "__main__":
    main()
