"""Argument checks every service shares: integers, finite numbers, counts, seeds, free text.

Each check raises `GenerationError` with a message that names the argument, so a face (UI, CLI, API) can show it as
the user's error without knowing which check failed.
"""

from __future__ import annotations

import math
import secrets

from .errors import GenerationError

MAX_SEED = 2**32 - 1


def as_int(value: object, what: str) -> int:
    """`value` as an int; NaN, inf, fractions, booleans and non-numbers get a clear GenerationError."""
    try:
        number = float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number != int(number):
        raise GenerationError(f"{what} must be an integer, got {str(value)[:40]!r}")
    return int(number)


def as_number(value: object, what: str) -> float:
    """`value` as a finite float."""
    if isinstance(value, bool):
        raise GenerationError(f"{what} must be a number, got {value!r}")
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        raise GenerationError(f"{what} must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(x):
        raise GenerationError(f"{what} must be finite, got {value!r}")
    return x


def count(value: object, limit: int, what: str) -> int:
    """An integer in [1, limit]."""
    n = as_int(value, what)
    if not 1 <= n <= limit:
        raise GenerationError(f"{what} must be between 1 and {limit}, got {n}")
    return n


def resolve_seed(seed: object) -> int:
    """−1 or None → a fresh random seed; otherwise an integer in [0, 2**32 − 1]."""
    value = -1 if seed is None else as_int(seed, "seed")
    if value == -1:
        return secrets.randbelow(2**31)
    if not 0 <= value <= MAX_SEED:
        raise GenerationError(f"seed must be -1 (random) or between 0 and {MAX_SEED}, got {value}")
    return value


def check_text(value: object, what: str, max_chars: int, *, allowed_controls: str = "\n\t\r") -> str:
    """Non-empty text of at most `max_chars` characters, without control characters other than `allowed_controls`."""
    if not isinstance(value, str) or not value.strip():
        raise GenerationError(f"the {what} is empty")
    if len(value) > max_chars:
        raise GenerationError(f"the {what} has {len(value)} characters; the limit is {max_chars}")
    if any(ord(c) < 32 and c not in allowed_controls for c in value):
        raise GenerationError(f"the {what} holds control characters (only newlines and tabs are text)")
    return check_unicode(value, what)


def check_unicode(value: str, what: str) -> str:
    """`value` if it is valid Unicode (a lone surrogate, from undecodable bytes, is not text a tokenizer takes)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise GenerationError(f"the {what} is not valid Unicode text ({e.reason} at character {e.start})") from None
    return value
