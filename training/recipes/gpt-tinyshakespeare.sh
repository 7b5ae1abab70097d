#!/usr/bin/env bash
# The exact recipe of the shipped starter `aigc-hub/gpt-tinyshakespeare` (character-level GPT-2, Tiny Shakespeare).
# Split: first 90 % of the characters train, last 10 % validate (the usual split). Run from the repository root.
# CPU (2 cores): about an hour. GPUs: prefix with `accelerate launch`, add --mixed_precision bf16, and try
# --preset small --block_size 256 --train_batch_size 64 --dropout 0.2 --max_train_steps 5000 (nanoGPT's A100 setup).
set -euo pipefail
DATA=${1:-../shared/data/text/tinyshakespeare/input.txt}
OUT=${OUT:-runs/gpt-tinyshakespeare}
python training/train_text.py \
  --dataset "$DATA" --validation_split_percentage 10 --tokenizer char \
  --architecture gpt2 --preset micro --block_size 128 --dropout 0.1 \
  --train_batch_size 32 --max_train_steps 2500 --learning_rate 2e-3 --lr_scheduler cosine_with_min_lr \
  --lr_min_ratio 0.1 --lr_warmup_steps 100 --adam_beta2 0.99 --weight_decay 0.1 --max_grad_norm 1.0 --seed 0 \
  --eval_steps 250 --eval_batches 20 --sample_prompt "ROMEO:" --checkpointing_steps 250 --checkpoints_total_limit 2 \
  --output_dir "$OUT" --resume_from_checkpoint latest --hub_model_id aigc-hub/gpt-tinyshakespeare \
  --card_title "GPT-2 (char) Tiny Shakespeare" --card_dataset tinyshakespeare --card_license mit \
  --card_notes "$(cat training/recipes/tinyshakespeare-attribution.md)" \
  "${@:2}"
