"""The parameters of a text request, written once: bounds, defaults and help that the Text tab's controls, the /v1
body checks, the API and MCP docs (the handlers' Args) and the CLI's options all read, and the one check every
front end's value goes through, so one out-of-range value gets one refusal wherever it was sent.

Front ends may pick their own defaults (OpenAI's /v1/completions writes 16 tokens unless asked), never other bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import GenerationError
from ..validation import MAX_SEED, as_int, as_number


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # int or float
    default: int | float
    lo: int | float
    hi: int | float
    help: str
    lo_open: bool = False  # lo itself is out (top_p: 0 keeps no token)
    rule: str = ""  # how a refusal states the range, when the plain bounds would not say it

    def range_text(self) -> str:
        if self.rule:
            return self.rule
        return f"in ({self.lo:g}, {self.hi:g}]" if self.lo_open else f"between {self.lo:g} and {self.hi:g}"

    def check(self, value: object) -> int | float:
        """`value` as this parameter's kind, within its bounds; GenerationError (the user's error) otherwise."""
        number = as_int(value, self.name) if self.kind is int else as_number(value, self.name)
        low_ok = number > self.lo if self.lo_open else number >= self.lo
        if not (low_ok and number <= self.hi):
            shown = str(number) if isinstance(number, int) else f"{number:g}"
            raise GenerationError(f"{self.name} must be {self.range_text()}, got {shown}")
        return number


MAX_NEW_TOKENS = 2048
MAX_CHOICES = 16  # /v1: prompts × n in one request

TEXT = {p.name: p for p in [
    Param("max_new_tokens", int, 200, 1, MAX_NEW_TOKENS, "how many tokens to generate at most (1 to 2048; past "
          "the context the window slides)"),
    Param("temperature", float, 0.8, 0, 2, "0 for greedy decoding; higher is more varied (at most 2)"),
    Param("top_k", int, 50, 0, 1000, "sample from the k most likely tokens (0: no limit; at most 1000)"),
    Param("top_p", float, 0.95, 0, 1, "sample from the smallest set of tokens whose probabilities add up to p "
          "(above 0, at most 1)", lo_open=True),
    Param("repetition_penalty", float, 1.0, 0, 10, "1 for none; above 1 discourages repeating tokens (at most 10)",
          lo_open=True),
    Param("seed", int, -1, -1, MAX_SEED, "-1 for a random seed; the same seed and settings give the same text",
          rule=f"-1 (random) or between 0 and {MAX_SEED}"),
    Param("n", int, 1, 1, MAX_CHOICES, f"how many choices (at most {MAX_CHOICES} in a request); choice i uses "
          "seed + i"),
]}
