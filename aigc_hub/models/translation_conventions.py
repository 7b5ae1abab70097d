"""How each family of shared translation models is asked for a direction, detected from the model itself.

| convention | detected from | a direction is asked for with |
|---|---|---|
| `tags` (this project's models) | `translation_directions` in config.json | `>>tgt<<` at the start of the source |
| `opus-mt` (one direction) | Marian config, no `>>xx<<` tokens; languages from the repo name `opus-mt-SRC-TGT`, else the card's two `language:` entries | nothing: the model does one thing |
| `opus-mt-multi` | Marian config and `>>xx<<` tokens in vocab.json | `>>tgt<<` at the start of the source |
| `m2m100` | `model_type: m2m_100`, M2M100 tokenizer | `tokenizer.src_lang` + `forced_bos_token_id` of `__tgt__` |
| `nllb` | `model_type: m2m_100`, NLLB tokenizer (codes like `eng_Latn`) | `tokenizer.src_lang` + `forced_bos_token_id` |
| `mbart-50` | `model_type: mbart`, codes like `en_XX` | `tokenizer.src_lang` + `forced_bos_token_id` |
| `t5` | `task_specific_params` `translation_X_to_Y` in config.json | their `prefix` ("translate English to German: ") |

Everything here reads files (config, tokenizer config, vocabulary, card): the directions are known before the weights
are loaded, for the From / To lists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

TAG = re.compile(r"^>>([A-Za-z_]{2,12})<<$")
OPUS_NAME = re.compile(r"opus-mt-(?:tc-[a-z]+-)?([A-Za-z_]+)-([A-Za-z_]+)$")
T5_TASK = re.compile(r"^translation_([a-z]{2,3})_to_([a-z]{2,3})$")
LANG_TOKEN_FAMILIES = ("m2m100", "nllb", "mbart-50")


@dataclass(frozen=True)
class Convention:
    kind: str  # one of the table's conventions
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    pairs: tuple[tuple[str, str], ...] = ()  # explicit pairs; empty: any source to any other target
    prefixes: dict[tuple[str, str], str] = field(default_factory=dict)  # t5: the task prefix of each pair

    def directions(self) -> list[tuple[str, str]]:
        if self.pairs:
            return list(self.pairs)
        return [(a, b) for a in self.sources for b in self.targets if a != b]

    def supports(self, src: str, tgt: str) -> bool:
        if self.pairs:
            return (src, tgt) in self.pairs
        return src in self.sources and tgt in self.targets and src != tgt

    def source_text(self, text: str, src: str, tgt: str) -> str:
        if self.kind in ("tags", "opus-mt-multi"):
            return f">>{tgt}<< {text}"
        if self.kind == "t5":
            return self.prefixes[(src, tgt)] + text
        return text

    def prepare(self, tokenizer: Any, src: str, tgt: str) -> dict:
        """Set the tokenizer up for `src` (language-token families) and return the generate() arguments that ask
        for `tgt`. Call it on the model's worker thread: `src_lang` is tokenizer state."""
        if self.kind not in LANG_TOKEN_FAMILIES:
            return {}
        tokenizer.src_lang = src
        code = f"__{tgt}__" if self.kind == "m2m100" else tgt
        return {"forced_bos_token_id": tokenizer.convert_tokens_to_ids(code)}

    def default(self) -> tuple[str, str]:
        """The direction the From / To lists start at: the first pair, or from English into another language."""
        if self.pairs:
            return self.pairs[0]
        src = next((c for c in ("en", "eng_Latn", "en_XX") if c in self.sources), self.sources[0])
        tgt = next((c for c in ("fr", "fra_Latn", "fr_XX", "de") if c in self.targets and c != src),
                   next(c for c in self.targets if c != src))
        return src, tgt

    def describe(self) -> str:
        many = "any of its languages to any other" if not self.pairs else ", ".join(f"{a}→{b}" for a, b in self.pairs)
        return f"{self.kind}: {many}"


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def card_languages(folder: Path) -> list[str]:
    """The card's `language:` list (YAML front matter), [] when none."""
    import yaml

    try:
        text = (folder / "README.md").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    if not text.startswith("---"):
        return []
    try:
        meta = yaml.safe_load(text.split("---", 2)[1]) or {}
    except yaml.YAMLError:
        return []
    langs = meta.get("language") if isinstance(meta, dict) else None
    langs = [langs] if isinstance(langs, str) else langs
    return [str(x) for x in langs or [] if isinstance(x, (str, int))]


