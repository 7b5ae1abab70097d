"""Short held-out lines, exactly right: translators side by side on the lines of at most 3 English words or 5
Chinese characters in the starter's validation split (its recipe: 3 % of Tatoeba en-zh, grouped, seed 0), which no
model trained on. A line counts when the translation equals one of its references after trailing punctuation and
case (as `aigc_hub.evaluation.everyday_phrases` counts). A second measure beside BLEU for greetings-sized input.

    python benchmarks/short_lines.py [MODEL ...]      # the shipped translator by default
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aigc_hub.evaluation.everyday_phrases import score  # noqa: E402
from aigc_hub.services import ModelRegistry, TranslationService  # noqa: E402
from training.translation_data import grouped_split, load_pairs  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "translation" / "en-zh" / "en-zh.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=["aigc-hub/translator-en-zh"])
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args()
    _, val = grouped_split(load_pairs(args.data, ("en", "zh")), 3, 0)
    service = TranslationService(ModelRegistry())
    tables = {}  # per direction, each short source with every reference: everyday_phrases' tables, scored alike
    for src, tgt in (("en", "zh"), ("zh", "en")):
        refs: dict[str, list[str]] = {}
        for s, t in zip(val.sentences[src], val.sentences[tgt]):
            refs.setdefault(s, []).append(t)
        tables[src, tgt] = {s: r for s, r in refs.items() if (len(s.split()) <= 3 if src == "en" else len(s) <= 5)}
    for model in args.models:
        results = score(lambda lines, src, tgt: service.translate(model, lines, src, tgt, beams=4).text.split("\n"),
                        tables)
        for (src, tgt), rows in results.items():
            right = sum(ok for *_, ok in rows)
            print(f"{src}→{tgt} {model}: {right} / {len(rows)} short held-out lines exactly right")

if __name__ == "__main__":
    main()
