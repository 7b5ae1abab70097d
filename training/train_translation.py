"""Train a translation model from scratch (a shared tokenizer + a Marian-style encoder-decoder transformer), or adapt
a shared one (`--base_model`: an OPUS-MT / M2M100 / NLLB / mBART / T5 translator or this project's; LoRA, or every
weight with `--lora_rank 0`; training/adapt.py).

    python training/train_translation.py --dataset ../shared/data/translation/en-zh/en-zh.jsonl \
        --source_lang en --target_lang zh --bidirectional --preset small --output_dir runs/en-zh
    python training/train_translation.py --base_model Helsinki-NLP/opus-mt-en-zh --dataset my_domain.jsonl \
        --source_lang en --target_lang zh --lora_rank 16 --output_dir runs/en-zh-domain
    accelerate launch training/train_translation.py ...

A shared base is asked for a direction as the app asks it (its language tokens, task prefix, or nothing for a
one-direction OPUS-MT: aigc_hub/models/translation_conventions.py), in training and in its evaluation; the card
gives its BLEU / chrF beside the base's on the same held-out pairs.

With `--bidirectional` one model learns both directions; the target language is asked for with a tag at the start
of the source (`>>zh<< Hello.`). The output folder loads with stock `AutoModelForSeq2SeqLM.from_pretrained(folder)`
and `AutoTokenizer.from_pretrained(folder)`. The loop, checkpoints, schedules, tracking and push come from
`training/common.py`.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig, MarianConfig

from aigc_hub.evaluation.translation_metrics import evaluate_translation
from aigc_hub.models.translation import language_tag, with_tag
from aigc_hub.models.translation_conventions import LANG_TOKEN_FAMILIES, Convention
from aigc_hub.models.translation_conventions import detect as detect_convention
from training import adapt
from training.common import Trainer, adamw, add_common_args, add_optimizer_args
from training.text_tokenizers import build_tokenizer, train_unigram_tokenizer
from training.translation_card import write_card
from training.translation_data import Pairs, drop_overlap, grouped_split, load_pairs

PRESETS = {  # encoder layers, decoder layers, d_model, heads, ffn
    "tiny": (2, 2, 128, 4, 512),
    "small": (3, 3, 256, 4, 1024),
    "base": (6, 6, 512, 8, 2048),  # Marian / transformer-base
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", required=True, help="hub dataset (translation column) or .jsonl/.csv/.parquet")
    g.add_argument("--dataset_split", default="train", help="for hub datasets")
    g.add_argument("--source_lang", required=True, help="language code, also the column / translation key")
    g.add_argument("--target_lang", required=True)
    g.add_argument("--bidirectional", action="store_true", help="also train target→source, in the same model")
    g.add_argument("--validation_file", default=None, help="held-out pairs (training pairs sharing a sentence "
                   "with it are dropped)")
    g.add_argument("--validation_split_percentage", type=float, default=3.0,
                   help="without --validation_file: this share of pairs, grouped so no sentence is in both")
    g.add_argument("--max_train_samples", type=int, default=None, help="train on this many pairs only (drawn with "
                   "the seed; the tokenizer learns from them too): quick trials and benchmarks")
    g.add_argument("--extra_train_file", default=None, help="pairs that only ever train, added after the split (a "
                   "phrasebook of greetings a small corpus lacks); any sharing a sentence with validation is dropped")
    g.add_argument("--extra_train_repeat", type=int, default=1, help="times each --extra_train_file pair is seen "
                   "per epoch: a few hundred short pairs among tens of thousands are otherwise outvoted")
    g.add_argument("--max_source_length", type=int, default=64, help="tokens; longer sentences are truncated")
    g.add_argument("--max_target_length", type=int, default=64)
    g = parser.add_argument_group("tokenizer")
    g.add_argument("--tokenizer", default=None, help="unigram (trained here, the default) | an existing tokenizer; a "
                   "--base_model brings its own")
    g.add_argument("--vocab_size", type=int, default=8000)
    g.add_argument("--cjk_characters", action=argparse.BooleanOptionalAction, default=True,
                   help="unigram: one piece per Chinese / Japanese character, leaving the vocabulary to the other "
                        "language (--no-cjk_characters: learned multi-character pieces)")
    g = parser.add_argument_group("model")
    g.add_argument("--preset", choices=list(PRESETS), default="small")
    g.add_argument("--encoder_layers", type=int, default=None)
    g.add_argument("--decoder_layers", type=int, default=None)
    g.add_argument("--d_model", type=int, default=None)
    g.add_argument("--attention_heads", type=int, default=None)
    g.add_argument("--ffn_dim", type=int, default=None)
    g.add_argument("--dropout", type=float, default=0.1)
    g.add_argument("--label_smoothing", type=float, default=0.1)
    add_optimizer_args(parser, weight_decay=0.01, beta2=0.98)
    g = parser.add_argument_group("evaluation")
    g.add_argument("--eval_steps", type=int, default=1000)
    g.add_argument("--eval_sentences", type=int, default=200, help="per direction in periodic evaluations "
                   "(greedy); the final evaluation uses the whole split and --num_beams")
    g.add_argument("--num_beams", type=int, default=4)
    g.add_argument("--length_penalty", type=float, default=1.0,
                   help="beam search's length normalisation, saved in the model's generation_config (a model from "
                        "scratch): scores divided by length ** this. Below 1 stops adding words to short lines "
                        "(the starter: 0.5, docs/measurements.md)")
    adapt.add_adapt_args(parser)
    add_common_args(parser)
    parser.set_defaults(learning_rate=None, lr_scheduler="cosine_with_min_lr", lr_min_ratio=0.05,
                        lr_warmup_steps=None, train_batch_size=64, sample_steps=0)
    # From scratch: Marian's lr and warm-up. Adapting a translator: 5e-4 for LoRA, 5e-5 for every weight (OPUS-MT
    # fine-tuning's usual).
    args = adapt.settle(parser.parse_args(argv), lr=(7e-4, 5e-4, 5e-5), warmup=500, tokenizer="unigram")
    return args


def directions(args: argparse.Namespace) -> list[tuple[str, str]]:
    forward = (args.source_lang, args.target_lang)
    return [forward, forward[::-1]] if args.bidirectional else [forward]


def model_config(args: argparse.Namespace, tokenizer) -> MarianConfig:
    enc, dec, d_model, heads, ffn = PRESETS[args.preset]
    enc, dec = args.encoder_layers or enc, args.decoder_layers or dec
    d_model, heads, ffn = args.d_model or d_model, args.attention_heads or heads, args.ffn_dim or ffn
    config = MarianConfig(
        vocab_size=len(tokenizer), decoder_vocab_size=len(tokenizer), d_model=d_model, encoder_layers=enc,
        decoder_layers=dec, encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn, max_position_embeddings=max(args.max_source_length, args.max_target_length) + 64,
        dropout=args.dropout, attention_dropout=args.dropout, activation_dropout=0.0, scale_embedding=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, forced_eos_token_id=tokenizer.eos_token_id,
        share_encoder_decoder_embeddings=True, tie_word_embeddings=True,
    )
    config.architectures = ["MarianMTModel"]
    config.translation_directions = [list(d) for d in directions(args)]  # read by the app and the card
    config.translation_max_source_length = args.max_source_length  # the app splits longer inputs
    return config


def tokenize(pairs: Pairs, dirs: list[tuple[str, str]], tokenizer, args: argparse.Namespace,
             convention: Convention | None = None) -> list[tuple[list[int], list[int]]]:
    """(source ids, target ids) for every pair in every direction, the direction asked for as the model is asked
    when it serves: this project's `>>tgt<<` tags, or a shared model's own convention (its language tokens, its
    task prefix, nothing for a one-direction OPUS-MT)."""
    items: list[tuple[list[int], list[int]]] = []
    for src, tgt in dirs:
        if convention is None:
            sources = [with_tag(s, tgt) for s in pairs.sentences[src]]
        else:
            convention.prepare(tokenizer, src, tgt)  # the tokenizer's source language (language-token families)
            if convention.kind in LANG_TOKEN_FAMILIES:
                tokenizer.tgt_lang = tgt  # the targets start with the target's language token, as generated
            sources = [convention.source_text(s, src, tgt) for s in pairs.sentences[src]]
        enc = tokenizer(sources, truncation=True, max_length=args.max_source_length)["input_ids"]
        lab = tokenizer(text_target=pairs.sentences[tgt], truncation=True, max_length=args.max_target_length)["input_ids"]
        items.extend(zip(enc, lab))
    return items


class LengthBatches(torch.utils.data.Dataset):
    """Batches of sentences of similar length, made once (seeded); the loader shuffles their order every epoch.

    Random batches of short sentences were half padding (a batch is as long as its longest sentence): grouping by
    length halves the cost of a step, as fairseq's and the Trainer's `group_by_length` do."""

    def __init__(self, items: list[tuple[list[int], list[int]]], batch_size: int, pad_id: int, seed: int) -> None:
        rng = random.Random(seed)
        order = sorted(range(len(items)), key=lambda i: (len(items[i][0]), len(items[i][1]), rng.random()))
        self.batches = [[items[i] for i in order[k : k + batch_size]]
                        for k in range(0, len(order) - batch_size + 1, batch_size)]  # drop the ragged last one
        self.pad_id = pad_id

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return collate(self.batches[i], self.pad_id)


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Sources padded with <pad> (and a mask), labels with -100 (ignored by the loss)."""
    def pad(seqs: list[list[int]], value: int) -> torch.Tensor:
        width = max(len(s) for s in seqs)
        return torch.tensor([s + [value] * (width - len(s)) for s in seqs])

    src, tgt = zip(*batch)
    input_ids = pad(list(src), pad_id)
    return {"input_ids": input_ids, "attention_mask": (input_ids != pad_id).long(), "labels": pad(list(tgt), -100)}


