#!/usr/bin/env bash
# The exact recipe of the shipped starter `aigc-hub/dcgan-mnist` (class-conditional DCGAN, MNIST, 32 px).
# Run from the repository root; needs ../shared/data (or pass another copy of mnist.npz as $1).
# CPU (2 cores): ~36 min of training + 1 min of evaluation.  GPUs: prefix with `accelerate launch` and add --mixed_precision bf16.
set -euo pipefail
DATA=${1:-../shared/data/images/mnist/mnist.npz}
OUT=${OUT:-runs/dcgan-mnist}
python training/train_gan.py \
  --dataset "$DATA" --image_column x_train --label_column y_train \
  --eval_image_column x_test --eval_classifier mnist --eval_samples 10000 \
  --resolution 32 --base_channels 64 --latent_dim 100 --embed_dim 32 \
  --train_batch_size 128 --num_epochs 10 --learning_rate 2e-4 --adam_beta1 0.5 --adam_beta2 0.999 \
  --ema_decay 0.999 --seed 0 \
  --checkpointing_steps 500 --checkpoints_total_limit 2 --sample_steps 250 --logging_steps 50 \
  --output_dir "$OUT" --resume_from_checkpoint latest --hub_model_id aigc-hub/dcgan-mnist \
  --card_title "DCGAN MNIST (class-conditional)" --card_dataset mnist --card_license mit \
  --card_notes "$(sed s/RECIPE/dcgan-mnist/ training/recipes/mnist-attribution.md)" \
  "${@:2}"
