"""TranslationService: many lines at once, beam search, n-best lists with scores. No Gradio here.

- One line in, one line out, order kept, empty lines kept empty.
- Direction: what the model can do, detected from its files by its convention (this project's tags, OPUS-MT,
  M2M100 / NLLB, mBART-50, T5 prefixes: models/translation_conventions.py); anything else is refused with the list.
- Long lines are split at sentence ends (. ! ? 。！？) into pieces that fit the length the model was trained on,
  translated as one batch with everything else, and joined again (a notice says so); a sentence longer than that is
  cut into windows. Lines over MAX_LINE_CHARS and requests over MAX_LINES are refused: the CLI feeds big files in
  chunks.
- Beam search is deterministic: the same input gives the same output.
- A line written in another script than the source language's gets a notice (scripts.py): "你好" under en→zh.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..models.translation import BATCH, Candidate, translate_batch
from ..models.translation_conventions import Convention
from ..models.translation_conventions import detect as detect_convention
from ..errors import GenerationError
from ..validation import check_unicode
from .params import TRANSLATION
from .registry import ModelRegistry
from .requests import TranslationRequest
from .scripts import script_notice

TASK = "translation"

MAX_LINES = 1000
MAX_LINE_CHARS = 2000
UNSPACED = {"zh", "ja", "ko", "th", "zho", "jpn", "kor", "tha", "yue", "cmn"}  # joined without spaces
SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s*")
Progress = Callable[[int, int], None]


@dataclass
class TranslatedLine:
    source: str
    alternatives: list[Candidate] = field(default_factory=list)  # best first; empty for an empty line

    @property
    def text(self) -> str:
        return self.alternatives[0].text if self.alternatives else ""


@dataclass
class TranslationResult:
    ref: str
    src: str
    tgt: str
    lines: list[TranslatedLine]
    notices: list[str]

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


def split_lines(text: object) -> list[str]:
    if isinstance(text, list):
        lines = text
    elif isinstance(text, str):
        lines = text.split("\n")
    else:
        raise GenerationError(f"the input must be text, got {type(text).__name__}")
    if not all(isinstance(line, str) for line in lines):
        raise GenerationError("every input line must be text")
    return [line.rstrip("\r") for line in lines]


class TranslationService:
    def __init__(self, registry: ModelRegistry | None = None) -> None:
        self.registry = registry or ModelRegistry()
        self._conventions: dict[tuple, Convention] = {}

    def convention(self, ref: str) -> Convention:
        """How `ref` is asked for a direction, and which it can do: from its files (the weights are not loaded)."""
        family, path, config = self.registry.base_folder_of(ref)  # an adapter is asked as its base is
        if family.task != TASK:
            raise GenerationError(f"{ref} is a {family.name} model for {family.task}, not for {TASK}")
        # Detection reads the vocabulary and card (an OPUS-MT vocab.json is megabytes): once per folder version, not
        # per request. A push renames a new folder into place (a new inode); an edit changes config.json's mtime.
        folder, marker = path.stat(), (path / family.config_file).stat()
        key = (ref, str(path), folder.st_ino, marker.st_mtime_ns)
        if key not in self._conventions:
            self._conventions[key] = detect_convention(config, path, ref)
        return self._conventions[key]

    def directions(self, ref: str) -> list[tuple[str, str]]:
        """Every (source, target) pair `ref` translates."""
        return self.convention(ref).directions()

    def languages(self, ref: str) -> tuple[list[str], list[str]]:
        """The languages `ref` translates from and into (the From / To lists)."""
        conv = self.convention(ref)
        return list(conv.sources), list(conv.targets)

    def translate(self, ref: str, text: str | list[str], src: str, tgt: str, beams: object = 4, n_best: object = 1,
                  progress: Progress | None = None) -> TranslationResult:
        """`run` with the request's fields as arguments (scripts, tests)."""
        return self.run(TranslationRequest(ref, text, src, tgt, beams, n_best), progress)

    def run(self, request: TranslationRequest, progress: Progress | None = None) -> TranslationResult:
        """Every line of the request translated (checked against params.TRANSLATION first), in order."""
        ref, src, tgt = request.model, request.src, request.tgt
        lines = split_lines(request.lines)
        if len(lines) > MAX_LINES:
            raise GenerationError(f"{len(lines)} lines; the limit is {MAX_LINES} per request (the CLI takes "
                                  "files of any length)")
        if not any(line.strip() for line in lines):
            raise GenerationError("the input is empty: write one sentence per line")
        for i, line in enumerate(lines):
            if len(line) > MAX_LINE_CHARS:
                raise GenerationError(f"line {i + 1} has {len(line)} characters; the limit is {MAX_LINE_CHARS} "
                                      "(split it into sentences)")
            if any(ord(c) < 32 and c != "\t" for c in line):
                raise GenerationError(f"line {i + 1} holds control characters")
            check_unicode(line, f"line {i + 1}")
        beams = TRANSLATION["beams"].check(request.beams)
        n_best = TRANSLATION["n_best"].check(request.n_best)
        if n_best > beams:
            raise GenerationError(f"n_best must be at most the beam size ({beams}), got {n_best}")
        conv = self.convention(ref)
        if not conv.supports(src, tgt):
            raise GenerationError(f"{ref} does not translate {str(src)[:20]}→{str(tgt)[:20]}; {known(conv)}")
        entry = self.registry.get_for(ref, TASK)
        config = entry.config
        # This project's models state the length they trained on; others: their position limit, at most 256.
        limit = int(config.get("translation_max_source_length") or min(config.get("max_position_embeddings") or 256,
                                                                       256))
        tok = entry.tokenizer

        notices = [n for n in [script_notice(lines, src)] if n]
        pieces: list[tuple[int, str]] = []  # (line index, piece of that line)
        # On the worker, like every other use of this tokenizer: a fast tokenizer keeps its padding / truncation
        # settings in shared state, and an unpadded call here racing a padded batch there broke the batch.
        parts_of = self.registry.run(entry.device, lambda: [segment(line.strip(), tok, limit) if line.strip() else []
                                                            for line in lines])
        for i, parts in enumerate(parts_of):
            if len(parts) > 1:
                notices.append(f"line {i + 1} was translated in {len(parts)} pieces (sentences)")
            pieces.extend((i, p) for p in parts)
        order = sorted(range(len(pieces)), key=lambda k: len(pieces[k][1]))  # similar lengths batch together
        results: list[list[Candidate]] = [[] for _ in pieces]
        settings = dict(beams=beams, n_best=n_best, max_source_tokens=limit + 8, max_new_tokens=2 * limit + 16,
                        src=src, convention=conv)

        per_call = BATCH * getattr(entry.model, "workers", 1)  # CTranslate2 runs `workers` batches at a time

        def run(items: list[list[str]]) -> list[list[list[Candidate]]]:
            """On the worker: the pieces of several requests (same model and settings), one result list each."""
            texts = [t for item in items for t in item]
            by_length = sorted(range(len(texts)), key=lambda k: len(texts[k]))
            out: list[list[Candidate]] = [[] for _ in texts]
            for start in range(0, len(by_length), per_call):
                ids = by_length[start : start + per_call]
                for k, cands in zip(ids, translate_batch(entry.model, tok, [texts[k] for k in ids], tgt, **settings)):
                    out[k] = cands
            ends = np.cumsum([len(item) for item in items])
            return [out[end - len(item) : end] for item, end in zip(items, ends)]

        key = ("translate", ref, id(entry.model), src, tgt, beams, n_best, limit)
        for start in range(0, len(order), per_call):
            ids = order[start : start + per_call]
            out = self.registry.batcher.call(entry.device, key, [pieces[k][1] for k in ids], len(ids), run)
            for k, cands in zip(ids, out):
                results[k] = cands
            if progress:
                progress(min(start + per_call, len(order)), len(order))
        joiner = "" if tgt.split("_")[0].lower() in UNSPACED else " "
        translated = [TranslatedLine(line) for line in lines]
        by_line: dict[int, list[list[Candidate]]] = {}
        for (i, _), cands in zip(pieces, results):
            by_line.setdefault(i, []).append(cands)
        for i, parts in by_line.items():
            if len(parts) == 1:
                translated[i].alternatives = parts[0]
            else:  # a split line: the best of each piece, joined
                scores = [p[0].score for p in parts]
                score = None if None in scores else sum(scores) / len(scores)
                translated[i].alternatives = [Candidate(joiner.join(p[0].text for p in parts), score)]
        return TranslationResult(ref, src, tgt, translated, notices)


