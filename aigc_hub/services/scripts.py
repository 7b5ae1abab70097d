"""Whether a line is written in its source language's script: a line of Chinese sent for en→zh comes back as English
noise without a word of warning otherwise. Writing systems are told apart by their Unicode character names; a
language's script comes from its code (ISO 639-1 or -3, or an NLLB code that names its script: `zho_Hans`).
Languages of a script not listed here are not checked."""

from __future__ import annotations

import unicodedata

# The Unicode name prefixes of each writing system's letters.
SCRIPTS = {"CJK": "Han", "HIRAGANA": "Kana", "KATAKANA": "Kana", "HANGUL": "Hangul", "CYRILLIC": "Cyrillic",
           "ARABIC": "Arabic", "GREEK": "Greek", "HEBREW": "Hebrew", "DEVANAGARI": "Devanagari", "THAI": "Thai",
           "LATIN": "Latin"}
NAMES = {"Han": "Chinese characters", "Kana": "Japanese kana", "Hangul": "Korean", "Cyrillic": "Cyrillic",
         "Arabic": "Arabic script", "Greek": "Greek", "Hebrew": "Hebrew", "Devanagari": "Devanagari", "Thai": "Thai",
         "Latin": "Latin letters"}
_LATIN = ("en eng fr fra de deu es spa it ita pt por nl nld sv swe da dan no nor nb nob fi fin pl pol cs ces sk slk "
          "ro ron hu hun tr tur vi vie id ind ms msa ca cat eo epo la lat et est lv lav lt lit sl slv hr hrv")
LANGUAGE_SCRIPTS: dict[str, set[str]] = {
    **{code: {"Latin"} for code in _LATIN.split()},
    **{code: {"Han"} for code in ("zh", "zho", "cmn", "yue")}, **{code: {"Han", "Kana"} for code in ("ja", "jpn")},
    **{code: {"Hangul", "Han"} for code in ("ko", "kor")},
    **{code: {"Cyrillic"} for code in ("ru", "rus", "uk", "ukr", "bg", "bul", "be", "bel", "mk", "mkd")},
    **{code: {"Arabic"} for code in ("ar", "ara", "fa", "fas", "ur", "urd")}, "el": {"Greek"}, "ell": {"Greek"},
    "he": {"Hebrew"}, "heb": {"Hebrew"}, "hi": {"Devanagari"}, "hin": {"Devanagari"}, "th": {"Thai"},
    "tha": {"Thai"},
}
NLLB_SCRIPTS = {"Latn": "Latin", "Hans": "Han", "Hant": "Han", "Jpan": "Kana", "Hang": "Hangul", "Cyrl": "Cyrillic",
                "Arab": "Arabic", "Grek": "Greek", "Hebr": "Hebrew", "Deva": "Devanagari", "Thai": "Thai"}


def script_of(char: str) -> str | None:
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    return SCRIPTS.get(name.split(" ", 1)[0])


def expected_scripts(language: str) -> set[str] | None:
    """The scripts a language is written in, from its code; None when it is not known here."""
    code, _, tail = language.replace("-", "_").partition("_")
    if tail in NLLB_SCRIPTS:
        return {NLLB_SCRIPTS[tail]} | ({"Han"} if tail == "Jpan" else set())
    return LANGUAGE_SCRIPTS.get(code.lower())


def foreign_script(line: str, language: str) -> str | None:
    """The writing system `line` is mostly written in when that is not `language`'s (None: it is, or cannot tell):
    at least two letters, and under a fifth of them in the language's scripts."""
    wanted = expected_scripts(language)
    if not wanted:
        return None
    found = [s for s in map(script_of, line) if s is not None]
    if len(found) < 2 or sum(s in wanted for s in found) * 5 >= len(found):
        return None
    return max(set(found) - wanted, key=found.count)


def script_notice(lines: list[str], src: str) -> str | None:
    """One notice for the lines not written in `src`'s script (the direction may be the wrong way round)."""
    off = [(i, s) for i, line in enumerate(lines) if (s := foreign_script(line, src)) is not None]
    if not off:
        return None
    where = ", ".join(str(i + 1) for i, _ in off[:10]) + (", …" if len(off) > 10 else "")
    script = max({s for _, s in off}, key=[s for _, s in off].count)
    return (f"line{'s' if len(off) > 1 else ''} {where} {'are' if len(off) > 1 else 'is'} in {NAMES[script]}, not "
            f"{src}: is the source language right (swap the direction)?")
