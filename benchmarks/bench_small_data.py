"""Small data: which image recipe and augmentation give a usable model from a few dozen labelled images (what a Train
tab user uploads). The first N digits of MNIST's training set (default 48) train each arm, run by its script with
the Train tab's preset options, several seeds and step counts at once (in parallel where a GPU has room). Each model
is judged twice on 2,000 samples (labels 0…9 in turn):

- by the project's own measure, the card's figures the script computes: FD in the shipped MNIST classifier's
  features against the 10,000 test digits, and the classifier's conditional accuracy;
- independently: a 1-nearest-neighbour classifier on pixels over MNIST's other training digits (59,952: none of
  them trained the model) for conditional accuracy, and memorisation: the median distance from a sample to its
  nearest training digit over the same median for real test digits (1: as new as unseen digits; near 0: copies),
  also against the training digits moved by up to 4 px (a moved copy is a copy), and diversity: the mean distance
  between two samples of a class over the same for test digits (1: as varied; 0: one image per class).

    python benchmarks/bench_small_data.py [--images 48] [--steps 1000 4000] [--seeds 0 1] [--jobs 8]
        [--arms gan-small gan-tiny diffusion-tiny diffusion-tiny-shift] [--out runs/small-data]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch

from aigc_hub.cards import read_card
from aigc_hub.recipes import RECIPES

MNIST = REPO.parent / "shared" / "data" / "images" / "mnist" / "mnist.npz"
SAMPLES = 2000
ARMS = {  # name → recipe, the Train tab's preset, extra script options
    "gan-small": ("gan", "small", ()),
    "gan-tiny": ("gan", "tiny", ()),
    "diffusion-tiny": ("diffusion", "tiny", ()),
    "diffusion-tiny-shift": ("diffusion", "tiny", ("--augment_shift", "0.125", "--augment_p", "0.5")),
    "diffusion-tiny-shift-all": ("diffusion", "tiny", ("--augment_shift", "0.0625", "--augment_p", "1")),
    "diffusion-small": ("diffusion", "small", ()),
}


def train(arm: str, steps: int, seed: int, args: argparse.Namespace, threads: int) -> Path | None:
    recipe, preset, extra = ARMS[arm]
    out = args.out / f"{arm}-{steps}-{seed}"
    if (out / "README.md").is_file():
        return out  # trained by an earlier run of the bench
    argv = [sys.executable, str(REPO / "training" / RECIPES[recipe].script), "--dataset", str(args.mnist),
            "--image_column", "x_train", "--label_column", "y_train", "--max_train_samples", str(args.images),
            *RECIPES[recipe].presets[preset], *extra, "--max_train_steps", str(steps), "--seed", str(seed),
            "--output_dir", str(out), "--report_to", "none", "--eval_image_column", "x_test",
            "--eval_label_column", "y_test", "--eval_classifier", "mnist", "--eval_samples", str(args.samples)]
    if recipe == "diffusion":
        argv += ["--eval_steps_list", "25"]
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TQDM_DISABLE": "1"}
    with open(out.parent / f"{out.name}.log", "w") as log:
        done = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if done.returncode:
        print(f"{out.name} failed: see {out.parent / f'{out.name}.log'}", flush=True)
        return None
    return out


@torch.no_grad()
def samples(folder: Path, recipe: str, n: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """n samples in [-1, 1] and the labels asked for, from seeds the script's own evaluation did not use."""
    labels = torch.arange(n) % 10
    if recipe == "gan":
        from aigc_hub.models.dcgan import Generator

        gen = Generator.from_pretrained(str(folder), strict=True).to(device).eval()
        z = torch.randn(n, gen.latent_dim, generator=torch.Generator().manual_seed(7_000_000))
        return gen(z.to(device), labels.to(device)).float().cpu(), labels
    from diffusers import UNet2DModel

    from aigc_hub.models.diffusion import DEFAULT_SAMPLER
    from training.train_diffusion import sample

    unet = UNet2DModel.from_pretrained(str(folder), subfolder="unet", use_safetensors=True).to(device)
    config = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    out = [sample(unet, config, list(range(7_000_000 + i, 7_000_000 + min(n, i + 500))),
                  labels[i:i + 500].to(device), 25, DEFAULT_SAMPLER).cpu() for i in range(0, n, 500)]
    return torch.cat(out), labels


