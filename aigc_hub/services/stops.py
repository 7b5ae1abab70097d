"""Stop strings, cut the one way every front end shows them: a generation that writes one of its stop strings ends
there, and the text ends just before it (as OpenAI's API does). While streaming, a tail that could still become a
stop string is held back until it is known not to be one, so no front end ever shows part of a stop string."""

from __future__ import annotations

from typing import Iterator


class StopTrim:
    """A stream's text with its first stop string and everything after it cut, fed piece by piece."""

    def __init__(self, stops: list[str]) -> None:
        self.stops, self.held, self.hit = stops, "", False

    def feed(self, piece: str) -> str:
        """What can be shown now."""
        if self.hit:
            return ""
        text = self.held + piece
        cuts = [i for i in (text.find(s) for s in self.stops) if i >= 0]
        if cuts:
            self.hit, self.held = True, ""
            return text[:min(cuts)]
        keep = max([k for s in self.stops for k in range(1, min(len(s), len(text) + 1)) if text.endswith(s[:k])],
                   default=0)  # the longest tail that could still become a stop string
        self.held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep]

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held


def trimmed(pieces: Iterator[str], trim: StopTrim) -> Iterator[str]:
    """`pieces` with the stop strings cut; what comes after one is read (the computation ends by itself on the
    same token) but never shown."""
    try:
        for piece in pieces:
            text = trim.feed(piece)
            if text:
                yield text
        rest = trim.flush()
        if rest:
            yield rest
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()
