"""What every image training script shares beyond the loop: its data and evaluation arguments, the training images
they name, and the evaluation on held-out images (Fréchet distance in the shipped classifier's features, with its
real-vs-real floor, and conditional accuracy) that goes into the model card."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigc_hub.cards import Figure
from aigc_hub.evaluation.image_metrics import GenerateFn, ImageScores
from training.image_data import ImageData, load_images

if TYPE_CHECKING:
    import numpy as np
    import torch


def add_image_args(parser: argparse.ArgumentParser) -> None:
    """The data options (hub dataset, image folder, parquet, .npz; size; channels) and the evaluation options."""
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", required=True, help="hub dataset name, image folder, .parquet or .npz file")
    g.add_argument("--split", default="train")
    g.add_argument("--image_column", default=None)
    g.add_argument("--label_column", default=None, help="set to train a class-conditional model")
    g.add_argument("--resolution", type=int, default=32, choices=[32, 64, 128])
    g.add_argument("--channels", type=int, default=None, choices=[1, 3, 4], help="default: inferred from the data")
    g.add_argument("--max_train_samples", type=int, default=None)
    g = parser.add_argument_group("evaluation (on data the model does not train on)")
    g.add_argument("--holdout_fraction", type=float, default=0.0,
                   help="no test split: hold out this share of --dataset (seeded by --seed) to evaluate on")
    g.add_argument("--holdout_group_column", default=None,
                   help="hold out whole groups of this column (e.g. an emoji with its skin-tone variants)")
    g.add_argument("--eval_split", default=None, help="split of --dataset to evaluate on (e.g. test)")
    g.add_argument("--eval_image_column", default=None, help=".npz: the key of the held-out images (e.g. x_test)")
    g.add_argument("--eval_label_column", default=None)
    g.add_argument("--eval_classifier", default=None,
                   help="a shipped classifier ('mnist', 'twemoji'), a classifier folder, or 'own' (trained here on "
                        "the training side of labelled data, with --holdout_fraction); none = skip")
    g.add_argument("--eval_samples", type=int, default=10_000)


def training_images(args: argparse.Namespace, part: str = "train", resolution: int | None = None,
                    limit: int | None = None) -> ImageData:
    """The images (and labels) the data options name, resized once and kept in memory; `part="holdout"` gives the
    held-out side of a --holdout_fraction split."""
    return load_images(args.dataset, resolution=resolution or args.resolution, image_column=args.image_column,
                       label_column=args.label_column, split=args.split, channels=args.channels,
                       limit=limit if limit is not None or part == "holdout" else args.max_train_samples,
                       holdout_fraction=args.holdout_fraction, group_column=args.holdout_group_column, part=part,
                       seed=args.seed)


FEW_IMAGES = 200  # below it a run says what small data gives (measured on 48 digits: docs/measurements.md)
SMALL_DATA = {
    "gan": "a GAN trained on 48 MNIST digits drew blobs at 1,000 steps, and from 3,000 steps one or a few images per "
           "class; the diffusion recipe drew varied digits (at about 24 times the time a step on a CPU)",
    "diffusion": "a diffusion model trained on 48 MNIST digits drew 60 % of the digits asked for at 1,000 steps and "
                 "99 % at 3,000, close to copies of the training images (a GAN drew one or a few images per class)",
}


def small_data_notice(recipe: str, images: int) -> None:
    """What a run on few images should expect, measured (benchmarks/bench_small_data.py), said in its log."""
    from training.common import notice

    if images < FEW_IMAGES:
        notice(f"{images} images is little: {SMALL_DATA[recipe]}. docs/measurements.md has the figures")


PER_CLASS = range(2, 17)  # class counts whose sample grid has one column per class


def sample_grid(images: "torch.Tensor", num_classes: int) -> "np.ndarray":
    """A grid of samples whose labels were given in turn (0, 1, …): one column per class for 2 to 16 classes (at
    most 8 rows), else 8 columns."""
    from aigc_hub.imaging import make_grid

    if num_classes in PER_CLASS:
        rows = max(1, min(8, len(images) // num_classes))
        return make_grid(images[: rows * num_classes].float().cpu(), nrow=num_classes)
    return make_grid(images.float().cpu(), nrow=8)


def samples_section(num_classes: int, class_names: list[str] | None) -> str:
    """The card's section showing sample.png, saying what its columns are."""
    names = class_names or [str(i) for i in range(num_classes)]
    what = (f"One column per class, in label order: {', '.join(f'`{n}`' for n in names)}." if num_classes in PER_CLASS
            else "Labels in turn, 8 a row." if num_classes else "")
    return f"## Samples\n\n![Samples of the final weights](sample.png)\n\n{what}\n"


OWN = "own"  # --eval_classifier own: one trained in the same run on the training side (the Train tab's labelled data)
OWN_STEPS = 600  # its optimizer steps at least (batch 128): a few epochs of a big set, many of a small one


