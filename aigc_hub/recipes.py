"""The training recipes the app runs as jobs (the Train tab, /start_training), one table beside families.py.

A **recipe** is one of the project's training scripts as a job runs it: its title, the kind of data it takes (which
upload checks apply, jobs/uploads.py), its presets (the first is the default) and how it shows progress (sample
images, or evaluation figures). The job queue, the upload checks and the Train tab all read this table; adding a
training script to the Train tab is one entry here (README "Adding a training script to the Train tab"). Not to be
confused with a *task* (families.py: what a tab serves) or with training/recipes/ (the starters' exact commands).
"""

from __future__ import annotations

from dataclasses import dataclass

# What each kind of data is, as the Train tab asks for it; jobs/uploads.py checks each kind.
DATA_KINDS = {"image": "a .zip of an image folder (class sub-folders become labels) or an .npz",
              "text": "a UTF-8 .txt, or a .jsonl of text, prompt + completion, or chat messages rows",
              "pairs": "a .jsonl or .csv of sentence pairs"}


@dataclass(frozen=True)
class Recipe:
    key: str  # what a client names: /start_training("gan", ...)
    title: str  # the Train tab's choice
    script: str  # under training/
    data: str  # a key of DATA_KINDS
    presets: dict[str, tuple[str, ...]]  # preset → the script's options; the first is the default
    shows: str = "samples"  # "samples": --sample_steps (image grids); "evaluation": --eval_steps (figures, texts)
    base_family: str | None = None  # its script adapts a model of this family (--base_model, training/adapt.py)
    lora: bool = True  # ... with LoRA (--lora_rank); False: every weight (the GAN)
    steps: int = 1000  # the Train tab's starting step count


SIZES = ("tiny", "small", "base")
RECIPES = {r.key: r for r in [
    # The GAN script has sizes, not presets: these are its options. No DiffAugment: on 48 MNIST digits its translation
    # made the tiny and small GANs worse at 2,000 steps in every seed (FD and conditional accuracy, the shipped
    # classifier; docs/measurements.md). 3,000 steps: on 48 digits 1,000 drew blobs, 3,000 every class (a minute or
    # two of the small preset on 2 CPU cores; benchmarks/bench_small_data.py).
    Recipe("gan", "GAN (images)", "train_gan.py", "image", {
        "small": ("--base_channels", "32", "--latent_dim", "64", "--embed_dim", "16"),
        "tiny": ("--base_channels", "8", "--latent_dim", "16", "--embed_dim", "8", "--train_batch_size", "32"),
        "base": ()}, base_family="dcgan", lora=False, steps=3000),
    Recipe("diffusion", "Diffusion (images)", "train_diffusion.py", "image", {p: ("--preset", p) for p in SIZES},
           base_family="diffusion"),
    Recipe("text", "Text LM", "train_text.py", "text",
           {p: ("--preset", p) for p in ("nano", "micro", "mini", "small")}, shows="evaluation",
           base_family="causal-lm"),
    Recipe("translation", "Translation", "train_translation.py", "pairs", {p: ("--preset", p) for p in SIZES},
           shows="evaluation", base_family="seq2seq"),
]}
