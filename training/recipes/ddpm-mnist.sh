#!/usr/bin/env bash
# The exact recipe of the shipped starter `aigc-hub/ddpm-mnist` (class-conditional DDPM, diffusers UNet2DModel, MNIST, 32 px).
# Run from the repository root; needs ../shared/data (or pass another copy of mnist.npz as $1).
# CPU (2 cores): ~80 min of training (6,000 steps of 64 at ~0.8 s) + ~80 min of evaluation (10,000 samples at each of
# 10 / 25 / 50 DPM-Solver++ steps). v-prediction with "trailing" timestep spacing: sampling starts at the last training
# step, where the input is pure noise (an epsilon model cannot start there). GPUs: prefix with `accelerate launch`, add
# --mixed_precision bf16 and try --preset small --max_train_steps 20000.
set -euo pipefail
DATA=${1:-../shared/data/images/mnist/mnist.npz}
OUT=${OUT:-runs/ddpm-mnist}
python training/train_diffusion.py \
  --dataset "$DATA" --image_column x_train --label_column y_train \
  --eval_image_column x_test --eval_classifier mnist --eval_samples 10000 --eval_steps_list 10 25 50 \
  --resolution 32 --preset tiny --prediction_type v_prediction --timestep_spacing trailing \
  --beta_schedule squaredcos_cap_v2 \
  --train_batch_size 64 --max_train_steps 6000 --learning_rate 1e-3 --lr_scheduler cosine --lr_warmup_steps 250 \
  --ema_decay 0.999 --seed 0 \
  --checkpointing_steps 500 --checkpoints_total_limit 2 --sample_steps 500 --logging_steps 50 \
  --output_dir "$OUT" --resume_from_checkpoint latest --hub_model_id aigc-hub/ddpm-mnist \
  --card_title "DDPM MNIST (class-conditional)" --card_dataset mnist --card_license mit \
  --card_notes "$(sed s/RECIPE/ddpm-mnist/ training/recipes/mnist-attribution.md)

Training budget: 6,000 steps of 64 images in 106 min on a 2-core x86-64 CPU (fp32), sharing it with other work (tests) part of the time." \
  "${@:2}"
