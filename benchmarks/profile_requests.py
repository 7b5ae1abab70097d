"""Where one request's time goes, per tab: the app served on loopback in this process, one `gradio_client` user
sending requests one after another, each part of the server's work timed by wrapping the function that does it.

Parts (ms per request, mean over `--requests` after two warm-ups):
    round trip             a request as bench_load.py's users send it: submit → result, then (image) the gallery's
                           images fetched as a browser does, over one kept-alive connection
      browser fetches      those image fetches
      outside the handler  HTTP, Gradio's queue and event loop, the client: the rest of the round trip outside
                           Gradio's process_api
      Gradio pre/post      Blocks.preprocess_data / postprocess_data (postprocess copies files into Gradio's cache)
      handler              the tab's function (Blocks.call_function: every step of a stream counted)
        lane wait          waiting for a slot on the device's lane (Lanes.hold)
        hub listing        hub.list_models and ModelRegistry.planned_device (which model, where)
        service            the service call outside the device worker: argument checks, seeds, labels
        model work         functions run on the device's worker thread (forward passes, generate, tokenizer)
        handler's own      the rest: PNG / grid / zip encoding and file writes (image), tables (translation)

    python benchmarks/profile_requests.py [--requests 10] [--tabs image text translation]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import platform
import socket
import sys
import threading
import time
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import gradio as gr  # noqa: E402
import httpx  # noqa: E402
import torch  # noqa: E402
from gradio_client import Client  # noqa: E402

from aigc_hub import hub  # noqa: E402
from aigc_hub.services import ImageService, Lanes, ModelRegistry, TextService, TranslationService  # noqa: E402
from aigc_hub.ui.app import build_demo  # noqa: E402
from benchmarks.bench_load import MODELS, TLS, request, user_client  # noqa: E402



class Spans:
    """Seconds spent in each wrapped function since the last `reset`, summed over threads (one request at a time)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._undo: list[tuple[Any, str, Any]] = []

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.spent[name] += seconds
            self.calls[name] += 1

    def reset(self) -> None:
        with self._lock:
            self.spent.clear()
            self.calls.clear()

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr)
        if inspect.iscoroutinefunction(original):
            @functools.wraps(original)
            async def timed(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    self.add(name, time.perf_counter() - start)
        else:
            @functools.wraps(original)
            def timed(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    self.add(name, time.perf_counter() - start)
        self._undo.append((owner, attr, original))
        setattr(owner, attr, timed)

    def wrap_worker(self) -> None:
        """Time what each device worker runs: the function handed to `ModelRegistry.submit`, when it runs."""
        original = ModelRegistry.submit

        def submit(registry: ModelRegistry, device: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
            def timed(*a: Any, **k: Any) -> Any:
                start = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    self.add("model work", time.perf_counter() - start)
            return original(registry, device, timed, *args, **kwargs)

        self._undo.append((ModelRegistry, "submit", original))
        ModelRegistry.submit = submit  # type: ignore[method-assign]

    def wrap_lane_wait(self) -> None:
        original = Lanes.hold

        @contextlib.contextmanager
        def hold(lanes: Lanes, device: str):
            start = time.perf_counter()
            with original(lanes, device):
                self.add("lane wait", time.perf_counter() - start)
                yield

        self._undo.append((Lanes, "hold", original))
        Lanes.hold = hold  # type: ignore[method-assign]


def profile(client: Client, browser: httpx.Client, spans: Spans, tab: str, n: int) -> dict[str, float]:
    for i in range(2):  # warm-up: first calls build caches, tokenizer state, the worker's OpenMP team
        request(client, browser, tab, 10_000 + i, timeout=300)
    totals: dict[str, float] = defaultdict(float)
    for i in range(n):
        spans.reset()
        start = time.perf_counter()
        request(client, browser, tab, i, timeout=300)
        totals["round trip"] += time.perf_counter() - start
        for name, seconds in spans.spent.items():
            totals[name] += seconds
        totals["updates"] += spans.calls["Gradio postprocess"]  # one per update sent: a stream's every chunk
    return {name: value / n for name, value in totals.items()}


def rows(p: dict[str, float], service: str) -> list[tuple[str, float]]:
    g = p.get
    handler = g("handler", 0.0)
    svc = g(service, 0.0)
    model = g("model work", 0.0)
    listing = g("hub listing", 0.0) + g("planned device", 0.0)
    # The text service returns a stream at once; its model work runs while the handler iterates the stream.
    service_own = max(0.0, svc - model) if service != "TextService.stream" else svc
    own = handler - g("lane wait", 0.0) - listing - (svc if service != "TextService.stream" else svc + model)
    return [
        ("round trip", p["round trip"]),
        ("  browser fetches (gallery images)", g("browser fetches", 0.0)),
        ("  outside the handler (HTTP, queue, event loop, client)",
         p["round trip"] - g("process_api", 0.0) - g("browser fetches", 0.0)),
        ("  Gradio preprocess", g("Gradio preprocess", 0.0)),
        ("  Gradio postprocess (file caching)", g("Gradio postprocess", 0.0)),
        ("  handler", handler),
        ("    lane wait", g("lane wait", 0.0)),
        ("    hub listing, placement", listing),
        ("    service (checks, seeds)", service_own),
        ("    model work (device worker)", model),
        ("    handler's own (encoding, files, tables)", max(0.0, own)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--tabs", nargs="+", default=["image", "text", "translation"], choices=list(MODELS))
    cli = parser.parse_args()

    spans = Spans()
    from gradio.blocks import Blocks

    spans.wrap(Blocks, "process_api", "process_api")
    spans.wrap(Blocks, "preprocess_data", "Gradio preprocess")
    spans.wrap(Blocks, "postprocess_data", "Gradio postprocess")
    spans.wrap(Blocks, "call_function", "handler")
    spans.wrap(hub, "list_models", "hub listing")
    spans.wrap(httpx.Client, "get", "browser fetches")
    spans.wrap(ModelRegistry, "planned_device", "planned device")
    spans.wrap(ImageService, "generate", "ImageService.generate")
    spans.wrap(TranslationService, "translate", "TranslationService.translate")
    spans.wrap(TextService, "stream", "TextService.stream")
    spans.wrap_worker()
    spans.wrap_lane_wait()

    demo = build_demo()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = user_client(f"http://127.0.0.1:{port}/")
        browser = httpx.Client(verify=TLS)
        services = {"image": "ImageService.generate", "text": "TextService.stream",
                    "translation": "TranslationService.translate"}
        results = {tab: profile(client, browser, spans, tab, cli.requests) for tab in cli.tabs}
    finally:
        demo.close()
    print(f"{date.today()}, {platform.machine()}, {torch.get_num_threads()} torch threads, gradio {gr.__version__}, "
          f"one user, {cli.requests} requests per tab, ms per request (share of the round trip)\n")
    tables = {tab: rows(p, services[tab]) for tab, p in results.items()}
    print("| part | " + " | ".join(f"{tab} (`{MODELS[tab]}`)" for tab in tables) + " |")
    print("|---|" + "---|" * len(tables))
    for k, (name, _) in enumerate(next(iter(tables.values()))):
        cells = []
        for tab, table in tables.items():
            value, total = table[k][1], table[0][1]
            cells.append(f"{value * 1e3:.1f}" + ("" if k == 0 else f" ({value / total:.0%})"))
        depth = (len(name) - len(name.lstrip())) // 2
        print(f"| {'· ' * depth}{name.strip()} | " + " | ".join(cells) + " |")
    print("| updates sent (streamed chunks) | " + " | ".join(f"{results[t]['updates']:.0f}" for t in tables) + " |")


if __name__ == "__main__":
    main()
