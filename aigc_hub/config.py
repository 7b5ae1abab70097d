"""App settings: defaults < config file (YAML or JSON) < environment (AIGC_HUB_*) < command-line options.

Example `aigc-hub.yaml`:

    image_model: aigc-hub/dcgan-mnist
    devices: {aigc-hub/dcgan-mnist: cpu}     # per-model placement override ("auto", "cpu", "cuda:1", ...)
    extra_models: [someone/their-gan]         # HF Hub ids to list beside the local hub and the starters
    port: 7860
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

DEFAULT_IMAGE_MODEL = "aigc-hub/dcgan-mnist"
DEFAULT_TEXT_MODEL = "aigc-hub/gpt-tinyshakespeare"
DEFAULT_TRANSLATION_MODEL = "aigc-hub/translator-en-zh"


@dataclass
class AppConfig:
    host: str = "127.0.0.1"
    port: int = 7860
    image_model: str = DEFAULT_IMAGE_MODEL
    text_model: str = DEFAULT_TEXT_MODEL
    translation_model: str = DEFAULT_TRANSLATION_MODEL
    devices: dict[str, str] = field(default_factory=dict)
    extra_models: list[str] = field(default_factory=list)
    queue_size: int = 64  # requests waiting beyond this are refused at once (a full queue fails fast)
    # Requests in flight per device lane. The device's one worker thread still runs their model work in turn; a
    # second slot lets one request's pre/post-processing (PNG encoding, zips, decoding) overlap another's compute.
    # benchmarks/bench_load.py on 2 cores: 1 → 58 s for 160 mixed requests, 2 → 51 s, 4 → 57 s.
    lane_concurrency: int = 2
    max_images: int = 64  # per UI/API request; the CLI allows more
    preload: bool = True  # load each tab's model at start-up so the first request is fast
    tabs: list[str] = field(default_factory=lambda: ["image", "text", "translation", "models"])

    @classmethod
    def load(cls, path: str | Path | None = None, env: dict[str, str] | None = None) -> "AppConfig":
        env = dict(os.environ if env is None else env)
        values: dict = {}
        path = path or env.get("AIGC_HUB_CONFIG")
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
                loaded = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
                raise ValueError(f"{path}: cannot read the config file ({type(e).__name__}: {e})") from None
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: the config file must hold a mapping")
            unknown = set(loaded) - {f.name for f in fields(cls)}
            if unknown:
                raise ValueError(f"{path}: unknown settings {sorted(unknown)}")
            values.update(loaded)
        for f in fields(cls):
            raw = env.get(f"AIGC_HUB_{f.name.upper()}")
            if raw is not None:
                try:
                    values[f.name] = _parse(f.type, raw)
                except ValueError:
                    raise ValueError(f"AIGC_HUB_{f.name.upper()}={raw[:40]!r} is not a valid {f.type}") from None
        return cls(**values).checked()

    def checked(self) -> "AppConfig":
        """Refuse settings the server cannot start with, before anything is loaded or bound."""
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {self.port!r}")
        if not isinstance(self.host, str) or not self.host.strip() or any(c.isspace() for c in self.host):
            raise ValueError(f"host must be a name or address such as 127.0.0.1, got {self.host!r}")
        for name in ("queue_size", "max_images", "lane_concurrency"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 100_000:
                raise ValueError(f"{name} must be an integer between 1 and 100000, got {value!r}")
        if not isinstance(self.tabs, list) or not self.tabs:
            raise ValueError(f"tabs must be a non-empty list, got {self.tabs!r}")
        return self

    def apply_args(self, args: argparse.Namespace) -> "AppConfig":
        for f in fields(self):
            value = getattr(args, f.name, None)
            if value is not None:
                setattr(self, f.name, value)
        for item in getattr(args, "device", None) or []:
            ref, _, dev = item.rpartition("=")
            self.devices[ref or self.image_model] = dev
        return self.checked()


def _parse(kind: str, raw: str) -> object:
    if "int" in kind:
        return int(raw)
    if "bool" in kind:
        return raw.lower() in ("1", "true", "yes")
    if "list" in kind:
        return [x for x in raw.split(",") if x]
    if "dict" in kind:
        return dict(item.split("=", 1) for item in raw.split(",") if "=" in item)
    return raw


def add_serve_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options shared by `app.py` and `python -m aigc_hub serve`."""
    parser.add_argument("--config", default=None, help="YAML/JSON settings file (or $AIGC_HUB_CONFIG)")
    parser.add_argument("--host", default=None, help="default 127.0.0.1; 0.0.0.0 to serve the network")
    parser.add_argument("--port", type=int, default=None, help="default 7860")
    parser.add_argument("--image-model", dest="image_model", default=None, help=f"default {DEFAULT_IMAGE_MODEL}")
    parser.add_argument("--text-model", dest="text_model", default=None, help=f"default {DEFAULT_TEXT_MODEL}")
    parser.add_argument("--translation-model", dest="translation_model", default=None,
                        help=f"default {DEFAULT_TRANSLATION_MODEL}")
    parser.add_argument("--device", action="append", metavar="[REF=]DEVICE",
                        help="placement override, e.g. cpu or aigc-hub/dcgan-mnist=cuda:1 (repeatable)")
    parser.add_argument("--extra-model", dest="extra_models", action="append", default=None,
                        help="an HF Hub id to list in the app (repeatable)")
    parser.add_argument("--queue-size", dest="queue_size", type=int, default=None)
    parser.add_argument("--lane-concurrency", dest="lane_concurrency", type=int, default=None,
                        help="requests in flight per device lane (default 2)")
    parser.add_argument("--no-preload", dest="preload", action="store_false", default=None)
    parser.add_argument("--tabs", type=lambda s: [t for t in s.split(",") if t], default=None,
                        help="comma-separated tabs to show (default image,text,translation,models)")
    return parser