def _unwrap(batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return batch[0]


def load_splits(args: argparse.Namespace) -> tuple[Pairs, Pairs]:
    langs = (args.source_lang, args.target_lang)
    pairs = load_pairs(args.dataset, langs, args.dataset_split)
    if args.validation_file:
        validation = load_pairs(args.validation_file, langs)
        train, validation = drop_overlap(pairs, validation), validation
    else:
        train, validation = grouped_split(pairs, args.validation_split_percentage, args.seed)
    if args.max_train_samples and args.max_train_samples < len(train):
        train = train.subset(sorted(random.Random(args.seed).sample(range(len(train)), args.max_train_samples)))
    if args.extra_train_file:
        if args.extra_train_repeat < 1:
            raise SystemExit("--extra_train_repeat must be at least 1")
        given = load_pairs(args.extra_train_file, langs)
        extra = drop_overlap(given, validation)  # validation stays the split it would be without them
        print(f"{args.extra_train_file}: {len(extra)} of {len(given)} pairs added × {args.extra_train_repeat} "
              f"({len(given) - len(extra)} share a sentence with validation)")
        for _ in range(args.extra_train_repeat):
            train = train + extra
    return train, validation


@dataclass
class TranslationRun:
    """Everything `main` trains with; benchmarks build it too, to time the very same step."""

    args: argparse.Namespace
    trainer: Trainer
    tokenizer: Any
    directions: list[tuple[str, str]]
    val_pairs: Pairs
    model: torch.nn.Module  # prepared (DDP-wrapped when distributed)
    raw: torch.nn.Module  # the same model, unwrapped
    loader: DataLoader
    train_step: Callable[[dict[str, torch.Tensor]], dict[str, float]]
    convention: Convention | None = None  # a shared base's way of being asked for a direction (adapting)
    base_scores: list | None = None  # the base's final evaluation, before training (adapting)


def load_base(args: argparse.Namespace, dirs: list[tuple[str, str]]) -> tuple[torch.nn.Module, Any, Convention]:
    """The base translator, its tokenizer and its convention; each direction must be one it translates."""
    from aigc_hub.families import read_config

    path = adapt.base_folder(args.base_model, "seq2seq")
    convention = detect_convention(read_config(path), path, args.base_model)
    for src, tgt in dirs:
        if not convention.supports(src, tgt):
            raise SystemExit(f"--base_model {args.base_model} does not translate {src}→{tgt} (its directions: "
                             f"{convention.describe()}); name the data's columns with its language codes")
    model = AutoModelForSeq2SeqLM.from_pretrained(str(path), dtype=torch.float32, use_safetensors=True,
                                                  trust_remote_code=False)
    return model, AutoTokenizer.from_pretrained(str(path), trust_remote_code=False), convention


def setup(args: argparse.Namespace) -> TranslationRun:
    trainer = Trainer(args, project="train_translation")
    acc = trainer.accelerator
    dirs = directions(args)
    train_pairs, val_pairs = load_splits(args)
    tags = [language_tag(lang) for lang in sorted({t for _, t in dirs})]

    def new_tokenizer():
        if args.tokenizer == "unigram":
            texts = [s for col in train_pairs.sentences.values() for s in col]
            return train_unigram_tokenizer(texts, args.vocab_size, special_tokens=tags,
                                           cjk_characters=args.cjk_characters)
        tokenizer = build_tokenizer(args.tokenizer, [])
        tokenizer.add_special_tokens({"extra_special_tokens": tags})
        return tokenizer

    convention = base_scores = None
    if args.base_model:
        model, tokenizer, convention = load_base(args, dirs)
        trainer._tokenizer = tokenizer  # checkpoints carry it, as they carry a trained one
        if trainer.is_main:  # before a step: the base's figures, measured as the final ones are
            base_scores = evaluate_dirs(model, tokenizer, dirs, val_pairs, None, args.num_beams, args, convention)
    else:
        tokenizer = trainer.tokenizer(new_tokenizer)
        model = AutoModelForSeq2SeqLM.from_config(model_config(args, tokenizer))
        model.generation_config = GenerationConfig(
            num_beams=args.num_beams, length_penalty=args.length_penalty,
            max_new_tokens=args.max_target_length * 2,
            decoder_start_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, forced_eos_token_id=tokenizer.eos_token_id,
            bad_words_ids=[[tokenizer.pad_token_id]])
    items = tokenize(train_pairs, dirs, tokenizer, args, convention)
    train_data = LengthBatches(items, args.train_batch_size, tokenizer.pad_token_id, args.seed)
    if args.base_model and args.lora_rank:
        model = adapt.lora(model, args, "SEQ_2_SEQ_LM")
    opt = adamw(model, args)
    loader = DataLoader(train_data, batch_size=1, shuffle=True, collate_fn=_unwrap,  # items are whole batches
                        num_workers=args.dataloader_num_workers)
    model, opt, loader = acc.prepare(model, opt, loader)
    _, total = trainer.total_steps(len(loader))
    adapt.warmup_steps(args, total)
    trainer.scheduler(opt, total)
    raw = acc.unwrap_model(model)
    loss_fn = torch.nn.CrossEntropyLoss(ignore_index=-100, label_smoothing=args.label_smoothing)
    if trainer.is_main:
        n_params = sum(p.numel() for p in raw.parameters())
        made = adapt.method(args) or "marian model"
        print(f"{made}: {n_params / 1e6:.2f} M parameters, vocab {len(tokenizer)}, directions "
              f"{['-'.join(d) for d in dirs]}, {len(train_pairs)} training pairs ({len(train_data)} examples), "
              f"{len(val_pairs)} validation pairs", file=sys.stderr)

    def train_step(batch: dict[str, torch.Tensor]) -> dict[str, float]:
        labels = batch["labels"]
        decoder_input_ids = raw.prepare_decoder_input_ids_from_labels(labels=labels)
        with acc.autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           decoder_input_ids=decoder_input_ids).logits
            loss = loss_fn(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1))
        trainer.step(loss, model, opt)
        return {"loss": loss.detach().item()}

    return TranslationRun(args, trainer, tokenizer, dirs, val_pairs, model, raw, loader, train_step, convention,
                          base_scores)


