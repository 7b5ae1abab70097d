"""Editing with the shipped class-conditional diffusion starter (aigc-hub/ddpm-mnist), through ImageService.

1. Inpainting the lower half of MNIST test digits (the first --digits of the test split, 25 steps by default), each
   a request of its own sent together (the service batches them), given the digit's own label and then another
   label (drawn at random, seeded), at each --guidance (classifier-free guidance; default: the model's own). Judged
   twice: by the shipped MNIST classifier (the project's own metric) and, independently, by the label of the
   nearest training digit in pixel space (1-NN over the 60,000). Baselines: the intact digits and the upper halves
   alone (lower half black). Targets: own label ≥ 90 %, other label ≥ 70 %. The ceiling: what real lower halves
   of the other label make of the kept upper halves, for the classifier (200 digits).
2. Strength 0 returns the input bit for bit and strength 1 equals generation from the same seed.
3. Speed: 64 images inpainted, and 64 made image-to-image at strength 0.5 with twice the steps, against 64
   generated, all running the same number of denoising steps; the three take turns. Target: within 10 %.

    python benchmarks/bench_editing.py [--digits 1000] [--steps 25] [--guidance 1 5] [--repeats 3] [--picture PATH]
        [--model FOLDER] [--only rules speed quality ceiling]
"""

from __future__ import annotations

import argparse
import io
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np
import torch
from PIL import Image

from aigc_hub.evaluation.classifier import load_classifier
from aigc_hub.imaging import make_grid
from aigc_hub.services import ImageService, ModelRegistry
from aigc_hub.services.requests import ImageRequest
from benchmarks.turns import print_against, take_turns