def known(conv: Convention) -> str:
    """What a model can do, for an error message: its pairs, or (many-to-many) a few of its languages."""
    if conv.pairs:
        return "it knows: " + ", ".join(f"{a}→{b}" for a, b in conv.pairs[:20])
    return (f"it translates between its {len(conv.sources)} languages: "
            + ", ".join(conv.sources[:12]) + (", …" if len(conv.sources) > 12 else ""))


def segment(line: str, tokenizer, limit: int) -> list[str]:
    """`line` as pieces of at most `limit` tokens: whole sentences where they fit, token windows where not."""
    def size(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 2  # + tag and </s>

    if size(line) <= limit:
        return [line]
    pieces: list[str] = []
    current = ""
    for sentence in [s for s in SENTENCE_END.split(line) if s]:
        joined = f"{current} {sentence}".strip() if current else sentence
        if size(joined) <= limit:
            current = joined
            continue
        if current:
            pieces.append(current)
        if size(sentence) <= limit:
            current = sentence
        else:  # one sentence longer than the model's training length: cut it into token windows
            ids = tokenizer(sentence, add_special_tokens=False)["input_ids"]
            step = max(1, limit - 2)
            pieces.extend(tokenizer.decode(ids[k : k + step]).strip() for k in range(0, len(ids), step))
            current = ""
    if current:
        pieces.append(current)
    return [p for p in pieces if p]
