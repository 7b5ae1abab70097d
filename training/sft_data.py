"""Examples for adapting a shared causal LM (`train_text.py --base_model`): prompt / completion rows and chat rows
(their formats and learned spans: aigc_hub/sft_rows.py) tokenized for training, with the loss on what the model
should write only; the held-out loss on those tokens. `{"text"}` rows and plain text are packed into blocks as for
training from scratch (text_data.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import load_dataset

from aigc_hub import sft_rows
from training.text_data import BUILDERS

IGNORE = -100  # labels the loss skips (torch's cross-entropy default)


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


def read_rows(source: str) -> list[dict]:
    """The rows of a .jsonl / .json / .parquet / .csv file, or of a hub dataset (its train split)."""
    path = Path(source)
    if path.suffix in BUILDERS and path.suffix != ".txt":
        if not path.is_file():
            raise SystemExit(f"dataset file not found: {source}")
        ds = load_dataset(BUILDERS[path.suffix], data_files=[str(path)], split="train")
    elif path.exists() or source.startswith((".", "/")):
        raise SystemExit(f"{source}: prompt / completion and chat rows come as .jsonl, .json, .parquet or .csv")
    else:
        ds = load_dataset(source, split="train")  # a hub dataset; needs network or the datasets cache
    return list(ds)


def split(rows: list[dict], validation_rows: list[dict] | None, percentage: float, seed: int
          ) -> tuple[list[dict], list[dict]]:
    """(train, validation): the validation file's rows, or `percentage` % of the rows drawn with the seed."""
    if validation_rows is not None:
        return rows, validation_rows
    if not 0 < percentage < 100:
        raise SystemExit("--validation_split_percentage must be between 0 and 100")
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_val = max(1, int(len(rows) * percentage / 100))
    held = set(order[:n_val])
    if len(rows) - n_val < 1:
        raise SystemExit(f"{len(rows)} rows: too few to hold out a validation split")
    return [r for i, r in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def _labelled(tokenizer: Any, text: str, spans: list[tuple[int, int]]) -> Example:
    """`text` tokenized whole, as the app tokenizes a prompt (no special tokens added: a template writes its own);
    a token is trained on when it starts inside one of the character `spans`. Tokenizing the whole text, not piece by
    piece, gives the tokens the base saw in its own training (a sentencepiece tokenizer would otherwise start every
    piece with a word boundary)."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = [token if any(a <= start < b for a, b in spans) else IGNORE
              for token, (start, _) in zip(encoded["input_ids"], encoded["offset_mapping"])]
    return Example(list(encoded["input_ids"]), labels)


def encode_row(row: dict, tokenizer: Any, fmt: str) -> Example:
    text, spans = sft_rows.learned_text(row, fmt, tokenizer)
    example = _labelled(tokenizer, text, spans)
    if fmt == "prompt-completion" and tokenizer.eos_token_id is not None:  # the model learns to end its answer
        example.input_ids.append(tokenizer.eos_token_id)
        example.labels.append(tokenizer.eos_token_id)
    return example


def encode(rows: list[dict], tokenizer: Any, fmt: str, max_length: int, where: str) -> list[Example]:
    """Every row as an Example cut at `max_length` tokens; a row that does not fit its format is refused with its
    number, and rows left without a trained token after the cut are dropped (said on stderr)."""
    import sys

    if fmt == "chat" and not getattr(tokenizer, "chat_template", None):
        raise SystemExit("chat rows need a base model with a chat template; this one has none: use prompt / "
                         "completion rows")
    out, cut = [], 0
    for n, row in enumerate(rows, 1):
        try:
            example = encode_row(row, tokenizer, fmt)
        except ValueError as e:
            raise SystemExit(f"{where} row {n}: {e}") from None
        example = Example(example.input_ids[:max_length], example.labels[:max_length])
        if any(label != IGNORE for label in example.labels):
            out.append(example)
        else:
            cut += 1
    if cut:
        print(f"{where}: {cut} row(s) dropped: nothing to learn left within {max_length} tokens "
              "(raise --block_size)", file=sys.stderr)
    if not out:
        raise SystemExit(f"{where}: no usable rows")
    return out


class Examples(torch.utils.data.Dataset):
    def __init__(self, examples: list[Example]) -> None:
        self.examples = examples

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]


def collate(pad_id: int):
    """Right-pad a batch: ids with `pad_id`, labels with IGNORE, an attention mask over the real tokens."""

    def pad(batch: list[Example]) -> dict[str, torch.Tensor]:
        width = max(len(e.input_ids) for e in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, e in enumerate(batch):
            n = len(e.input_ids)
            ids[row, :n] = torch.tensor(e.input_ids)
            labels[row, :n] = torch.tensor(e.labels)
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}

    return pad


@torch.no_grad()
def completion_loss(model: torch.nn.Module, examples: list[Example], pad_id: int, batch_size: int = 16) -> float:
    """Mean loss (nats per trained token) over the examples' labelled tokens."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad = collate(pad_id)
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = {k: v.to(device) for k, v in pad(examples[start:start + batch_size]).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        targets = batch["labels"][:, 1:]
        losses = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=IGNORE,
                                                   reduction="sum")
        total += losses.item()
        count += int((targets != IGNORE).sum())
    model.train(was_training)
    return total / max(count, 1)