def evaluate_dirs(model: Any, tokenizer: Any, dirs: list[tuple[str, str]], val_pairs: Pairs, limit: int | None,
                  beams: int, args: argparse.Namespace, convention: Convention | None = None) -> list:
    """(scores, the first sources, their translations) per direction, on the held-out pairs."""
    results = []
    for src, tgt in dirs:
        sources, refs = val_pairs.references(src, tgt)
        scores, hyps = evaluate_translation(model, tokenizer, sources[:limit], refs[:limit], src, tgt, beams=beams,
                                            max_source_tokens=args.max_source_length, convention=convention)
        results.append((scores, sources[:3], hyps[:3]))
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run = setup(args)
    trainer, tokenizer, dirs, val_pairs, raw, model = (run.trainer, run.tokenizer, run.directions, run.val_pairs,
                                                       run.raw, run.model)
    acc = trainer.accelerator

    def evaluate(limit: int | None, beams: int) -> list:
        return evaluate_dirs(raw, tokenizer, dirs, val_pairs, limit, beams, args, run.convention)

    def on_eval(step: int) -> None:
        if not trainer.is_main:
            return
        for scores, sources, hyps in evaluate(args.eval_sentences, 1):
            d = scores.direction
            acc.log({f"val_bleu_{d}": scores.bleu, f"val_chrf_{d}": scores.chrf}, step=step)
            trainer.log_text(f"sample_{d}", "\n".join(f"{s} → {h}" for s, h in zip(sources, hyps)), step)
            print(f"step {step}: {d} BLEU {scores.bleu:.1f} chrF {scores.chrf:.1f} (greedy, "
                  f"{scores.sentences} sentences)", file=sys.stderr)

    trainer.fit(run.loader, [model], run.train_step, hooks=[(args.eval_steps, on_eval)])

    def save_final(out: Path) -> None:
        results = evaluate(None, args.num_beams)
        for label, figures in (("final", results), ("base model", run.base_scores or [])):
            for scores, _, _ in figures:
                print(f"{label} {scores.direction}: BLEU {scores.bleu:.2f} chrF {scores.chrf:.2f} (beam "
                      f"{args.num_beams}, {scores.sentences} sentences; {scores.signature})", file=sys.stderr)
        # config.json (from scratch: with translation_directions) + model.safetensors, or the adapter (+ merged/)
        merged = adapt.save(raw, tokenizer, out, args)
        base = [r[0] for r in run.base_scores] if run.base_scores else None
        for folder in [out, merged] if merged is not None else [out]:
            write_card(args, folder, dirs, [r[0] for r in results], trainer.global_step, len(tokenizer),
                       [(r[0].direction, r[1], r[2]) for r in results], base, run.convention,
                       merged=folder == merged)

    trainer.finish(save_final, models=[model])


if __name__ == "__main__":
    main()
