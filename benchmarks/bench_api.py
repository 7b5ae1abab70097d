"""The OpenAI-compatible /v1 routes against the Gradio endpoints they sit beside: one user, streamed text, the same
model, seed and tokens, on one server, alternating the two paths round by round.

    python benchmarks/bench_api.py [--rounds 10] [--tokens 256]

Prints per path the median wall time of a whole streamed answer and tokens/s, and the overhead of /v1 over the
Gradio endpoint (target ≤ 10 %). The chat pair runs on a copy of the Tiny Shakespeare starter given a chat template
(ROMEO speaks for the user, JULIET answers), since no chat starter ships; the completion pair on the starter itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_load import REPO, TLS, Server, user_client

STARTER = REPO / "starters" / "aigc-hub" / "gpt-tinyshakespeare"
CHAT_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'user' %}ROMEO:\n{% else %}JULIET:\n{% endif %}"
                 "{{ m['content'] }}\n\n{% endfor %}{% if add_generation_prompt %}JULIET:\n{% endif %}")


def chat_copy(home: Path) -> str:
    out = home / "bench" / "shakespeare-chat"
    shutil.copytree(STARTER, out)
    config = json.loads((out / "tokenizer_config.json").read_text())
    config["chat_template"] = CHAT_TEMPLATE
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return "bench/shakespeare-chat"


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    tokens = fn()
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=256)
    args = parser.parse_args()
    import openai

    home = Path(tempfile.mkdtemp(prefix="bench-api-"))
    os.environ["AIGC_HUB_HOME"] = str(home)
    chat_model = chat_copy(home)
    text_model = "aigc-hub/gpt-tinyshakespeare"
    server = Server("--tabs", "text", "--text-model", text_model, "--extra-model", chat_model)
    try:
        gradio = user_client(server.url)
        api = openai.OpenAI(base_url=f"{server.url}v1", api_key="none", max_retries=0,
                            http_client=openai.DefaultHttpxClient(verify=TLS, timeout=300))
        n = args.tokens
        sampling = [n, 0.8, 0, 1.0, 1.0, ""]  # max new tokens, temperature, top-k (off, as /v1), top-p, penalty, stops
        message = "What light through yonder window breaks?"

        def gradio_chat(seed: int) -> int:
            list(gradio.submit(chat_model, message, [], "", *sampling, seed, api_name="/chat"))
            return n

        def api_chat(seed: int) -> int:
            events = api.chat.completions.create(model=chat_model, messages=[{"role": "user", "content": message}],
                                                 max_tokens=n, temperature=0.8, seed=seed, stream=True,
                                                 stream_options={"include_usage": True})
            return [e for e in events][-1].usage.completion_tokens

        def gradio_text(seed: int) -> int:
            list(gradio.submit(text_model, "ROMEO:", *sampling, seed, api_name="/generate_text"))
            return n

        def api_text(seed: int) -> int:
            events = api.completions.create(model=text_model, prompt="ROMEO:", max_tokens=n, temperature=0.8,
                                            seed=seed, stream=True, stream_options={"include_usage": True})
            return [e for e in events][-1].usage.completion_tokens

        pairs = {"chat": (gradio_chat, api_chat, "/chat", "/v1/chat/completions"),
                 "text": (gradio_text, api_text, "/generate_text", "/v1/completions")}
        for g, a, *_ in pairs.values():  # warm both paths (model load, first connections)
            g(0), a(0)
        times: dict[str, list[float]] = {}
        for r in range(args.rounds):
            for name, (g, a, g_name, a_name) in pairs.items():
                order = [(g_name, g), (a_name, a)] if r % 2 == 0 else [(a_name, a), (g_name, g)]
                for label, fn in order:
                    seconds, tokens = timed(lambda: fn(r + 1))
                    assert tokens == n, f"{label}: {tokens} tokens, not {n}"
                    times.setdefault(label, []).append(seconds)
        print(f"one user, {n} streamed tokens, {args.rounds} rounds, median ({time.strftime('%Y-%m-%d %H:%M')}):")
        for name, (_, _, g_name, a_name) in pairs.items():
            g_s, a_s = statistics.median(times[g_name]), statistics.median(times[a_name])
            print(f"  {g_name:24s} {g_s * 1000:7.0f} ms  {n / g_s:6.0f} tok/s")
            print(f"  {a_name:24s} {a_s * 1000:7.0f} ms  {n / a_s:6.0f} tok/s   overhead {100 * (a_s / g_s - 1):+.1f} % "
                  "(target ≤ +10 %)")
    finally:
        server.close()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
