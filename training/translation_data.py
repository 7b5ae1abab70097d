"""Parallel sentences for translation training, through `datasets`, and a validation split that shares no sentence
with training.

Sources: a hub dataset with a `translation` dict column (opus-100, wmt: `{"en": ..., "zh": ...}`), or local
`.jsonl` / `.csv` / `.parquet` files with one column per language. The split is grouped: pairs that share a sentence
(Tatoeba has several translations of "Hi.") form one group, and whole groups go to validation, so no validation
source or reference is ever seen in training.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from datasets import load_dataset

BUILDERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


@dataclass
class Pairs:
    """Aligned sentences: `sentences[lang][i]` are translations of each other."""

    sentences: dict[str, list[str]]

    def __len__(self) -> int:
        return len(next(iter(self.sentences.values())))

    def subset(self, ids: list[int]) -> "Pairs":
        return Pairs({lang: [col[i] for i in ids] for lang, col in self.sentences.items()})

    def __add__(self, other: "Pairs") -> "Pairs":
        return Pairs({lang: col + other.sentences[lang] for lang, col in self.sentences.items()})

    def references(self, src: str, tgt: str) -> tuple[list[str], list[list[str]]]:
        """Unique sources and, for each, all its translations: sacreBLEU scores against every reference."""
        refs: dict[str, list[str]] = {}
        for s, t in zip(self.sentences[src], self.sentences[tgt]):
            refs.setdefault(s, []).append(t)
        return list(refs), list(refs.values())


def load_pairs(source: str, langs: tuple[str, str], split: str = "train") -> Pairs:
    path = Path(source)
    if path.suffix in BUILDERS or path.is_dir() or source.startswith((".", "/")):
        if path.is_dir():
            files = sorted(str(p) for p in path.iterdir() if p.suffix in BUILDERS)
        else:
            files = [str(path)] if path.is_file() else []
        if not files:
            raise SystemExit(f"no .jsonl/.csv/.parquet file at {source}")
        ds = load_dataset(BUILDERS[Path(files[0]).suffix], data_files=files, split="train")
    else:
        ds = load_dataset(source, split=split)  # a hub dataset; needs network or the datasets cache
    if "translation" in ds.column_names:
        rows = ds["translation"]
        missing = [lang for lang in langs if lang not in (rows[0] if rows else {})]
        if missing:
            raise SystemExit(f"{source}: its translation column has no {missing}; it has {sorted(rows[0])}")
        columns = {lang: [r[lang] for r in rows] for lang in langs}
    else:
        missing = [lang for lang in langs if lang not in ds.column_names]
        if missing:
            raise SystemExit(f"{source}: no column {missing}; columns are {ds.column_names} "
                             "(use --source_lang/--target_lang with the column names)")
        columns = {lang: ds[lang] for lang in langs}
    keep = [i for i in range(len(ds)) if all(isinstance(columns[lang][i], str) and columns[lang][i].strip()
                                             for lang in langs)]
    return Pairs({lang: [columns[lang][i].strip() for i in keep] for lang in langs})


def grouped_split(pairs: Pairs, percentage: float, seed: int) -> tuple[Pairs, Pairs]:
    """About `percentage` % of the pairs for validation, in whole groups of pairs linked by a shared sentence."""
    if not 0 < percentage < 100:
        raise SystemExit("--validation_split_percentage must be between 0 and 100")
    parent = list(range(len(pairs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for lang, col in pairs.sentences.items():
        first: dict[str, int] = {}
        for i, sentence in enumerate(col):
            j = first.setdefault(sentence, i)
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(pairs)):
        groups.setdefault(find(i), []).append(i)
    order = sorted(groups.values(), key=lambda g: g[0])
    random.Random(seed).shuffle(order)
    want = max(1, int(len(pairs) * percentage / 100))
    val: list[int] = []
    for group in order:
        if len(val) >= want:
            break
        if len(group) <= max(1, want // 20):  # a giant group would swallow the split
            val.extend(group)
    val_set = set(val)
    train = [i for i in range(len(pairs)) if i not in val_set]
    return pairs.subset(train), pairs.subset(sorted(val))


def drop_overlap(train: Pairs, validation: Pairs) -> Pairs:
    """Training pairs whose sentences appear in a separately given validation file are dropped."""
    seen = {s for col in validation.sentences.values() for s in col}
    ids = [i for i in range(len(train)) if not any(col[i] in seen for col in train.sentences.values())]
    return train.subset(ids)
