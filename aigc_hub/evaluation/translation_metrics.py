"""Translation quality with sacreBLEU: corpus BLEU and chrF per direction, against every reference of a source.

Chinese targets are scored with sacreBLEU's `zh` tokenizer (character-level for CJK), as WMT does; other targets with
the default `13a`. Hypotheses come from beam search in length-sorted batches (less padding, same results).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sacrebleu

from ..models.translation import translate_batch


@dataclass
class TranslationScores:
    direction: str  # "en-zh"
    bleu: float
    chrf: float
    sentences: int
    signature: str


def bleu_tokenizer(lang: str) -> str:
    return "zh" if lang == "zh" else "13a"


def score(hypotheses: list[str], references: list[list[str]], tgt: str, direction: str) -> TranslationScores:
    """Corpus BLEU and chrF; `references[i]` holds all reference translations of source i (any number)."""
    depth = max(len(r) for r in references)
    streams = [[r[k] if k < len(r) else None for r in references] for k in range(depth)]
    bleu = sacrebleu.BLEU(tokenize=bleu_tokenizer(tgt))
    chrf = sacrebleu.CHRF()
    b = bleu.corpus_score(hypotheses, streams)
    c = chrf.corpus_score(hypotheses, streams)
    return TranslationScores(direction, b.score, c.score, len(hypotheses), str(bleu.get_signature()))


def evaluate_translation(model: Any, tokenizer: Any, sources: list[str], references: list[list[str]], src: str,
                         tgt: str, *, beams: int = 4, batch_size: int = 64, max_source_tokens: int = 128,
                         convention: Any = None) -> tuple[TranslationScores, list[str]]:
    """Translate `sources` into `tgt` with beam search and score them; returns the scores and the hypotheses.
    `convention`: how the model is asked for the direction (models/translation_conventions.py; default: this
    project's `>>tgt<<` tags)."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    hyps = [""] * len(sources)
    was_training = model.training
    model.eval()
    for start in range(0, len(order), batch_size):
        ids = order[start : start + batch_size]
        out = translate_batch(model, tokenizer, [sources[i] for i in ids], tgt, beams=beams,
                              max_source_tokens=max_source_tokens, src=src, convention=convention)
        for i, cands in zip(ids, out):
            hyps[i] = cands[0].text
    model.train(was_training)
    return score(hyps, references, tgt, f"{src}-{tgt}"), hyps
