"""The next token of every row of a decode step, chosen at once (decoding.py).

Sampling each row on its own cost about as much as the batched forward pass of a small model (a dozen tensor ops per
row per token, measured: 0.7 ms a row). Here a step's rows share one pass: temperature, top-k and top-p are
per-row tensors, filtered as transformers' warpers filter (`TemperatureLogitsWarper`, `TopKLogitsWarper`,
`TopPLogitsWarper`, in that order; the test compares them), and each row's draw is one number from its own seeded
generator turned into a token by inverse-transform sampling over its own distribution. So a row picks the same token
in a batch of 30 as alone, and on any device (the draws are Python's `random.Random`, not a device generator).
What needs a row's own token history (a repetition penalty, a model's bad-words or no-repeat-n-gram rule) runs per
row, for the rows that have it, before the shared pass.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

import torch
from transformers import (LogitsProcessorList, NoBadWordsLogitsProcessor, NoRepeatNGramLogitsProcessor,
                          RepetitionPenaltyLogitsProcessor, SuppressTokensLogitsProcessor)


class RowSettings:
    """One stream's sampling settings and its random generator."""

    def __init__(self, temperature: float, top_k: int, top_p: float, repetition_penalty: float, seed: int) -> None:
        self.temperature, self.top_k, self.top_p, self.seed = temperature, top_k, top_p, seed
        self.rng = random.Random(seed)
        self.history_rules = LogitsProcessorList()  # rules that read the row's own ids (see `with_model_rules`)
        if repetition_penalty != 1.0:
            self.history_rules.append(RepetitionPenaltyLogitsProcessor(repetition_penalty))

    def with_model_rules(self, rules: Sequence[Any]) -> None:
        """Put the model's rules that read a row's history first, as generate() orders them."""
        self.history_rules[:0] = [r for r in rules if not isinstance(r, SuppressTokensLogitsProcessor)]


def model_rules(config: Any, device: torch.device) -> list:
    """The logits rules a model's generation_config asks every generation to follow (tokens it must never write,
    n-grams it must not repeat), as generate() would apply them."""
    rules: list = []
    if config.suppress_tokens:
        rules.append(SuppressTokensLogitsProcessor(config.suppress_tokens, device=str(device)))
    if config.bad_words_ids:
        rules.append(NoBadWordsLogitsProcessor(config.bad_words_ids, eos_token_id=config.eos_token_id))
    if config.no_repeat_ngram_size:
        rules.append(NoRepeatNGramLogitsProcessor(config.no_repeat_ngram_size))
    return rules


def next_tokens(rows: Sequence[RowSettings], histories: Sequence[torch.Tensor], logits: torch.Tensor,
                rules: Sequence[Any] = ()) -> list[int]:
    """The next token of each row of `logits` (B, V): `rows[i]`'s settings and generator, `histories[i]` its ids so
    far (1, L); `rules` the model's rules (see `model_rules`)."""
    scores = logits.float()
    for rule in rules:  # a batch-wide rule (suppressed tokens); the others are in each row's history_rules
        if isinstance(rule, SuppressTokensLogitsProcessor):
            scores = rule(None, scores)
    if any(row.history_rules for row in rows):
        scores = scores.clone()
        for i, row in enumerate(rows):
            if row.history_rules:
                scores[i : i + 1] = row.history_rules(histories[i], scores[i : i + 1])
    greedy = scores.argmax(-1)
    sampled = [i for i, row in enumerate(rows) if row.temperature > 0]
    if not sampled:
        return greedy.tolist()
    picked = _sample([rows[i] for i in sampled], scores[sampled] if len(sampled) < len(rows) else scores)
    tokens = greedy.tolist()
    for i, token in zip(sampled, picked):
        tokens[i] = token
    return tokens


def _sample(rows: Sequence[RowSettings], scores: torch.Tensor) -> list[int]:
    """Inverse-transform sampling: each row's token is the first whose cumulative probability passes its own draw."""
    cdf = warped(rows, scores).softmax(-1).double().cumsum(-1)
    if not torch.isfinite(cdf[:, -1]).all():  # before any row draws: a retry row by row draws the same numbers
        raise ValueError("the model's scores hold no finite probabilities to sample from (NaN or all -inf)")
    draws = torch.tensor([[row.rng.random()] for row in rows], dtype=torch.float64, device=scores.device)
    return torch.searchsorted(cdf, draws * cdf[:, -1:], right=True).clamp_(max=scores.shape[-1] - 1).flatten().tolist()


def warped(rows: Sequence[RowSettings], scores: torch.Tensor) -> torch.Tensor:
    """Each row's scores after its temperature, top-k and top-p, as transformers' warpers leave them."""
    device, vocab = scores.device, scores.shape[-1]
    temperature = torch.tensor([[row.temperature] for row in rows], device=device)
    scores = scores / temperature
    top_k = [min(row.top_k, vocab) if row.top_k > 0 else vocab for row in rows]
    if min(top_k) < vocab:  # the k-th largest score of each row: below it is out (ties kept, as the warper does)
        kth = torch.topk(scores, max(top_k), dim=-1).values
        kth = kth.gather(1, torch.tensor([[k - 1] for k in top_k], device=device))
        scores = scores.masked_fill(scores < kth, -float("inf"))
    top_p = [row.top_p for row in rows]
    if min(top_p) < 1.0:  # drop the least likely tokens whose mass together is at most 1 - top_p, keep the best one
        ascending, order = torch.sort(scores, descending=False)
        mass = ascending.softmax(-1).cumsum(-1)
        drop = mass <= (1 - torch.tensor([[p] for p in top_p], device=device))
        drop[:, -1] = False
        scores = scores.masked_fill(drop.scatter(1, order, drop), -float("inf"))
    return scores