def _fairseq_codes(module: str) -> list[str]:
    import importlib

    codes = importlib.import_module(f"transformers.models.{module}").FAIRSEQ_LANGUAGE_CODES
    return list(codes["m2m100"] if isinstance(codes, dict) else codes)


def detect(config: dict, folder: Path, ref: str) -> Convention:
    """The convention of a translation model folder; ModelLoadError saying what is missing when none fits."""
    declared = config.get("translation_directions")
    if declared:
        pairs = tuple((str(a), str(b)) for a, b in declared)
        return Convention("tags", tuple(dict.fromkeys(a for a, _ in pairs)),
                          tuple(dict.fromkeys(b for _, b in pairs)), pairs)
    kind = config.get("model_type")
    if kind == "marian":
        return _marian(folder, ref)
    if kind == "m2m_100":
        tok_class = str(_json(folder / "tokenizer_config.json").get("tokenizer_class", ""))
        if tok_class.startswith("Nllb"):
            codes = tuple(_fairseq_codes("nllb.tokenization_nllb"))
            return Convention("nllb", codes, codes)
        codes = tuple(_fairseq_codes("m2m_100.tokenization_m2m_100"))
        return Convention("m2m100", codes, codes)
    if kind == "mbart":
        codes = tuple(_fairseq_codes("mbart50.tokenization_mbart50"))
        return Convention("mbart-50", codes, codes)
    tasks = config.get("task_specific_params") or {}
    found = {m.groups(): str(v.get("prefix", "")) for k, v in tasks.items()
             if (m := T5_TASK.match(k)) and isinstance(v, dict)}
    if found:
        pairs = tuple(found)
        return Convention("t5", tuple(dict.fromkeys(a for a, _ in pairs)), tuple(dict.fromkeys(b for _, b in pairs)),
                          pairs, found)
    raise ModelLoadError(f"{ref}: a {str(kind)[:40]} seq2seq model that declares no translation direction (no "
                         "translation_directions, language tokens or translation task prefixes)")


def _marian(folder: Path, ref: str) -> Convention:
    vocab = _json(folder / "vocab.json") or _json(folder / "tokenizer.json").get("model", {}).get("vocab", {})
    targets = tuple(m.group(1) for token in vocab if (m := TAG.match(str(token))))
    named = OPUS_NAME.search(Path(ref.split("@")[0]).name)  # opus-mt-SRC-TGT: SRC, TGT may be groups (ROMANCE)
    langs = card_languages(folder)
    if targets:  # several targets, asked for with >>xx<< tags
        single = named.group(1) if named and named.group(1).islower() and len(named.group(1)) <= 3 else None
        sources = (single,) if single else tuple(x for x in langs if x not in targets) or ("any",)
        return Convention("opus-mt-multi", sources, targets, tuple((a, b) for a in sources for b in targets if a != b))
    if named:
        pair = named.groups()
    elif len(langs) == 2:  # the card's two languages, source first
        pair = (langs[0], langs[1])
    else:
        raise ModelLoadError(f"{ref}: a Marian model whose direction cannot be told: name it opus-mt-SRC-TGT, or list "
                             "its two languages (source first) under `language:` in its card")
    return Convention("opus-mt", (pair[0],), (pair[1],), (pair,))


def language_name(code: str) -> str:
    """`English (en)`, `Chinese (Simplified) (zho_Hans)`: langcodes' English name, with the code."""
    import langcodes

    plain = code.strip("_")
    if plain.endswith("_XX"):  # mBART-50's "no region"
        plain = plain[:-3]
    try:
        name = langcodes.Language.get(plain.replace("_", "-")).display_name()
    except (ValueError, LookupError):
        return code
    return code if name.lower().startswith("unknown") else f"{name} ({code})"
