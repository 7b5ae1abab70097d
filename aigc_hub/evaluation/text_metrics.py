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
    """Mean next-token loss of `model` over packed `blocks` (N, T) of held-out text; with `max_batches`, over that
    many batches of blocks spread evenly across the whole split (the first blocks alone are not representative)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    if max_batches is not None and max_batches * batch_size < len(blocks):
        blocks = blocks[torch.linspace(0, len(blocks) - 1, max_batches * batch_size).long()]
    total, count = 0.0, 0
    for start in range(0, len(blocks), batch_size):
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
