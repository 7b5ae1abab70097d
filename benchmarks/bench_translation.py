"""Speed of the translation path, each figure against a baseline run in the same process.

1. train_translation.py's training step (the real `Trainer.fit` loop with the starter recipe's model and settings)
   vs a bare PyTorch loop over the same Marian model configuration, the same length-grouped batches (one epoch of
   the same dataset object), the same loss, AdamW, clipping and schedule. Target ratio ≤ 1.05.
2. Sentences/s of batch translation (beam 4) through `TranslationService` vs raw `model.generate` on the same
   sentences, on the same device worker thread (the service's overhead is validation, segmentation, length sorting,
   batching and decoding). Target: overhead ≤ 10 %, ≥ 30 sentences/s on 2 cores for the starter.

    python benchmarks/bench_translation.py [--model aigc-hub/translator-en-zh] [--sentences 256] [--repeats 3]
        [--train-pairs 3200] [--skip-training]
"""

from __future__ import annotations

import argparse
import statistics
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "translation" / "en-zh" / "en-zh.jsonl"
STARTER = REPO / "starters" / "aigc-hub" / "translator-en-zh"


def sentences(n: int, lang: str) -> list[str]:
    """`n` sentences spread over the file (it is sorted by length), or a fixed mix where the data is absent."""
    if DATA.exists():
        rows = DATA.read_text(encoding="utf-8").splitlines()
        return [json.loads(rows[i * len(rows) // n])[lang] for i in range(n)]
    base = ["Hello.", "How are you?", "I would like a cup of tea, please.", "Where is the train station?",
            "She has been reading that book since this morning."]
    return [base[i % len(base)] for i in range(n)]


def training_args(pairs: int, out: Path):
    from training.train_translation import parse_args

    recipe = ["--source_lang", "en", "--target_lang", "zh", "--bidirectional", "--validation_split_percentage", "3",
              "--tokenizer", str(STARTER), "--preset", "small", "--dropout", "0.15",
              "--label_smoothing", "0.1", "--train_batch_size", "64", "--learning_rate", "7e-4", "--lr_scheduler",
              "cosine_with_min_lr", "--lr_min_ratio", "0.05", "--lr_warmup_steps", "500", "--weight_decay", "0.01",
              "--max_grad_norm", "1.0", "--seed", "0"]  # training/recipes/translator-en-zh.sh
    # The starter's own tokenizer (trained by the recipe on all pairs), so the model has the starter's exact shape.
    return parse_args([*recipe, "--dataset", str(DATA), "--output_dir", str(out), "--max_train_samples", str(pairs),
                       "--num_epochs", "1", "--eval_steps", "0", "--report_to", "none", "--checkpointing_steps", "0"])


def time_training(pairs: int, repeats: int) -> None:
    """ms per step: the helper's loop (setup excluded) and a bare loop over the same batches, turns taken."""
    import tempfile

    from aigc_hub.devices import keep_freed_memory

    keep_freed_memory()  # the helper sets it on CPU: set it before either loop, for both

    import torch
    from torch.utils.data import DataLoader
    from transformers import AutoModelForSeq2SeqLM, get_scheduler

    from training.common import adamw
    from training.train_translation import model_config, setup

    helper, bare = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            run = setup(training_args(pairs, Path(tmp) / f"run{r}"))
            args, batches = run.args, run.loader.dataset  # the helper's own length-grouped batches
            steps = len(batches)

            def bare_loop() -> float:
                torch.manual_seed(args.seed)
                model = AutoModelForSeq2SeqLM.from_config(model_config(args, run.tokenizer))
                opt = adamw(model, args)
                sched = get_scheduler(args.lr_scheduler, opt, num_warmup_steps=args.lr_warmup_steps,
                                      num_training_steps=steps,
                                      scheduler_specific_kwargs={"min_lr_rate": args.lr_min_ratio})
                loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=args.label_smoothing)
                start = time.perf_counter()
                for batch in DataLoader(batches, batch_size=1, shuffle=True, collate_fn=lambda b: b[0]):
                    labels = batch["labels"]
                    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                   decoder_input_ids=model.prepare_decoder_input_ids_from_labels(labels=labels)).logits
                    loss = loss_fn(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                    opt.step()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                    loss.item()
                return (time.perf_counter() - start) / steps

            def helper_loop() -> float:
                start = time.perf_counter()
                run.trainer.fit(run.loader, [run.model], run.train_step)
                return (time.perf_counter() - start) / steps

            if r % 2:  # alternate which goes first: the first loop of a process pays for lazy initialisation
                helper.append(helper_loop())
                bare.append(bare_loop())
            else:
                bare.append(bare_loop())
                helper.append(helper_loop())
    ratios = [h / b for h, b in zip(helper, bare)]
    print(f"training step (starter recipe, small preset, batch 64, {steps} length-grouped batches of {pairs} pairs "
          f"× 2 directions), {repeats} repeats: train_translation.py {min(helper) * 1e3:.0f}–{max(helper) * 1e3:.0f} "
          f"ms, bare PyTorch {min(bare) * 1e3:.0f}–{max(bare) * 1e3:.0f} ms; ratio per repeat {min(ratios):.3f}–"
          f"{max(ratios):.3f}, median {statistics.median(ratios):.3f}, of the bests {min(helper) / min(bare):.3f} "
          f"(target <= 1.05)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="aigc-hub/translator-en-zh")
    parser.add_argument("--src", default="en")
    parser.add_argument("--tgt", default="zh")
    parser.add_argument("--sentences", type=int, default=256)
    parser.add_argument("--beams", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-pairs", type=int, default=3200, help="pairs per training-step repeat (one epoch)")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    if not args.skip_training:
        if not DATA.exists():
            sys.exit(f"{DATA} is missing: the training-step comparison needs Tatoeba en-zh (or --skip-training)")
        time_training(args.train_pairs, args.repeats)

    import torch

    from aigc_hub.models.translation import with_tag
    from aigc_hub.services import ModelRegistry, TranslationService
    from aigc_hub.services.translation import BATCH

    svc = TranslationService(ModelRegistry())
    entry = svc.registry.get(args.model)
    tok, model = entry.tokenizer, entry.model
    lines = sentences(args.sentences, args.src)
    limit = int(entry.config.get("translation_max_source_length", 64))

    def raw() -> float:
        """The bare loop a user would write: length-sorted batches of the same size, tagged, generate, decode."""
        start = time.perf_counter()
        ordered = sorted(lines, key=len)
        with torch.no_grad():
            for k in range(0, len(ordered), BATCH):
                batch = tok([with_tag(s, args.tgt) for s in ordered[k : k + BATCH]], return_tensors="pt",
                            padding=True, truncation=True, max_length=limit + 8)
                longest = int(batch["attention_mask"].sum(1).max())
                out = model.generate(**batch, num_beams=args.beams, max_new_tokens=min(2 * limit + 16, 2 * longest + 16),
                                     early_stopping=True)
                tok.batch_decode(out, skip_special_tokens=True)
        return len(lines) / (time.perf_counter() - start)

    def served() -> float:
        start = time.perf_counter()
        svc.translate(args.model, lines, args.src, args.tgt, beams=args.beams)
        return len(lines) / (time.perf_counter() - start)

    svc.translate(args.model, lines[:BATCH], args.src, args.tgt, beams=args.beams)  # warm-up
    raw_s, svc_s = [], []
    for _ in range(args.repeats):
        raw_s.append(svc.registry.run(entry.device, raw))  # on the service's worker thread: same OpenMP team
        svc_s.append(served())
    r, s = max(raw_s), max(svc_s)
    print(f"translation {args.model} {args.src}→{args.tgt}, beam {args.beams}, {len(lines)} sentences: "
          f"TranslationService {s:.1f} sentences/s, raw generate {r:.1f} sentences/s, overhead {100 * (r / s - 1):+.1f} % "
          f"(best of {args.repeats}; target <= 10 %, >= 30 sentences/s)")


if __name__ == "__main__":
    main()
