"""Translation models: how a direction is requested, and batched beam search with n-best lists.

A model trained by `training/train_translation.py` is a stock transformers encoder-decoder (Marian-style). Its
`config.json` declares the directions it was trained on (`translation_directions: [["en", "zh"], ["zh", "en"]]`);
the target language is requested with a tag token at the start of the source, `>>zh<< Hello.` (the OPUS-MT
convention), so one model serves both directions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .ct2_translation import CT2Translator

if TYPE_CHECKING:
    from .translation_conventions import Convention


BATCH = 32  # sentences per beam-search batch (the service's, and CTranslate2's sub-batches)


def language_tag(lang: str) -> str:
    return f">>{lang}<<"


def with_tag(text: str, tgt: str) -> str:
    return f"{language_tag(tgt)} {text}"


@dataclass
class Candidate:
    text: str
    score: float | None  # length-normalised log-probability of the beam (higher is better); None with n_best 1


def max_new_tokens_for(source_tokens: int, limit: int) -> int:
    """Room for the translation: generous for short sentences (Chinese ↔ English lengths differ), capped."""
    return min(limit, 2 * source_tokens + 16)


@torch.no_grad()
def translate_batch(model: Any, tokenizer: Any, sources: list[str], tgt: str, *, beams: int = 4, n_best: int = 1,
                    max_source_tokens: int = 128, max_new_tokens: int = 128, src: str | None = None,
                    convention: "Convention | None" = None) -> list[list[Candidate]]:
    """Beam-search translations of `sources` into `tgt`: for each source, `n_best` candidates, best first.
    `convention` says how the model is asked for the direction (default: this project's `>>tgt<<` tags).

    Scores are only asked for with n_best > 1: keeping every step's scores for every beam slowed small models by
    almost half, and a single best translation needs no score to be ranked."""
    if not sources:
        return []
    n_best = max(1, min(n_best, beams))
    if convention is None:
        texts, extra = [with_tag(s, tgt) for s in sources], {}
    else:
        extra = convention.prepare(tokenizer, src, tgt)  # before tokenizing: sets the tokenizer's source language
        texts = [convention.source_text(s, src, tgt) for s in sources]
    if isinstance(model, CT2Translator):  # token lists in and out
        ids = tokenizer(texts, truncation=True, max_length=max_source_tokens)["input_ids"]
        forced = extra.get("forced_bos_token_id")
        out = model.translate([tokenizer.convert_ids_to_tokens(x) for x in ids], beams, n_best,
                              max_new_tokens_for(max(map(len, ids)), max_new_tokens),
                              None if forced is None else [tokenizer.convert_ids_to_tokens(forced)])
        return [[Candidate(tokenizer.decode(tokenizer.convert_tokens_to_ids(tokens), skip_special_tokens=True).strip(),
                           score) for tokens, score in cands] for cands in out]
    device = next(model.parameters()).device
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True,
                      max_length=max_source_tokens).to(device)
    longest = int(batch["attention_mask"].sum(1).max())
    out = model.generate(**batch, num_beams=beams, num_return_sequences=n_best, do_sample=False,
                         max_new_tokens=max_new_tokens_for(longest, max_new_tokens), early_stopping=True,
                         output_scores=n_best > 1, return_dict_in_generate=True, **extra)
    texts = tokenizer.batch_decode(out.sequences, skip_special_tokens=True)
    scores = out.sequences_scores.tolist() if n_best > 1 else [None] * len(texts)
    return [[Candidate(texts[i * n_best + k].strip(), scores[i * n_best + k]) for k in range(n_best)]
            for i in range(len(sources))]
