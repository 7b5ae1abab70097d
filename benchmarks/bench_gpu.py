"""Every family on a GPU, through the app's services, as a user's requests run: the shipped starters in fp32 and in
the device's half precision (bf16 where the GPU has it, else fp16: what the app picks), and text and translation
also on CTranslate2 (int8_float16; CTranslate2's memory is not in PyTorch's peak, so the loaded size is printed).
Images/s, tokens/s or sentences/s at several batch sizes, and the peak GPU memory of each run. On a machine without
a CUDA GPU it says so and measures nothing (exit 0); `--device cpu` runs the same script small, as a check that it
works.

    python benchmarks/bench_gpu.py [--device cuda:0] [--repeats 3] [--quick] [--families images text translation]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch

from aigc_hub import devices
from aigc_hub.services import ImageService, ModelRegistry, SamplingSettings, TextService, TranslationService

GAN, DDPM, LM, MT = ("aigc-hub/dcgan-mnist", "aigc-hub/ddpm-mnist", "aigc-hub/gpt-tinyshakespeare",
                     "aigc-hub/translator-en-zh")
SENTENCES = ["I love you.", "Where is the station?", "He runs every day.", "I have three books.",
             "It is going to rain tomorrow.", "Could you open the window, please?", "We had dinner at seven.",
             "She reads a book before she goes to sleep."]


def registry(device: str, dtype: torch.dtype | None, backend: str | None = None) -> ModelRegistry:
    """A registry that places every model on `device` in `dtype` (None: the app's choice for the device)."""
    if dtype is not None:
        devices.dtype_for = lambda _device, _dtype=dtype: _dtype  # this process only: the bench's own registries
    return ModelRegistry({"*": device}, backends={"*": backend} if backend else None)


def measured(device: str, fn: Callable[[], float], repeats: int) -> tuple[float, float]:
    """The median of `repeats` rates from `fn` (after one warm-up call), and the peak memory in MiB."""
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rates = [fn() for _ in range(repeats)]
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else float("nan")
    return statistics.median(rates), peak


def memory(peak: float) -> str:
    return "peak GPU memory —" if peak != peak else f"peak GPU memory {peak:8.1f} MiB"


def rate(count: int, run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return count / (time.perf_counter() - start)


def images(device: str, dtypes: dict, repeats: int, quick: bool) -> None:
    steps = 5 if quick else 25
    for ref, sizes, unit in ((GAN, (1, 64, 256), "images/s"), (DDPM, (1, 16, 64), f"images/s at {steps} steps")):
        for label, dtype in dtypes.items():
            service = ImageService(registry(device, dtype))
            for n in sizes[:2] if quick else sizes:
                value, peak = measured(device, lambda: rate(n, lambda: service.generate(
                    ref, n, seed=0, steps=steps)), repeats)
                print(f"  {ref:30s} {label:5s} batch {n:4d}: {value:9.1f} {unit}; {memory(peak)}")


def ct2_runs(device: str) -> list[tuple[str, None, str]]:
    """The CTranslate2 run, where its package is installed and sees the device (its PyPI wheels link CUDA 12's
    cuBLAS: a machine with only CUDA 13 libraries has no CTranslate2 GPU)."""
    try:
        import ctranslate2
    except ImportError:
        print("  ctranslate2: not installed, skipped")
        return []
    if device.startswith("cuda") and ctranslate2.get_cuda_device_count() == 0:
        print("  ctranslate2: sees no CUDA device (its CUDA 12 libraries are missing?), skipped")
        return []
    return [("ct2", None, "ctranslate2")]


def text(device: str, dtypes: dict, repeats: int, quick: bool) -> None:
    tokens = 50 if quick else 200
    for label, dtype, backend in [(label, dtype, None) for label, dtype in dtypes.items()] + ct2_runs(device):
        service = TextService(registry(device, dtype, backend))
        for streams in (1, 4) if quick else (1, 8, 32):
            def run() -> float:
                def one(seed: int) -> None:
                    "".join(service.stream(LM, "ROMEO:", SamplingSettings(tokens), seed=seed).chunks)

                threads = [threading.Thread(target=one, args=(s,)) for s in range(streams)]
                start = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                return streams * tokens / (time.perf_counter() - start)

            value, peak = measured(device, run, repeats)
            loaded = service.registry.get(LM).describe().split("(", 1)[1].rstrip(")")
            print(f"  {LM:30s} {label:5s} {streams:3d} streams: {value:9.1f} tokens/s in all; {memory(peak)} "
                  f"({loaded})")


def translation(device: str, dtypes: dict, repeats: int, quick: bool) -> None:
    lines = SENTENCES * (4 if quick else 32)
    runs = [(label, dtype, None) for label, dtype in dtypes.items()] + ct2_runs(device)
    for label, dtype, backend in runs:
        service = TranslationService(registry(device, dtype, backend))
        value, peak = measured(device, lambda: rate(len(lines), lambda: service.translate(MT, lines, "en", "zh",
                                                                                           beams=4)), repeats)
        loaded = service.registry.get(MT).describe().split("(", 1)[1].rstrip(")")
        print(f"  {MT:30s} {label:5s} beam 4, {len(lines)} sentences: {value:9.1f} sentences/s; {memory(peak)} "
              f"({loaded})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes (a check that the script runs)")
    parser.add_argument("--families", nargs="+", choices=["images", "text", "translation"],
                        default=["images", "text", "translation"])
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA GPU here: nothing measured (run this on a machine with one, or --device cpu to check it)")
        return
    half = devices.dtype_for(args.device)
    dtypes = {"fp32": torch.float32} if args.device == "cpu" else {"fp32": torch.float32,
                                                                   str(half).replace("torch.", ""): half}
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(f"{name}, torch {torch.__version__}, {args.repeats} repeats (medians)")
    for family in args.families:
        {"images": images, "text": text, "translation": translation}[family](args.device, dtypes, args.repeats,
                                                                             args.quick)


if __name__ == "__main__":
    main()
