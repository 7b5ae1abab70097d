"""Text corpora for language-model training, through `datasets`, and sequence packing.

Sources: a hub dataset name, local `.txt` / `.jsonl` / `.parquet` files (or a folder of them). Validation comes
from `--validation_file` or a percentage: for one plain-text file the split is by characters, the last N % (the
usual Tiny Shakespeare split); for a corpus of documents it is N % of the documents, drawn with the seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from datasets import load_dataset

BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


@dataclass
class TextSplits:
    train: list[str]
    validation: list[str]

    def chars(self, split: str) -> int:
        return sum(len(t) for t in getattr(self, split))


def _read(source: str, text_column: str, split: str = "train") -> list[str]:
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in BUILDERS)
        if not files:
            raise SystemExit(f"no .txt/.jsonl/.parquet/.csv files in {source}")
        builder = BUILDERS[files[0].suffix]
        data_files = [str(p) for p in files if BUILDERS[p.suffix] == builder]
    elif path.suffix in BUILDERS:
        if not path.is_file():
            raise SystemExit(f"dataset file not found: {source}")
        builder, data_files = BUILDERS[path.suffix], [str(path)]
    elif path.exists() or source.startswith((".", "/")):
        raise SystemExit(f"unsupported dataset {source}: use .txt, .jsonl, .parquet or .csv files")
    else:
        ds = load_dataset(source, split=split)  # a hub dataset; needs network or the datasets cache
        return _column(ds, text_column, source)
    if builder == "text":  # a plain-text file is one document: packing needs no line structure
        return [Path(f).read_text(encoding="utf-8") for f in data_files]
    ds = load_dataset(builder, data_files=data_files, split="train")
    return _column(ds, text_column, source)


def _column(ds, text_column: str, source: str) -> list[str]:
    if text_column not in ds.column_names:
        raise SystemExit(f"--text_column {text_column!r} not in {source}: columns are {ds.column_names}")
    return [t for t in ds[text_column] if isinstance(t, str) and t]


def load_texts(source: str, *, text_column: str = "text", validation_file: str | None = None,
               validation_percentage: float = 10.0, seed: int = 0) -> TextSplits:
    train = _read(source, text_column)
    if validation_file:
        return TextSplits(train, _read(validation_file, text_column))
    if not 0 < validation_percentage < 100:
        raise SystemExit("--validation_split_percentage must be between 0 and 100")
    if len(train) == 1:  # one document: the last N % of its characters
        text = train[0]
        cut = int(len(text) * (1 - validation_percentage / 100))
        return TextSplits([text[:cut]], [text[cut:]])
    order = list(range(len(train)))
    random.Random(seed).shuffle(order)
    n_val = max(1, int(len(train) * validation_percentage / 100))
    val_ids = set(order[:n_val])
    return TextSplits([t for i, t in enumerate(train) if i not in val_ids], [train[i] for i in sorted(val_ids)])


def pack(texts: list[str], tokenizer, block_size: int) -> torch.Tensor:
    """Tokenize, join documents with EOS and cut into (N, block_size) windows: no padding is ever trained on."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for text in texts:
        ids.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        if len(texts) > 1:
            ids.append(eos)
    n = len(ids) // block_size
    if n == 0:
        raise SystemExit(f"the text gives {len(ids)} tokens, fewer than one block of {block_size}")
    return torch.tensor(ids[: n * block_size], dtype=torch.long).view(n, block_size)


class Blocks(torch.utils.data.Dataset):
    """Packed token windows as a map-style dataset of {"input_ids"}."""

    def __init__(self, blocks: torch.Tensor) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.blocks[i]}


@dataclass
class TextStream:
    """A corpus read lazily (`--streaming`): documents for training, a held-out head for validation, and a sample
    to train the tokenizer on."""

    train: object  # datasets.IterableDataset of {text_column: str}, shuffled per epoch
    validation: list[str]
    tokenizer_sample: list[str]
    text_column: str
    continuous: bool  # plain text read line by line: join lines as they were, not as separate documents


def load_text_stream(source: str, *, text_column: str = "text", validation_file: str | None = None,
                     validation_docs: int = 500, tokenizer_docs: int = 20_000, seed: int = 0,
                     shuffle_buffer: int = 10_000) -> TextStream:
    """Stream `source` with `datasets` (never all in memory). Without a validation file, the first
    `validation_docs` documents are held out and the training stream starts after them."""
    path = Path(source)
    files = sorted(p for p in path.iterdir() if p.suffix in BUILDERS) if path.is_dir() else [path]
    if path.exists() or source.startswith((".", "/")):
        if not files or files[0].suffix not in BUILDERS or not files[0].exists():
            raise SystemExit(f"unsupported or missing dataset {source}: use .txt, .jsonl, .parquet or .csv files")
        builder = BUILDERS[files[0].suffix]
        stream = load_dataset(builder, data_files=[str(p) for p in files], split="train", streaming=True)
    else:
        builder = "hub"
        stream = load_dataset(source, split="train", streaming=True)
    continuous = builder == "text"
    if continuous:  # the text builder drops line ends; put them back so the model sees the text as written
        stream = stream.map(lambda row: {"text": row["text"] + "\n"})
        text_column = "text"
    if validation_file:
        validation = _read(validation_file, text_column)
    else:
        validation = [row[text_column] for row in stream.take(validation_docs)]
        stream = stream.skip(validation_docs)
        if continuous:
            validation = ["".join(validation)]
    sample = [row[text_column] for row in stream.take(tokenizer_docs)]
    if not sample:
        raise SystemExit(f"{source}: no training text left after the validation head")
    return TextStream(stream.shuffle(seed=seed, buffer_size=shuffle_buffer), validation, sample, text_column,
                      continuous)


class PackedStream(torch.utils.data.IterableDataset):
    """Tokenize and pack a document stream on the fly into {"input_ids": (block_size,)} items."""

    def __init__(self, data: TextStream, tokenizer, block_size: int) -> None:
        self.data, self.tokenizer, self.block_size = data, tokenizer, block_size

    def set_epoch(self, epoch: int) -> None:
        self.data.train.set_epoch(epoch)  # a new shuffle order per epoch, the same after a resume

    def __iter__(self):
        buffer: list[int] = []
        eos = [] if self.data.continuous else [self.tokenizer.eos_token_id]
        for row in self.data.train:
            text = row[self.data.text_column]
            if not isinstance(text, str) or not text:
                continue
            buffer.extend(self.tokenizer(text, add_special_tokens=False)["input_ids"] + eos)
            while len(buffer) >= self.block_size:
                yield {"input_ids": torch.tensor(buffer[: self.block_size], dtype=torch.long)}
                buffer = buffer[self.block_size :]
