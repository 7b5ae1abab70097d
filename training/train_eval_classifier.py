"""Train an evaluation classifier: the feature network of the Fréchet distance and the judge of conditional accuracy
for the image starters (see `aigc_hub/evaluation/classifier.py`).

    python training/train_eval_classifier.py --dataset ../shared/data/images/mnist/mnist.npz \\
        --image_column x_train --label_column y_train --eval_image_column x_test --eval_label_column y_test \\
        --output_dir aigc_hub/evaluation/weights/mnist-classifier
    python training/train_eval_classifier.py --dataset ../shared/data/images/emoji/twemoji_64.npz \\
        --image_column images --label_column categories --holdout_fraction 0.1 --holdout_group_column names \\
        --resolution 64 --in_channels 3 --background 1 --epochs 40 \\
        --output_dir aigc_hub/evaluation/weights/twemoji-classifier

It must see exactly the training side of the generator's data (same dataset options and seed): the held-out images
are then new to both, and its accuracy on them is printed and written beside the weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from aigc_hub.evaluation.classifier import ImageClassifier, accuracy
from training.image_data import ImageData, load_images
from training.image_eval import add_image_args, training_images


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_image_args(parser)
    g = parser.add_argument_group("classifier")
    g.add_argument("--output_dir", type=Path, required=True)
    g.add_argument("--in_channels", type=int, default=1, choices=[1, 3])
    g.add_argument("--background", type=float, default=-1.0, help="alpha is composited onto this value (-1 black)")
    g.add_argument("--num_features", type=int, default=128)
    g.add_argument("--epochs", type=int, default=3)
    g.add_argument("--batch_size", type=int, default=128)
    g.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def held_out(args: argparse.Namespace) -> ImageData:
    if args.holdout_fraction:
        return training_images(args, part="holdout")
    if not args.eval_image_column and not args.eval_split:
        raise SystemExit("name the held-out images: --eval_image_column / --eval_split or --holdout_fraction")
    return load_images(args.dataset, resolution=args.resolution, image_column=args.eval_image_column or args.image_column,
                       label_column=args.eval_label_column or args.label_column, split=args.eval_split or args.split,
                       channels=args.channels)


def fit(train: ImageData, in_channels: int, resolution: int, background: float = -1.0, num_features: int = 128,
        epochs: int = 3, batch_size: int = 128, seed: int = 0) -> ImageClassifier:
    """A classifier of `train`'s labels, trained with small random translations (an offset must not fool it)."""
    torch.manual_seed(seed)
    model = ImageClassifier(train.num_classes, num_features, in_channels, resolution, background)
    x, y = model.prepare(train.dataset.pixels), train.dataset.labels
    # Inverse-frequency class weights: on Twemoji 60 % of the images are "People & Body", and a judge that favours
    # the big class would flatter a generator's conditional accuracy there.
    counts = torch.bincount(y, minlength=train.num_classes).float()
    weight = counts.sum() / (counts.clamp(min=1) * train.num_classes)
    steps_per_epoch = (len(x) + batch_size - 1) // batch_size
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * steps_per_epoch)
    max_shift = max(1, resolution // 16)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x))
        for i in tqdm(range(0, len(perm), batch_size), desc=f"classifier epoch {epoch}", leave=False):
            idx = perm[i : i + batch_size]
            shift = torch.randint(-max_shift, max_shift + 1, (2,))
            xb = torch.roll(x[idx], shifts=(int(shift[0]), int(shift[1])), dims=(2, 3))
            loss = F.cross_entropy(model(xb), y[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.label_column:
        raise SystemExit("--label_column is required: a classifier learns labels")
    train, test = training_images(args), held_out(args)
    model = fit(train, args.in_channels, args.resolution, args.background, args.num_features, args.epochs,
                args.batch_size, args.seed)
    pixels, labels = test.dataset.pixels, test.dataset.labels
    acc = accuracy(model, pixels, labels)
    per_class = [accuracy(model, pixels[labels == c], labels[labels == c]) for c in labels.unique().tolist()]
    model.save_pretrained(str(args.output_dir))
    report = {"held_out_images": len(test.dataset), "accuracy": round(acc, 4),
              "balanced_accuracy": round(sum(per_class) / len(per_class), 4), "class_names": train.class_names,
              "train_images": len(train.dataset), "epochs": args.epochs, "seed": args.seed}
    (args.output_dir / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
