"""Adapting shared models: the LoRA training step against a bare peft loop, and the issue's quality targets.

(a) --loop: ms per step of `train_text.py --base_model aigc-hub/gpt-tinyshakespeare --lora_rank 16` (Trainer.fit)
    against a bare loop over the same base with the same peft LoRA config, optimizer, schedule and packed blocks
    (peft's `get_peft_model`, forward, backward, clip, step); repeats take turns, the bare loop is the baseline.
    Target: ≤ 1.10× the bare loop.
(b) --chat: SFT of a small chat model (a 2-layer Llama built with the real classes as the tests build it, random
    weights) on chat rows whose assistant always answers "You said: <the user's words>", through `train_text.py`
    with LoRA; on held-out prompts, the share of replies (greedy, through the app's TextService chat) that start
    with "You said:" and the share that are exactly the echo, before and after.
(c) --translation: the shipped translator fine-tuned on one domain, everyday short phrases (Tatoeba pairs of at
    most four English words, greetings among them), through `train_translation.py`; sacreBLEU on that domain's
    held-out pairs and on the general held-out pairs (the base's own validation split), base and adapted,
    both directions.

    python benchmarks/bench_adapt.py --loop [--loop-steps 60 --loop-repeats 4]
    python benchmarks/bench_adapt.py --chat
    python benchmarks/bench_adapt.py --translation
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]
DATA = REPO.parent / "shared" / "data"
ENGLISH_SHORT = DATA / "translation" / "en-zh" / "en-zh.jsonl"  # Tatoeba English, 28 k sentences: a quick set-up
BASE = "aigc-hub/gpt-tinyshakespeare"


def time_loop(steps: int, repeats: int) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.utils.data import DataLoader
    from transformers import get_scheduler

    from aigc_hub.devices import keep_freed_memory
    from training.common import adamw
    from training.train_text import load_base, parse_args, setup
    from turns import print_against, take_turns

    keep_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        args = parse_args(["--base_model", BASE, "--dataset", str(ENGLISH_SHORT), "--text_column", "en", "--lora_rank",
                           "16", "--output_dir", tmp, "--report_to", "none", "--checkpointing_steps", "0",
                           "--eval_steps", "0", "--sample_tokens", "0", "--max_train_steps", str(steps)])

        def helper() -> float:
            run = setup(args)
            start = time.perf_counter()
            run.trainer.fit(run.loader, [run.model], run.train_step)
            return 1000 * (time.perf_counter() - start) / steps

        first = setup(args)  # the packed blocks and the LoRA config the bare loop shares
        blocks, config = first.loader.dataset, first.raw.peft_config["default"]

        def bare() -> float:
            torch.manual_seed(args.seed)
            model = get_peft_model(load_base(args)[0], LoraConfig(
                r=config.r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                target_modules=config.target_modules, task_type="CAUSAL_LM"))
            opt = adamw(model, args)
            sched = get_scheduler(args.lr_scheduler, opt, num_warmup_steps=args.lr_warmup_steps,
                                  num_training_steps=steps,
                                  scheduler_specific_kwargs={"min_lr_rate": args.lr_min_ratio}
                                  if "min_lr" in args.lr_scheduler else None)
            batches = iter(DataLoader(blocks, batch_size=args.train_batch_size, shuffle=True, drop_last=True))
            model.train()
            start = time.perf_counter()
            for _ in range(steps):
                ids = next(batches)["input_ids"]
                loss = model(input_ids=ids, labels=ids).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                opt.step()
                opt.zero_grad(set_to_none=True)
                sched.step()
                loss.item()
            return 1000 * (time.perf_counter() - start) / steps

        variants = {"bare peft loop": bare, "train_text.py --lora_rank 16 (Trainer.fit)": helper}
        bare()  # warm-up
        times = take_turns(variants, repeats)
    print(f"LoRA step ({BASE}, rank 16 on {sorted(config.target_modules)}, batch {args.train_batch_size} × "
          f"{args.block_size}, {steps} steps, {repeats} repeats taking turns):")
    print_against(times, "bare peft loop", width=45)
    print("  (target: <= 1.10x the bare peft loop)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loop", action="store_true")
    parser.add_argument("--chat", action="store_true")
    parser.add_argument("--translation", action="store_true")
    parser.add_argument("--loop-steps", type=int, default=60)
    parser.add_argument("--loop-repeats", type=int, default=4)
    args = parser.parse_args()
    if not (args.loop or args.chat or args.translation):
        args.loop = args.chat = args.translation = True
    if args.loop:
        time_loop(args.loop_steps, args.loop_repeats)
    if args.chat:
        from adapt_targets import chat_target

        chat_target()
    if args.translation:
        from adapt_targets import translation_target

        translation_target()


if __name__ == "__main__":
    main()
