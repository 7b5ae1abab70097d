"""Language-model quality on held-out text: loss per token, perplexity, and nats per character.

Nats per character divide the total loss by the characters the predicted tokens cover, so a character-level and a
BPE model of the same text are comparable (per-token loss and perplexity are not: a BPE token carries more text).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class TextScores:
    loss: float  # nats per predicted token
    perplexity: float
    nats_per_char: float
    tokens: int


@torch.no_grad()
def evaluate_lm(model: torch.nn.Module, blocks: torch.Tensor, chars_per_token: float, batch_size: int = 16,
                max_batches: int | None = None) -> TextScores:
    """Mean next-token loss of `model` over packed `blocks` (N, T) of held-out text."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for b, start in enumerate(range(0, len(blocks), batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        batch = blocks[start : start + batch_size].to(device)
        logits = model(input_ids=batch).logits[:, :-1].float()
        targets = batch[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                                 reduction="sum")
        total += float(loss)
        count += targets.numel()
    model.train(was_training)
    mean = total / max(1, count)
    return TextScores(loss=mean, perplexity=math.exp(min(mean, 50.0)), nats_per_char=mean / chars_per_token,
                      tokens=count)
