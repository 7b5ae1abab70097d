"""Where the local hub and the shipped starters live (no imports of the package: every layer may read them)."""

from __future__ import annotations

import os
from pathlib import Path

STARTERS_ROOT = Path(__file__).resolve().parent.parent / "starters"


def hub_home() -> Path:
    """The writable local hub root ($AIGC_HUB_HOME, else ~/.cache/aigc-hub/hub)."""
    env = os.environ.get("AIGC_HUB_HOME")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "aigc-hub" / "hub"