def nearest(a: torch.Tensor, b: torch.Tensor, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of a: the L2 distance to its nearest row of b, and that row's index."""
    best_d, best_i = [], []
    b = b.to(device)
    for chunk in a.split(500):
        d = torch.cdist(chunk.to(device), b)
        value, index = d.min(1)
        best_d.append(value.cpu())
        best_i.append(index.cpu())
    return torch.cat(best_d), torch.cat(best_i)


def spread(flat: torch.Tensor, labels: torch.Tensor, device: str) -> float:
    """The mean distance between two images of the same class, averaged over the classes."""
    return statistics.mean(float(torch.pdist(flat[labels == c].to(device)).mean()) for c in labels.unique())


def judge(folder: Path, recipe: str, real: dict, device: str, n: int) -> dict:
    """The card's figures and the independent ones of one trained model."""
    figures = {f.name.split(",")[0]: f.value for f in read_card(folder).figures}
    images, labels = samples(folder, recipe, n, device)
    flat = images.flatten(1)
    _, i_ref = nearest(flat, real["ref"], device)
    d_train, _ = nearest(flat, real["train"], device)
    d_moved, _ = nearest(flat, real["train_moved"], device)
    return {"fd": figures.get("FD (classifier features)"), "accuracy": figures.get("conditional accuracy"),
            "knn_accuracy": float((real["ref_labels"][i_ref] == labels).float().mean()),
            "memorisation": float(d_train.median() / real["test_to_train"]),
            "memorisation_moved": float(d_moved.median() / real["test_to_moved"]),
            "diversity": spread(flat, labels, device) / real["test_spread"]}


def real_digits(args: argparse.Namespace, device: str) -> dict:
    """MNIST at the training resolution, in [-1, 1]: the N training digits, the rest (the judge's references) and
    the median distance of test digits to their nearest training digit."""
    from training.image_data import load_images

    def pixels(column: str, labels: str) -> tuple[torch.Tensor, torch.Tensor]:
        data = load_images(str(args.mnist), resolution=32, image_column=column, label_column=labels).dataset
        return data.pixels.float().div(127.5).sub(1).flatten(1), data.labels

    x, y = pixels("x_train", "y_train")
    test, test_labels = pixels("x_test", "y_test")
    test, test_labels = test[: args.samples], test_labels[: args.samples]
    train = x[: args.images]
    # Every training digit moved by up to 4 px (the borders are black: a roll moves it): a moved copy is a copy.
    square = train.view(-1, 32, 32)
    moved = torch.cat([square.roll((dy, dx), (1, 2)) for dy in range(-4, 5) for dx in range(-4, 5)]).flatten(1)
    return {"train": train, "train_moved": moved, "ref": x[args.images:], "ref_labels": y[args.images:],
            "test_to_train": float(nearest(test, train, device)[0].median()),
            "test_to_moved": float(nearest(test, moved, device)[0].median()),
            "test_spread": spread(test, test_labels, device)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", type=Path, default=MNIST)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--steps", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS)[:4])
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--jobs", type=int, default=1, help="training runs at once (a GPU has room for several)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "small-data")
    args = parser.parse_args()
    if not args.mnist.is_file():
        raise SystemExit(f"MNIST not found at {args.mnist}: pass --mnist (see ../shared/data/README.md)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    runs = [(arm, steps, seed) for arm in args.arms for steps in args.steps for seed in args.seeds]
    threads = max(1, (os.cpu_count() or 2) // args.jobs)
    print(f"{len(runs)} runs on {args.images} digits, {args.jobs} at once, {device}", flush=True)
    real = real_digits(args, device)
    results = []
    with ThreadPoolExecutor(args.jobs) as pool:  # each model judged as its run ends: a cut-short bench keeps those
        futures = {pool.submit(train, *run, args, threads): run for run in runs}
        for future in as_completed(futures):
            arm, steps, seed = futures[future]
            if future.result() is None:
                continue
            scores = judge(future.result(), ARMS[arm][0], real, device, args.samples)
            results.append({"arm": arm, "steps": steps, "seed": seed, **scores})
            print(json.dumps(results[-1]), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\n{args.images} MNIST digits, {args.samples} samples; FD and accuracy: shipped classifier (card); "
          "k-NN accuracy and memorisation: independent (pixels)\n")
    print("| arm | steps | FD (each seed) | accuracy | k-NN accuracy | memorisation | moved copies | diversity |\n"
          "|---|---|---|---|---|---|---|---|")
    for arm in args.arms:
        for steps in args.steps:
            rows = [r for r in results if r["arm"] == arm and r["steps"] == steps]
            if not rows:
                continue

            def cell(key: str, fmt: str) -> str:
                values = [r[key] for r in rows]
                return f"{fmt.format(statistics.mean(values))} ({' / '.join(fmt.format(v) for v in values)})"
            print(f"| {arm} | {steps} | {cell('fd', '{:.0f}')} | {cell('accuracy', '{:.1%}')} | "
                  f"{cell('knn_accuracy', '{:.1%}')} | {cell('memorisation', '{:.2f}')} | "
                  f"{cell('memorisation_moved', '{:.2f}')} | {cell('diversity', '{:.2f}')} |")


if __name__ == "__main__":
    main()
