"""One user, in one process and through an engine process (`engine: process`): what the pipe costs a request.

For each starter, the same request through the app's services in this process (`inline`) and through the engine
process's (`process`), after warm-ups, median of `--repeats`: a 256-token text stream (tokens/s), 64 GAN images and a
4-line beam-4 translation (ms). Then the pipe's own cost: the round trip of a call that does no model work.

    python benchmarks/bench_engine.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aigc_hub.config import AppConfig  # noqa: E402
from aigc_hub.core import AppContext  # noqa: E402
from aigc_hub.services import (ImageRequest, ModelRegistry, SamplingSettings, TextRequest,  # noqa: E402
                               TranslationRequest)

MODELS = {"image": "aigc-hub/dcgan-mnist", "text": "aigc-hub/gpt-tinyshakespeare",
          "translation": "aigc-hub/translator-en-zh"}
LINES = "Hello.\nHow are you?\nI like tea.\nWhere is the station?"
TOKENS = 256


def timed(fn, repeats: int) -> float:
    """Median seconds of `fn()` after two warm-ups."""
    fn(), fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def figures(ctx: AppContext, repeats: int) -> dict[str, float]:
    settings = SamplingSettings(max_new_tokens=TOKENS, temperature=0.8, top_k=50, top_p=0.95)

    def text() -> None:
        stream, = ctx.service("text").run(TextRequest(MODELS["text"], prompt="ROMEO:", settings=settings, seed=0))
        "".join(stream.chunks)
        assert stream.tokens == TOKENS

    def image() -> None:
        ctx.service("image").run(ImageRequest(MODELS["image"], 64, seed=0))

    def translation() -> None:
        ctx.service("translation").run(TranslationRequest(MODELS["translation"], LINES, "en", "zh", 4, 1))

    return {"text tok/s": TOKENS / timed(text, repeats), "image ms": 1000 * timed(image, repeats),
            "translation ms": 1000 * timed(translation, repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    inline = AppContext(AppConfig.of(), ModelRegistry())
    apart = AppContext(AppConfig.of(engine="process"), ModelRegistry())
    try:
        here, there = figures(inline, args.repeats), figures(apart, args.repeats)
        for name in here:
            worse = there[name] / here[name] - 1 if "ms" in name else here[name] / there[name] - 1
            print(f"{name:15s} inline {here[name]:8.1f}   engine process {there[name]:8.1f}   "
                  f"({100 * worse:+.1f} % for the process)")
        registry = apart.registry
        trip = timed(lambda: registry.ask(registry.engine("cpu"), "loaded", ""), 50)
        print(f"pipe round trip of a call without model work: {1000 * trip:.2f} ms (median of 50)")
    finally:
        apart.close()
        inline.close()


if __name__ == "__main__":
    main()
