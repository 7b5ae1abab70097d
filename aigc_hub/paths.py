"""Where the local hub and the shipped starters live (no imports of the package: every layer may read them)."""

from __future__ import annotations

import os
from pathlib import Path

STARTERS_ROOT = Path(__file__).resolve().parent.parent / "starters"


def within(path: Path, roots: list[Path] | tuple[Path, ...]) -> bool:
    """Whether `path`, resolved (links and `..` followed), is one of `roots` or lies under one. Raises what
    resolving raises (OSError for a name too long, ValueError for a NUL byte)."""
    resolved = Path(path).resolve()
    return any(resolved == r or r in resolved.parents for r in (Path(root).resolve() for root in roots))


def hub_home() -> Path:
    """The writable local hub root ($AIGC_HUB_HOME, else ~/.cache/aigc-hub/hub)."""
    env = os.environ.get("AIGC_HUB_HOME")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "aigc-hub" / "hub"
