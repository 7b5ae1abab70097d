"""Many users at once: start the app on loopback and run N concurrent `gradio_client` users × M mixed requests
(image grid, streamed text, batch translation), bounded in time.

Users fetch an image result's gallery images as a browser does (one kept-alive connection per user), not every
file of the result. The same load runs three times, each on a fresh server: in one process with dynamic batching off
(`--no-batching`) and on (the default), and with model work in an engine process (`--engine process`), so the gains
are same-run ratios. Printed per run: throughput, per-endpoint p50 / p95 latency, failures (target 0),
peak RSS of the server, and the CPU time the server and the users took (they share the machine). Then many users (`--many-users` × 2 requests, batching on), and a last phase with the queue
bound set small on purpose (and batches of `--small-batch`), where the requests beyond what the lane admits must be
refused at once ("queue full") rather than wait or crash.

    python benchmarks/bench_load.py [--users 32] [--requests 5] [--many-users 128] [--queue-size 64] [--small-queue 4]
                                    [--backend ctranslate2]
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[1]
MODELS = {"image": "aigc-hub/dcgan-mnist", "text": "aigc-hub/gpt-tinyshakespeare",
          "translation": "aigc-hub/translator-en-zh"}
LINES = "Hello.\nHow are you?\nI like tea.\nWhere is the station?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The app as users run it (`python app.py`), in its own process; peak RSS sampled while it runs."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.log = open(REPO / "benchmarks" / f".load-server-{self.port}.log", "w")
        self.proc = subprocess.Popen([sys.executable, "app.py", "--port", str(self.port), *args], cwd=REPO,
                                     stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        self.url = f"http://127.0.0.1:{self.port}/"
        self.peak_rss = 0
        self._stop = threading.Event()
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the app exited: see {self.log.name}")
            try:
                if httpx.get(self.url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        proc = psutil.Process(self.proc.pid)
        while not self._stop.is_set():
            try:
                rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
                self.peak_rss = max(self.peak_rss, rss)
            except psutil.Error:
                pass
            time.sleep(0.1)

    def close(self, keep_log: bool = False) -> None:
        self._stop.set()
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
        if keep_log:  # failures: the server log holds their tracebacks under the ids they name
            print(f"  server log kept: {self.log.name}")
        else:
            Path(self.log.name).unlink(missing_ok=True)


# gradio_client makes a new httpx client for most calls, and each builds a TLS context (CA certificates loaded) even
# for http://: 68 % of the users' CPU time in a py-spy profile of this bench, on the cores the server runs on. A
# browser keeps its connections; the users share one context instead.
TLS = ssl.create_default_context()


def user_client(url: str):
    """A gradio_client user as the benchmarks run them: files fetched by `request`, one shared TLS context."""
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False, ssl_verify=TLS)  # (handed to httpx's `verify`)


def request(client, browser: httpx.Client, kind: str, i: int, timeout: float) -> None:
    if kind == "image":
        job = client.submit(MODELS["image"], i, 8, "any", api_name="/generate_image")
        gallery, _, _ = job.result(timeout=timeout)
        for item in gallery:  # as a browser shows the gallery: each image fetched, over one kept-alive connection
            browser.get(item["image"]["url"], timeout=timeout).raise_for_status()
    elif kind == "text":
        job = client.submit(MODELS["text"], "ROMEO:", 64, 0.8, 50, 0.95, 1.0, "", i, api_name="/generate_text")
        job.result(timeout=timeout)  # the streamed chunks arrive before the result; latency = until the last one
    else:
        job = client.submit(MODELS["translation"], LINES, "en", "zh", 4, 1, api_name="/translate")
        job.result(timeout=timeout)


def run_users(url: str, users: int, per_user: int, deadline_s: float) -> tuple[dict, list[str], float]:
    latencies: dict[str, list[float]] = defaultdict(list)
    failures: list[str] = []
    lock = threading.Lock()
    start_gate = threading.Barrier(users)
    end = time.time() + deadline_s

    def user(u: int) -> None:
        try:
            # Files are fetched the way a browser does (see `request`), not by gradio_client's downloader, which
            # opens a new connection per file and also fetches the grid and zip that a browser leaves as links.
            client = user_client(url)
            browser = httpx.Client(verify=TLS)
        except Exception as e:  # counted, never raised: a failed connection is a failure of the app
            with lock:
                failures.append(f"user {u}: connect: {type(e).__name__}: {e}")
            start_gate.abort()
            return
        try:
            start_gate.wait(timeout=120)
        except threading.BrokenBarrierError:
            pass
        for r in range(per_user):
            kind = ("image", "text", "translation")[(u + r) % 3]
            t0 = time.perf_counter()
            try:
                request(client, browser, kind, u * 100 + r, timeout=max(1.0, end - time.time()))
                with lock:
                    latencies[kind].append(time.perf_counter() - t0)
            except Exception as e:
                with lock:
                    failures.append(f"user {u} {kind}: {type(e).__name__}: {str(e)[:200]}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=user, args=(u,)) for u in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, end - time.time() + 30))
    return latencies, failures, time.perf_counter() - t0


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children alive now (a server's engine processes)."""
    process = psutil.Process(pid)
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            times = p.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def load(title: str, users: int, per_user: int, deadline: float, *server_args: str) -> float:
    """One load run on a fresh server; prints its figures and returns its throughput (requests per second)."""
    server = Server(*server_args)
    failures: list[str] = []
    try:
        before = cpu_seconds(server.proc.pid), cpu_seconds(os.getpid())
        latencies, failures, wall = run_users(server.url, users, per_user, deadline)
        server_cpu, users_cpu = cpu_seconds(server.proc.pid) - before[0], cpu_seconds(os.getpid()) - before[1]
    finally:
        server.close(keep_log=bool(failures))
    total = sum(len(v) for v in latencies.values())
    print(f"{title}: {users} users × {per_user} requests: {total} done in {wall:.1f} s "
          f"({total / wall:.2f} requests/s), {len(failures)} failures, peak server RSS {server.peak_rss / 2**20:.0f} MiB")
    # The users run on the same machine: the CPU they take is not the server's to use.
    print(f"  CPU: server {server_cpu:.1f} s, users (this process) {users_cpu:.1f} s, of {wall * os.cpu_count():.1f} s "
          f"({os.cpu_count()} cores × wall); mean latency by Little's law: {users / (total / wall):.2f} s")
    for kind, values in sorted(latencies.items()):
        print(f"  {kind:12s} n={len(values):3d}  p50 {pct(values, 50):6.2f} s  p95 {pct(values, 95):6.2f} s")
    for f in failures[:10]:
        print(f"  failure: {f}")
    return total / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--requests", type=int, default=5, help="per user")
    parser.add_argument("--queue-size", type=int, default=64, help="the app's default")
    parser.add_argument("--many-users", type=int, default=128, help="a run of this many users × 2 requests (0: none)")
    parser.add_argument("--small-queue", type=int, default=4, help="last phase: a bound the users must overflow")
    parser.add_argument("--small-batch", type=int, default=8,
                        help="last phase: the lane admits this many in flight plus --small-queue waiting")
    parser.add_argument("--deadline", type=float, default=600, help="seconds for a phase, in all")
    parser.add_argument("--lane-concurrency", type=int, default=None, help="the app's setting (default: its own)")
    parser.add_argument("--engines", type=int, default=1, help="engine processes per device in the engine runs")
    parser.add_argument("--backend", action="append", default=[], metavar="[REF=]NAME",
                        help="the app's --backend (e.g. ctranslate2: text and translation on CTranslate2); repeatable")
    for kind, ref in MODELS.items():
        parser.add_argument(f"--{kind}-model", default=ref)
    args = parser.parse_args()
    served = []
    for kind in MODELS:
        MODELS[kind] = getattr(args, f"{kind}_model")
        served += [f"--{kind}-model", MODELS[kind], "--extra-model", MODELS[kind]]
    if args.lane_concurrency:
        served += ["--lane-concurrency", str(args.lane_concurrency)]
    for backend in args.backend:
        served += ["--backend", backend]

    off = load("batching off", args.users, args.requests, args.deadline, "--queue-size", str(args.queue_size), *served,
               "--no-batching", "--engine", "inline")
    on = load("batching on", args.users, args.requests, args.deadline, "--queue-size", str(args.queue_size), *served,
              "--engine", "inline")
    print(f"batching on / off: {on / off:.2f}× the throughput")
    apart = load("engine process, batching on", args.users, args.requests, args.deadline, "--queue-size",
                 str(args.queue_size), *served, "--engine", "process", "--engines", str(args.engines))
    print(f"engine process / inline without batching: {apart / off:.2f}× the throughput (target >= 3); "
          f"/ inline with batching: {apart / on:.2f}×")
    if args.many_users:
        load("engine process, many users", args.many_users, 2, args.deadline, "--queue-size", str(args.queue_size),
             *served, "--engine", "process", "--engines", str(args.engines))

    small = Server("--queue-size", str(args.small_queue), "--max-batch", str(args.small_batch), *served)
    try:
        _, refused, wall = run_users(small.url, args.users, 1, args.deadline)
    finally:
        small.close()
    full = [f for f in refused if "queue" in f.lower() and "full" in f.lower()]
    print(f"queue bound {args.small_queue}, batches of {args.small_batch}: {args.users} simultaneous requests → "
          f"{len(full)} refused at once as 'queue full', {len(refused) - len(full)} other failures ({wall:.1f} s)")
    for f in [f for f in refused if f not in full][:5]:
        print(f"  other failure: {f}")


if __name__ == "__main__":
    main()
