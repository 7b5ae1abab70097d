"""Speed of the translation path: sentences/s of batch translation (beam 4) through `TranslationService` vs raw
`model.generate` on the same sentences, in the same process, on the same device worker thread (the service's
overhead is validation, segmentation, length sorting, batching and decoding). Target: overhead ≤ 10 %, ≥ 30
sentences/s on 2 cores for the starter.

    python benchmarks/bench_translation.py [--model aigc-hub/translator-en-zh] [--sentences 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "translation" / "en-zh" / "en-zh.jsonl"


def sentences(n: int, lang: str) -> list[str]:
    """`n` sentences spread over the file (it is sorted by length), or a fixed mix where the data is absent."""
    if DATA.exists():
        rows = DATA.read_text(encoding="utf-8").splitlines()
        return [json.loads(rows[i * len(rows) // n])[lang] for i in range(n)]
    base = ["Hello.", "How are you?", "I would like a cup of tea, please.", "Where is the train station?",
            "She has been reading that book since this morning."]
    return [base[i % len(base)] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="aigc-hub/translator-en-zh")
    parser.add_argument("--src", default="en")
    parser.add_argument("--tgt", default="zh")
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from aigc_hub.models.translation import with_tag
    from aigc_hub.services import ModelRegistry, TranslationService
    from aigc_hub.services.translation import BATCH

    svc = TranslationService(ModelRegistry())
    entry = svc.registry.get(args.model)
    tok, model = entry.tokenizer, entry.model
    lines = sentences(args.sentences, args.src)
    limit = int(entry.config.get("translation_max_source_length", 64))

    def raw() -> float:
        """The bare loop a user would write: length-sorted batches of the same size, tagged, generate, decode."""
        start = time.perf_counter()
        ordered = sorted(lines, key=len)
        with torch.no_grad():
            for k in range(0, len(ordered), BATCH):
                batch = tok([with_tag(s, args.tgt) for s in ordered[k : k + BATCH]], return_tensors="pt",
                            padding=True, truncation=True, max_length=limit + 8)
                longest = int(batch["attention_mask"].sum(1).max())
                out = model.generate(**batch, num_beams=args.beams, max_new_tokens=min(2 * limit + 16, 2 * longest + 16),
                                     early_stopping=True)
                tok.batch_decode(out, skip_special_tokens=True)
        return len(lines) / (time.perf_counter() - start)

    def served() -> float:
        start = time.perf_counter()
        svc.translate(args.model, lines, args.src, args.tgt, beams=args.beams)
        return len(lines) / (time.perf_counter() - start)

    svc.translate(args.model, lines[:BATCH], args.src, args.tgt, beams=args.beams)  # warm-up
    raw_s, svc_s = [], []
    for _ in range(args.repeats):
        raw_s.append(svc.registry.run(entry.device, raw))  # on the service's worker thread: same OpenMP team
        svc_s.append(served())
    r, s = max(raw_s), max(svc_s)
    print(f"translation {args.model} {args.src}→{args.tgt}, beam {args.beams}, {len(lines)} sentences: "
          f"TranslationService {s:.1f} sentences/s, raw generate {r:.1f} sentences/s, overhead {100 * (r / s - 1):+.1f} % "
          f"(best of {args.repeats}; target <= 10 %, >= 30 sentences/s)")


if __name__ == "__main__":
    main()
