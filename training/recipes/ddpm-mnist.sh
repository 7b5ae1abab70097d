#!/usr/bin/env bash
# The exact recipe of the shipped starter `aigc-hub/ddpm-mnist` (class-conditional DDPM, diffusers UNet2DModel, MNIST, 32 px),
# in three stages: (1) 6,000 steps without an empty label (the starter as first shipped), (2) 1,200 steps of every weight
# with an empty label (label 10) in place of the class for 10 % of the images, for classifier-free guidance, (3) the
# card's figures. Run from the repository root; needs ../shared/data (or pass another copy of mnist.npz as $1).
# CPU (2 cores): ~50-100 min for stage 1, ~10-15 min for stage 2, ~20-30 min of evaluation (10,000 samples at 10 and
# 25 DPM-Solver++ steps, at the default guidance 1; --guidance N at sampling time guides). v-prediction with "trailing" timestep spacing: sampling starts at the last training
# step, where the input is pure noise (an epsilon model cannot start there). GPUs: prefix with `accelerate launch`, add
# --mixed_precision bf16 and try --preset small --max_train_steps 20000.
set -euo pipefail
DATA=${1:-../shared/data/images/mnist/mnist.npz}
OUT=${OUT:-runs/ddpm-mnist}
CARD=(--card_title "DDPM MNIST (class-conditional)" --card_dataset mnist --card_license mit)
python training/train_diffusion.py \
  --dataset "$DATA" --image_column x_train --label_column y_train --class_dropout 0 \
  --resolution 32 --preset tiny --prediction_type v_prediction --timestep_spacing trailing \
  --beta_schedule squaredcos_cap_v2 \
  --train_batch_size 64 --max_train_steps 6000 --learning_rate 1e-3 --lr_scheduler cosine --lr_warmup_steps 250 \
  --ema_decay 0.999 --seed 0 \
  --checkpointing_steps 500 --checkpoints_total_limit 2 --sample_steps 500 --logging_steps 50 \
  --output_dir "$OUT-stage1" --resume_from_checkpoint latest "${@:2}"
python training/train_diffusion.py --base_model "$OUT-stage1" --lora_rank 0 --class_dropout 0.1 \
  --dataset "$DATA" --image_column x_train --label_column y_train \
  --train_batch_size 64 --max_train_steps 1200 --learning_rate 2e-4 --lr_warmup_steps 50 --ema_decay 0.995 --seed 0 \
  --eval_steps_list 25 --sample_steps 400 --logging_steps 50 --checkpointing_steps 400 --checkpoints_total_limit 2 \
  --output_dir "$OUT" --resume_from_checkpoint latest "${@:2}"
# The card describes stage 1's settings; its notes, stage 2's.
python training/train_diffusion.py --eval_only --output_dir "$OUT" --guidance_scale 1 --class_dropout 0.1 \
  --max_train_steps 6000 --train_batch_size 64 --learning_rate 1e-3 --resolution 32 --prediction_type v_prediction \
  --beta_schedule squaredcos_cap_v2 --dataset "$DATA" --image_column x_train --label_column y_train \
  --eval_image_column x_test --eval_classifier mnist --eval_samples 10000 --eval_steps_list 10 25 \
  --hub_model_id aigc-hub/ddpm-mnist "${CARD[@]}" \
  --card_notes "$(sed s/RECIPE/ddpm-mnist/ training/recipes/mnist-attribution.md)

Training budget: 6,000 steps of 64 images from scratch (106 min on a 2-core x86-64 CPU, fp32, sharing it with other work part of the time), then 1,200 steps of every weight (batch 64, lr 2e-4 with 50 warm-up steps, cosine, EMA decay 0.995) with the empty label in place of the class for 10 % of the images (14 min): \`training/recipes/ddpm-mnist.sh\`. The figures are measured at guidance 1 (none), the app's default for this model." \
  "${@:2}"
