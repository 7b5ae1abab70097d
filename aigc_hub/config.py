"""App settings: defaults < config file (YAML or JSON) < Gradio's environment variables < AIGC_HUB_* environment
< command-line options.

Example `aigc-hub.yaml`:

    image_model: aigc-hub/dcgan-mnist        # one `<task>_model` per task of families.TASKS
    devices: {aigc-hub/dcgan-mnist: cpu}     # per-model placement ("auto", "cpu", "cuda:1", ...); "*": every model
    backends: {aigc-hub/translator-en-zh: ctranslate2}   # per-model runtime (default transformers); "*": every model
    extra_models: [someone/their-gan]         # HF Hub ids to list beside the local hub and the starters
    port: 7860

Gradio's own variables are honoured too (`GRADIO_SERVER_NAME`, `GRADIO_SERVER_PORT`, `GRADIO_ROOT_PATH`,
`GRADIO_SHARE`), below the `AIGC_HUB_*` ones.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .families import TASKS, tab_keys

GRADIO_ENV = {"GRADIO_SERVER_NAME": "host", "GRADIO_SERVER_PORT": "port", "GRADIO_ROOT_PATH": "root_path",
              "GRADIO_SHARE": "share"}


ENGINES = ("inline", "process")


def _model_setting(task: str) -> str:
    return f"{task}_model"


@dataclass
class AppConfig:
    host: str = "127.0.0.1"
    port: int = 7860
    models: dict[str, str] = field(default_factory=lambda: {k: t.default_model for k, t in TASKS.items()})
    devices: dict[str, str] = field(default_factory=dict)
    backends: dict[str, str] = field(default_factory=dict)  # ref (or "*") → runtime, backends.py
    extra_models: list[str] = field(default_factory=list)
    queue_size: int = 64  # requests waiting beyond this (per device) are refused at once: a full queue fails fast
    # Requests in flight per device lane. The device's one worker thread still runs their model work in turn; a
    # second slot lets one request's pre/post-processing (PNG encoding, zips, decoding) overlap another's compute.
    # benchmarks/bench_load.py on 2 cores: 1 → 58 s for 160 mixed requests, 2 → 51 s, 4 → 57 s.
    lane_concurrency: int = 2
    # Dynamic batching (services/batching.py): concurrent requests for one model run as one batched call. With it
    # on, a lane lets up to max_batch requests in flight, so that they can meet in a batch.
    batching: bool = True
    max_batch: int = 64  # rows (images, lines) in one batched call
    batch_window_ms: int = 0  # wait this long for company before a batch runs (0: batches form while the device works)
    max_images: int = 64  # per UI/API request; the CLI allows more
    # Where model work runs: "process": one engine process per device (aigc_hub/engine), so the web server never waits
    # on the decode loop's interpreter lock; or "inline", in the server's own process (the CLI always works inline).
    engine: str = "process"
    engines: int = 1  # engine processes per device (replicas, each with its own copy of the models), for --engine process
    preload: bool = True  # load each tab's model at start-up so the first request is fast
    tabs: list[str] = field(default_factory=tab_keys)
    share: bool = False  # a public *.gradio.live link (needs the internet)
    root_path: str = ""  # the app's path behind a reverse proxy, e.g. /aigc
    # API keys (AIGC_HUB_API_KEYS=k1,k2): with any, /v1 needs `Authorization: Bearer <key>` and the UI and Gradio API
    # a login whose password is a key. None: open (fine on 127.0.0.1; a warning when served elsewhere).
    api_keys: list[str] = field(default_factory=list)
    mcp: bool = False  # also serve the tabs' endpoints as MCP tools (Gradio's MCP server, /gradio_api/mcp/)
    # The Train tab: where jobs live (default: beside the local hub), and a folder of datasets it offers by name.
    jobs_dir: str = ""
    data_dir: str = ""
    # What a web client may make the server do (README "Deploying publicly"): add model folders only under these
    # folders (the Models tab; the CLI adds any), download at most this much for an HF id it adds, upload at most this
    # much per file (Gradio refuses more while receiving it), keep this many training jobs waiting (in all, and per
    # logged-in user), and publish trained models to the HF Hub only under these owners (none: not from the web).
    model_dirs: list[str] = field(default_factory=list)
    max_download_mb: int = 16_384
    max_upload_mb: int = 512
    max_queued_jobs: int = 4
    max_queued_jobs_per_user: int = 2
    hf_namespaces: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, **settings: Any) -> "AppConfig":
        """An AppConfig from settings as a config file writes them (`image_model: ...` beside the others)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in settings.items() if k in known}
        models = dict(cls().models)
        if "models" in values and not isinstance(values["models"], dict):
            raise ConfigError(f"models must map tasks ({', '.join(TASKS)}) to model ids, got {values['models']!r}")
        models.update(values.get("models") or {})
        for task in TASKS:
            if _model_setting(task) in settings:
                models[task] = settings[_model_setting(task)]
        unknown = set(settings) - known - {_model_setting(t) for t in TASKS}
        if unknown:
            raise ConfigError(f"unknown settings {sorted(unknown)}")
        return cls(**{**values, "models": models}).checked()

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
                raise ConfigError(f"{path}: cannot read the config file ({type(e).__name__}: {e})") from None
            if not isinstance(loaded, dict):
                raise ConfigError(f"{path}: the config file must hold a mapping")
            values.update(loaded)
        kinds = {f.name: f.type for f in fields(cls)} | {_model_setting(t): "str" for t in TASKS}
        named = list(GRADIO_ENV.items()) + [(f"AIGC_HUB_{name.upper()}", name) for name in kinds if name != "models"]
        for var, setting in named:
            raw = env.get(var)
            if raw is not None:
                try:
                    values[setting] = _parse(str(kinds[setting]), raw)
                except ValueError:
                    raise ConfigError(f"{var}={raw[:40]!r} is not a valid {kinds[setting]}") from None
        try:
            return cls.of(**values)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}" if path else str(e)) from None

    def model_for(self, task: str) -> str:
        """The model a task's tab opens with."""
        return self.models.get(task) or TASKS[task].default_model

    def checked(self) -> "AppConfig":
        """Refuse settings the server cannot start with, before anything is loaded or bound."""
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 < self.port < 65536:
            raise ConfigError(f"port must be between 1 and 65535, got {self.port!r}")
        if not isinstance(self.host, str) or not self.host.strip() or any(c.isspace() for c in self.host):
            raise ConfigError(f"host must be a name or address such as 127.0.0.1, got {self.host!r}")
        if not isinstance(self.batch_window_ms, int) or isinstance(self.batch_window_ms, bool) or not (
                0 <= self.batch_window_ms <= 10_000):
            raise ConfigError(f"batch_window_ms must be an integer between 0 and 10000, got {self.batch_window_ms!r}")
        from .backends import NAMES

        for ref, name in self.backends.items():
            if name not in NAMES:
                raise ConfigError(f"backend of {ref} must be one of {', '.join(NAMES)}, got {str(name)[:40]!r}")
        if not isinstance(self.engines, int) or isinstance(self.engines, bool) or not 1 <= self.engines <= 64:
            raise ConfigError(f"engines must be an integer between 1 and 64, got {self.engines!r}")
        for name in ("queue_size", "max_images", "lane_concurrency", "max_batch", "max_download_mb", "max_upload_mb",
                     "max_queued_jobs", "max_queued_jobs_per_user"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 100_000:
                raise ConfigError(f"{name} must be an integer between 1 and 100000, got {value!r}")
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if not isinstance(self.tabs, list) or not self.tabs:
            raise ConfigError(f"tabs must be a non-empty list, got {self.tabs!r}")
        unknown = [t for t in self.tabs if t not in tab_keys()]
        if unknown:
            raise ConfigError(f"unknown tab(s) {unknown}: choose from {', '.join(tab_keys())}")
        if not isinstance(self.models, dict) or any(t not in TASKS or not isinstance(r, str) or not r.strip()
                                                    for t, r in self.models.items()):
            raise ConfigError(f"models must map tasks ({', '.join(TASKS)}) to model ids, got {self.models!r}")
        if not isinstance(self.api_keys, list) or not all(isinstance(k, str) and len(k.strip()) >= 8
                                                          and k == k.strip() for k in self.api_keys):
            raise ConfigError("api_keys must be a list of keys of at least 8 characters, without spaces around")
        for name in ("model_dirs", "hf_namespaces"):
            value = getattr(self, name)
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise ConfigError(f"{name} must be a list of non-empty strings, got {value!r}")
        if not isinstance(self.root_path, str) or (self.root_path and not self.root_path.startswith("/")):
            raise ConfigError(f"root_path must be a URL path such as /aigc, got {self.root_path!r}")
        return self

    def apply_args(self, args: argparse.Namespace) -> "AppConfig":
        for f in fields(self):
            value = getattr(args, f.name, None)
            if value is not None and f.name != "models":
                setattr(self, f.name, value)
        for task in TASKS:
            value = getattr(args, _model_setting(task), None)
            if value is not None:
                self.models[task] = value
        for item in getattr(args, "device", None) or []:
            ref, _, dev = item.rpartition("=")
            self.devices[ref or "*"] = dev  # a bare DEVICE places every model
        for item in getattr(args, "backend", None) or []:
            ref, _, name = item.rpartition("=")
            self.backends[ref or "*"] = name  # a bare NAME: every model whose family has that backend
        return self.checked()


def _parse(kind: str, raw: str) -> object:
    if "int" in kind:
        return int(raw)
    if "bool" in kind:
        if raw.lower() not in ("1", "true", "yes", "0", "false", "no", ""):
            raise ValueError(raw)
        return raw.lower() in ("1", "true", "yes")
    if "list" in kind:
        return [x for x in raw.split(",") if x]
    if "dict" in kind:
        return dict(item.split("=", 1) for item in raw.split(",") if "=" in item)
    return raw


def add_serve_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Options shared by `app.py` and `python -m aigc_hub serve`."""
    parser.add_argument("--config", default=None, help="YAML/JSON settings file (or $AIGC_HUB_CONFIG)")
    parser.add_argument("--host", default=None,
                        help="default 127.0.0.1 (or $GRADIO_SERVER_NAME); 0.0.0.0 to serve the network")
    parser.add_argument("--port", type=int, default=None, help="default 7860 (or $AIGC_HUB_PORT, $GRADIO_SERVER_PORT)")
    for key, task in TASKS.items():
        parser.add_argument(f"--{key}-model", dest=_model_setting(key), default=None,
                            help=f"the {task.title} tab's model (default {task.default_model})")
    parser.add_argument("--device", action="append", metavar="[REF=]DEVICE",
                        help="placement: cpu (every model) or aigc-hub/dcgan-mnist=cuda:1 (one model); repeatable")
    parser.add_argument("--backend", action="append", metavar="[REF=]NAME",
                        help="runtime: ctranslate2 (every model that has it: translation, causal LMs) or "
                             "aigc-hub/translator-en-zh=ctranslate2 (one model); default transformers; repeatable")
    parser.add_argument("--extra-model", dest="extra_models", action="append", default=None,
                        help="an HF Hub id to list in the app (repeatable)")
    parser.add_argument("--queue-size", dest="queue_size", type=int, default=None,
                        help="requests that may wait per device before new ones are refused (default 64)")
    parser.add_argument("--lane-concurrency", dest="lane_concurrency", type=int, default=None,
                        help="requests in flight per device lane (default 2)")
    parser.add_argument("--no-batching", dest="batching", action="store_false", default=None,
                        help="serve each request alone (default: concurrent requests for a model run as one batch)")
    parser.add_argument("--engine", choices=ENGINES, default=None,
                        help="where model work runs: process (default: one engine process per device, apart from "
                             "the web server) or inline (in the server's own process, for comparison)")
    parser.add_argument("--engines", type=int, default=None,
                        help="with --engine process: engine processes per device, requests spread over them "
                             "(default 1; more only helps with more cores than one engine uses)")
    parser.add_argument("--max-batch", dest="max_batch", type=int, default=None,
                        help="images or lines in one batched call (default 64)")
    parser.add_argument("--batch-window-ms", dest="batch_window_ms", type=int, default=None,
                        help="how long a batch waits for more requests before it runs (default 0: batches form "
                             "while the device is busy)")
    parser.add_argument("--no-preload", dest="preload", action="store_false", default=None,
                        help="load each tab's model at its first request, not at start-up")
    parser.add_argument("--tabs", type=lambda s: [t for t in s.split(",") if t], default=None,
                        help=f"comma-separated tabs to show (default {','.join(tab_keys())})")
    parser.add_argument("--share", action="store_true", default=None,
                        help="also serve on a public gradio.live link (needs the internet)")
    parser.add_argument("--root-path", dest="root_path", default=None,
                        help="the app's URL path behind a reverse proxy, e.g. /aigc (or $GRADIO_ROOT_PATH)")
    parser.add_argument("--api-key", dest="api_keys", action="append", default=None,
                        help="protect /v1 (Bearer) and the UI (log in with any name and the key as password); "
                             "repeatable (or $AIGC_HUB_API_KEYS=k1,k2)")
    parser.add_argument("--data-dir", dest="data_dir", default=None,
                        help="a folder of datasets the Train tab offers by name (.zip, .npz, .txt, .jsonl, .csv)")
    parser.add_argument("--jobs-dir", dest="jobs_dir", default=None,
                        help="where training jobs live (default: beside the local hub)")
    parser.add_argument("--model-dir", dest="model_dirs", action="append", default=None,
                        help="a folder under which the Models tab may add model folders (repeatable; default none: "
                             "web clients add HF ids and hub ids only)")
    parser.add_argument("--max-queued-jobs", dest="max_queued_jobs", type=int, default=None,
                        help="training jobs that may wait for a device before new ones are refused (default 4)")
    parser.add_argument("--hf-namespace", dest="hf_namespaces", action="append", default=None,
                        help="an HF Hub owner the Train tab may publish to with the server's token (repeatable; "
                             "default none)")
    parser.add_argument("--mcp", action="store_true", default=None,
                        help="also serve the tabs' endpoints as MCP tools at /gradio_api/mcp/")
    return parser