def own_classifier(args: argparse.Namespace) -> Any:
    """A classifier of the run's own labels, trained on the training side only (the held-out images stay new to it)
    and kept beside the logs (`<output_dir>/logs/eval-classifier`: never published)."""
    from training.train_eval_classifier import fit

    if not args.label_column:
        raise SystemExit("--eval_classifier own needs labelled data (--label_column): a classifier learns labels")
    if not args.holdout_fraction:
        raise SystemExit("--eval_classifier own needs --holdout_fraction: images neither model has seen")
    train = training_images(args)
    channels = train.dataset.pixels.shape[1]
    steps_per_epoch = -(-len(train.dataset) // 128)
    model = fit(train, 3 if channels >= 3 else 1, args.resolution, epochs=min(100, max(3, -(-OWN_STEPS //
                                                                                         steps_per_epoch))),
                seed=args.seed)
    model.save_pretrained(str(Path(args.output_dir) / "logs" / "eval-classifier"))
    return model


class HeldOut:
    """The held-out images, a real training sample of the same size and the classifier, loaded once for any number
    of evaluations (a diffusion model is scored at several step counts)."""

    def __init__(self, args: argparse.Namespace) -> None:
        from aigc_hub.evaluation.classifier import load_classifier

        self.args = args
        self.classifier = own_classifier(args) if args.eval_classifier == OWN else load_classifier(
            args.eval_classifier)
        size = self.classifier.input_size  # the classifier resizes anyway: load the real sets at its size once
        if args.holdout_fraction:
            self.eval = training_images(args, part="holdout", resolution=size)
        else:
            self.eval = load_images(args.dataset, resolution=size, label_column=None, channels=args.channels,
                                    image_column=args.eval_image_column or args.image_column,
                                    split=args.eval_split or args.split)
        self.train_ref = training_images(args, resolution=size, limit=args.eval_samples)
        self.name = f"{args.card_dataset or Path(args.dataset).stem} held-out ({len(self.eval.dataset)})"

    @staticmethod
    def wanted(args: argparse.Namespace) -> bool:
        return bool(args.eval_classifier and (args.eval_split or args.eval_image_column or args.holdout_fraction))

    def score(self, generate: GenerateFn, num_classes: int, generate_batch: int | None = None) -> ImageScores:
        from aigc_hub.evaluation.image_metrics import evaluate_generator

        return evaluate_generator(generate, self.eval.dataset.pixels, self.train_ref.dataset.pixels,
                                  num_classes=num_classes, num_samples=self.args.eval_samples,
                                  classifier=self.classifier, generate_batch=generate_batch)

    def figures(self, scores: ImageScores, suffix: str = "", floor: bool = True) -> list[Figure]:
        """Card figures of one evaluation; `suffix` tells several apart (", 25 steps")."""
        figures = [Figure(f"FD (classifier features){suffix}", scores.fd, "frechet-distance-classifier", self.name)]
        if floor:
            figures.append(Figure("FD real-vs-real floor", scores.fd_floor, "frechet-distance-floor", self.name))
        if scores.class_accuracy is not None:
            figures.append(Figure(f"conditional accuracy{suffix}", scores.class_accuracy, "conditional-accuracy",
                                  self.name))
        labels = self.eval.dataset.labels
        if floor and labels is not None and scores.class_accuracy is not None:
            # The ceiling the conditional accuracy is read against: the judge on real held-out images.
            from aigc_hub.evaluation.classifier import accuracy

            figures.append(Figure("classifier accuracy on the real held-out images",
                                  accuracy(self.classifier, self.eval.dataset.pixels, labels),
                                  "classifier-accuracy-real", self.name))
        return figures



def method_text(args: argparse.Namespace) -> str:
    """The card's paragraph on how the figures above it were measured."""
    from aigc_hub.evaluation.classifier import SHIPPED

    name = args.eval_classifier
    if not name:
        return ("No figures: nothing held out and no classifier to measure with (the Train tab measures labelled "
                "uploads of 200 images or more; the scripts take `--eval_classifier`, `own` for labelled data).")
    which = (f"AIGC Hub's shipped `{name}` classifier (`aigc_hub/evaluation/weights/{name}-classifier`)"
             if name in SHIPPED else "a small classifier trained in the same run on the training images only (this "
             "data has no shipped one)" if name == OWN else f"the classifier in `{name}`")
    held = (f"the {args.holdout_fraction:.0%} of the data held out with seed {args.seed}" if args.holdout_fraction
            else "held-out real images")
    return (f"The Fréchet distance is computed in the feature space of {which} (not Inception), on "
            f"{args.eval_samples} generated samples against {held}; the floor is the same distance between two real "
            "sets (training images against the held-out ones) and is the best a model can reach. Conditional "
            "accuracy is the share of samples the classifier assigns to the requested label.")