MODEL = "aigc-hub/ddpm-mnist"  # --model
MNIST = REPO.parent / "shared" / "data" / "images" / "mnist" / "mnist.npz"


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def inpaint(service: ImageService, digits: np.ndarray, labels: np.ndarray, steps: int,
            guidance: float | None = None) -> np.ndarray:
    """Each digit's lower half repainted under its label: one request per digit, sent together."""
    mask = np.zeros(digits.shape[1:], dtype=np.uint8)
    mask[digits.shape[1] // 2:] = 255
    mask_png = png(mask)

    def one(i: int) -> np.ndarray:
        request = ImageRequest(MODEL, 1, i, int(labels[i]), steps, image=png(digits[i]), mask=mask_png,
                               guidance_scale=guidance)
        return service.run(request).images[0]

    with ThreadPoolExecutor(64) as pool:
        return np.stack(list(pool.map(one, range(len(digits)))))


class NearestDigit:
    """The label of the nearest MNIST training digit (Euclidean, 28 px): a judge that shares nothing with the
    classifier."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x = torch.from_numpy(x.reshape(len(x), -1)).float()
        self.y = torch.from_numpy(y.astype(np.int64))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        small = np.stack([np.asarray(Image.fromarray(im[..., 0]).resize((28, 28), Image.Resampling.LANCZOS))
                          for im in images])
        q = torch.from_numpy(small.reshape(len(small), -1)).float()
        return np.concatenate([self.y[torch.cdist(q[i:i + 250], self.x).argmin(1)].numpy()
                               for i in range(0, len(q), 250)])


def judged(images: np.ndarray, labels: np.ndarray, classifier, nearest: NearestDigit) -> str:
    with torch.no_grad():
        x = torch.from_numpy(images).permute(0, 3, 1, 2)
        by_classifier = torch.cat([classifier(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)]).numpy()
    return (f"classifier {100 * (by_classifier == labels).mean():5.1f} %, nearest training digit "
            f"{100 * (nearest(images) == labels).mean():5.1f} %")


def quality(service: ImageService, count: int, steps: int, picture: Path | None,
            scales: list[float | None]) -> None:
    data = np.load(MNIST)
    digits, own = data["x_test"][:count], data["y_test"][:count].astype(np.int64)
    other = (own + np.random.default_rng(0).integers(1, 10, count)) % 10  # any label but the digit's own
    classifier, nearest = load_classifier("mnist"), NearestDigit(data["x_train"], data["y_train"])
    at_size = np.stack([np.asarray(Image.fromarray(d).resize((32, 32), Image.Resampling.LANCZOS))
                        for d in digits])[..., None]  # the service's rule: stretched to the model's size
    upper = at_size.copy()
    upper[:, 16:] = 0
    print(f"inpainting the lower half of {count} MNIST test digits, {MODEL}, {steps} steps (DPM-Solver++ 2M):")
    print(f"  intact digits (baseline)          {judged(at_size, own, classifier, nearest)}")
    print(f"  upper halves alone (baseline)     {judged(upper, own, classifier, nearest)}")
    rows = [at_size[:10], upper[:10]]
    for scale in scales:
        cfg = "the model's default guidance" if scale is None else f"guidance {scale:g}"
        for name, labels in (("own label", own), ("another label", other)):
            start = time.perf_counter()
            images = inpaint(service, digits, labels, steps, scale)
            wall = time.perf_counter() - start
            rows.append(images[:10])
            print(f"  repainted under {name:14s} ({cfg})   {judged(images, labels, classifier, nearest)}   "
                  f"({wall:.0f} s)")
    if picture:
        grid = make_grid(np.concatenate(rows), nrow=10)
        picture.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(grid[..., 0]).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.Resampling.NEAREST).save(
            picture)
        print(f"  wrote {picture}: rows = the digits, their upper halves, then for each guidance: repainted under "
              f"their own label, under another ({', '.join(map(str, other[:10]))})")


def ceiling(count: int, candidates: int = 500) -> None:
    """What keeping the upper half allows at all: each test digit's upper half joined to the lower half of a real
    training digit of the other label (the nearest by upper half; then the best for the classifier among the
    `candidates` nearest: an oracle that picks with the judge itself)."""
    data = np.load(MNIST)
    digits, own = data["x_test"][:count], data["y_test"][:count].astype(np.int64)
    other = (own + np.random.default_rng(0).integers(1, 10, count)) % 10  # the labels quality() asks for
    x, y = data["x_train"], data["y_train"]
    classifier = load_classifier("mnist")
    uppers = torch.from_numpy(x[:, :14].reshape(len(x), -1)).float()
    nearest_hits = best_hits = 0
    for i in range(count):
        pool = np.flatnonzero(y == other[i])
        order = pool[torch.cdist(torch.from_numpy(digits[i, :14].reshape(1, -1)).float(), uppers[pool])[0]
                     .argsort()[:candidates].numpy()]
        joined = np.repeat(digits[i:i + 1], len(order), 0)
        joined[:, 14:] = x[order, 14:]
        sized = np.stack([np.asarray(Image.fromarray(d).resize((32, 32), Image.Resampling.LANCZOS)) for d in joined])
        with torch.no_grad():
            said = classifier(torch.from_numpy(sized[:, None])).argmax(1).numpy()
        nearest_hits += said[0] == other[i]
        best_hits += (said == other[i]).any()
    print(f"the other label with the upper half kept, {count} digits, judged by the classifier: a real lower half "
          f"(nearest upper half) {100 * nearest_hits / count:.1f} %; the best of {candidates} real lower halves "
          f"(an oracle) {100 * best_hits / count:.1f} %")


def rules(service: ImageService) -> None:
    digit = np.load(MNIST)["x_test"][0]
    sized = np.asarray(Image.fromarray(digit).resize((32, 32), Image.Resampling.LANCZOS))
    kept = service.run(ImageRequest(MODEL, 8, 5, 7, 25, image=png(digit), strength=0)).images
    made = service.run(ImageRequest(MODEL, 8, 5, 7, 25)).images
    full = service.run(ImageRequest(MODEL, 8, 5, 7, 25, image=png(digit), strength=1)).images
    print(f"strength 0 returns the input bit for bit: {bool((kept[..., 0] == sized).all())}; strength 1 equals "
          f"generation from the same seeds: {bool(np.array_equal(full, made))}")


def speed(service: ImageService, steps: int, repeats: int) -> None:
    digit = png(np.load(MNIST)["x_test"][0])
    mask = np.zeros((28, 28), dtype=np.uint8)
    mask[14:] = 255

    def timed(**edit) -> float:
        start = time.perf_counter()
        service.run(ImageRequest(MODEL, 64, 1, None, edit.pop("steps", steps), **edit))
        return 1000 * (time.perf_counter() - start) / steps  # ms per denoising step actually run

    times = take_turns({"generation": timed, "inpainting (strength 1)": lambda: timed(image=digit, mask=png(mask)),
                        f"image-to-image, strength 0.5 of {2 * steps} steps": lambda: timed(
                            image=digit, strength=0.5, steps=2 * steps)}, repeats)
    print(f"64 images, {steps} denoising steps run ({repeats} repeats taking turns; ms per step of the batch):")
    print_against(times, "generation", width=42)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="aigc-hub/ddpm-mnist",
                        help="another class-conditional MNIST diffusion model (a folder)")
    parser.add_argument("--guidance", type=float, nargs="+", default=[None],
                        help="classifier-free guidance scales to inpaint at (default: the model's own)")
    parser.add_argument("--only", choices=["rules", "speed", "quality", "ceiling"], nargs="+",
                        default=["rules", "speed", "quality", "ceiling"])
    parser.add_argument("--picture", type=Path, default=REPO / "benchmarks" / "figures" / "editing-mnist.png",
                        help="where the before/after picture of the first 10 digits goes (README)")
    args = parser.parse_args()
    if not MNIST.is_file():
        raise SystemExit(f"needs MNIST at {MNIST} (see ../shared/data/README)")
    torch.manual_seed(0)
    print(f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    global MODEL
    MODEL = args.model
    service = ImageService(ModelRegistry())
    if "rules" in args.only:
        rules(service)
    if "speed" in args.only:
        speed(service, args.steps, args.repeats)
    if "quality" in args.only:
        quality(service, args.digits, args.steps, args.picture, args.guidance)
    if "ceiling" in args.only:
        ceiling(min(args.digits, 200))


if __name__ == "__main__":
    main()
