"""Train a causal language model: from scratch (a tokenizer + a GPT-2 or Llama-style transformer), or by adapting
a shared one (`--base_model`: LoRA, or a full fine-tune with `--lora_rank 0`).

    python training/train_text.py --dataset ../shared/data/text/tinyshakespeare/input.txt \
        --tokenizer char --preset nano --output_dir runs/shakespeare
    python training/train_text.py --base_model Qwen/Qwen2.5-0.5B-Instruct --dataset chats.jsonl \
        --lora_rank 16 --output_dir runs/my-lora
    accelerate launch training/train_text.py ...

Data: plain text (packed into blocks), or .jsonl / .parquet rows of `text`, of `prompt` + `completion` (the loss
on the completion) or of chat `messages` (through the base's chat template, the loss on the assistant turns):
training/sft_data.py. The output folder loads with stock transformers (`AutoModelForCausalLM`), a LoRA run's with
stock peft (`AutoPeftModelForCausalLM`): no project code, no remote code. The loop, checkpoints, schedules,
tracking and push come from `training/common.py`; the base and the adapter from `training/adapt.py`.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config, LlamaConfig

from aigc_hub import sft_rows
from aigc_hub.evaluation.text_metrics import evaluate_lm
from training import adapt, sft_data
from training.common import Trainer, adamw, add_common_args, add_optimizer_args, fit_batch
from training.text_card import figures_of, write_card
from training.text_data import BUILDERS, Blocks, PackedStream, TextSplits, load_text_stream, load_texts, pack
from training.text_tokenizers import build_tokenizer

PRESETS = {  # n_layer, n_head, n_embd
    "nano": (4, 4, 128),  # nanoGPT's CPU configuration
    "micro": (4, 4, 256),
    "mini": (6, 4, 256),  # (6 heads do not divide 256)
    "small": (6, 6, 384),  # nanoGPT's "baby GPT" (A100 Shakespeare configuration)
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = parser.add_argument_group("data")
    g.add_argument("--dataset", required=True, help="hub dataset name, or .txt/.jsonl/.parquet/.csv file(s)")
    g.add_argument("--text_column", default="text")
    g.add_argument("--validation_file", default=None)
    g.add_argument("--validation_split_percentage", type=float, default=10.0)
    g.add_argument("--streaming", action="store_true", help="read the corpus lazily (larger than memory); "
                   "needs --max_train_steps; validation = --validation_file or the first --validation_docs")
    g.add_argument("--validation_docs", type=int, default=500, help="with --streaming and no validation file")
    g.add_argument("--tokenizer_docs", type=int, default=20_000, help="with --streaming: documents to train on")
    g = parser.add_argument_group("tokenizer")
    g.add_argument("--tokenizer", default=None,
                   help="char (default) | bpe | an existing tokenizer (folder or hub id); a --base_model brings its own")
    g.add_argument("--vocab_size", type=int, default=4096, help="for --tokenizer bpe")
    g = parser.add_argument_group("model")
    g.add_argument("--architecture", choices=["gpt2", "llama"], default="gpt2")
    g.add_argument("--preset", choices=list(PRESETS), default="nano")
    g.add_argument("--n_layer", type=int, default=None)
    g.add_argument("--n_head", type=int, default=None)
    g.add_argument("--n_embd", type=int, default=None)
    g.add_argument("--block_size", type=int, default=None,
                   help="tokens per training sequence (default 128; with --base_model, its context up to 1024)")
    g.add_argument("--dropout", type=float, default=0.0)
    add_optimizer_args(parser, weight_decay=0.1, beta2=0.99)
    g = parser.add_argument_group("evaluation")
    g.add_argument("--eval_steps", type=int, default=250)
    g.add_argument("--eval_batches", type=int, default=20, help="batches per periodic evaluation (final: all)")
    g.add_argument("--sample_prompt", default=None, help="default: a new line; with prompt / chat rows, the first "
                   "held-out prompt")
    g.add_argument("--sample_tokens", type=int, default=200)
    adapt.add_adapt_args(parser)
    add_common_args(parser)
    parser.set_defaults(learning_rate=None, lr_scheduler="cosine_with_min_lr", lr_min_ratio=0.1, lr_warmup_steps=None,
                        train_batch_size=32, sample_steps=0)
    # From scratch: nanoGPT's lr and warm-up. Adapting: LoRA's usual 2e-4, 2e-5 for every weight.
    args = adapt.settle(parser.parse_args(argv), lr=(1e-3, 2e-4, 2e-5), warmup=100, tokenizer="char")
    if args.base_model is None:  # adapting: from the base's context (load_base)
        args.block_size = args.block_size or 128
    return args


def model_config(args: argparse.Namespace, tokenizer) -> GPT2Config | LlamaConfig:
    n_layer, n_head, n_embd = PRESETS[args.preset]
    n_layer, n_head, n_embd = args.n_layer or n_layer, args.n_head or n_head, args.n_embd or n_embd
    ids = {"vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    if args.architecture == "gpt2":
        # PyTorch's one-kernel GELU (nanoGPT's choice), not GPT-2's default "gelu_new", a tanh formula of several
        # element-wise ops: a training iteration of the nano preset costs 1.10x nanoGPT's model instead of 1.43x
        # (medians, benchmarks/bench_text.py). A stock GPT2Config value: the folder still loads without project code.
        return GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, n_positions=args.block_size,
                          resid_pdrop=args.dropout, embd_pdrop=args.dropout, attn_pdrop=args.dropout,
                          activation_function="gelu", **ids)
    return LlamaConfig(num_hidden_layers=n_layer, num_attention_heads=n_head, num_key_value_heads=n_head,
                       hidden_size=n_embd, intermediate_size=int(8 * n_embd / 3 / 64 + 1) * 64,
                       max_position_embeddings=args.block_size, attention_dropout=args.dropout,
                       tie_word_embeddings=True, **ids)


@dataclass
class TextRun:
    """Everything `main` trains with; benchmarks build it too, to time the very same step."""

    args: argparse.Namespace
    trainer: Trainer
    tokenizer: Any
    model: torch.nn.Module  # prepared (DDP-wrapped when distributed)
    raw: torch.nn.Module  # the same model, unwrapped
    loader: DataLoader
    train_step: Callable[[dict[str, torch.Tensor]], dict[str, float]]
    scores: Callable[..., dict[str, float]]  # scores(model, max_batches=None): held-out figures by name
    base_scores: dict[str, float] | None = None  # the base model's, on the same held-out data (adapting)
    data_format: str = "text"


def load_base(args: argparse.Namespace) -> tuple[torch.nn.Module, Any]:
    """The base model (fp32: the optimizer's copy; mixed precision casts per op) and its tokenizer; the block size
    set from its context when not given."""
    path = adapt.base_folder(args.base_model, "causal-lm")
    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, use_safetensors=True,
                                                 trust_remote_code=False)
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    context = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", 1024)
    args.block_size = min(args.block_size or 1024, context)
    return model, tokenizer


def check_vocabulary(tokenizer: Any, texts: list[str]) -> None:
    """Refuse data the base's vocabulary cannot spell (a character tokenizer meeting another script): more than 1 %
    of the tokens unknown."""
    unk = tokenizer.unk_token_id
    if unk is None:
        return  # byte-level: every text encodes
    ids = [i for t in texts[:2000] for i in tokenizer(t, add_special_tokens=False)["input_ids"]]
    unknown = sum(i == unk for i in ids)
    if ids and unknown > 0.01 * len(ids):
        seen = set("".join(texts[:2000])) - {" "}
        missing = sorted(c for c in seen if tokenizer(c, add_special_tokens=False)["input_ids"] in ([unk], []))
        raise SystemExit(f"the base model's vocabulary does not have {100 * unknown / len(ids):.0f} % of this data's "
                         f"tokens (e.g. {''.join(missing[:20])!r}): adapt a base that knows this text, or train "
                         "from scratch")


@dataclass
class Data:
    format: str  # one of sft_rows.FORMATS
    train: torch.utils.data.Dataset
    scores: Callable[..., dict[str, float]]  # scores(model, max_batches=None) on the held-out part
    tokenizer: Any
    loader_args: dict


def read_data(args: argparse.Namespace, trainer: Trainer, tokenizer: Any) -> Data:
    """The run's data, tokenized (`tokenizer`: the base's; None: trained here, from scratch)."""
    path = Path(args.dataset)
    rows_format = None
    if not args.streaming and (path.suffix in BUILDERS and path.suffix != ".txt"):
        rows = sft_data.read_rows(args.dataset)
        try:
            rows_format = sft_rows.row_format(rows[0].keys(), args.text_column) if rows else "text"
        except ValueError as e:
            raise SystemExit(f"{args.dataset}: {e}") from None
    if rows_format in ("prompt-completion", "chat"):
        if tokenizer is None:
            raise SystemExit(f"{rows_format} rows adapt a shared model: give --base_model")
        held = sft_data.read_rows(args.validation_file) if args.validation_file else None
        train_rows, val_rows = sft_data.split(rows, held, args.validation_split_percentage, args.seed)
        check_vocabulary(tokenizer, [t for r in train_rows[:200] for t in sft_rows.texts_of(r)])
        train = sft_data.encode(train_rows, tokenizer, rows_format, args.block_size, "training data")
        val = sft_data.encode(val_rows, tokenizer, rows_format, args.block_size, "validation data")
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

        def sft_scores(model: torch.nn.Module, max_batches: int | None = None) -> dict[str, float]:
            chosen = val if max_batches is None else val[: max_batches * 16]
            loss = sft_data.completion_loss(model, chosen, pad)
            return {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50.0))}

        loader_args = {"collate_fn": sft_data.collate(pad)}
        if args.sample_prompt is None:
            args.sample_prompt = sample_prompt(val_rows[0], tokenizer, rows_format)
        return Data(rows_format, sft_data.Examples(train), sft_scores, tokenizer, loader_args)
    if args.streaming:
        stream = load_text_stream(args.dataset, text_column=args.text_column, validation_file=args.validation_file,
                                  validation_docs=args.validation_docs, tokenizer_docs=args.tokenizer_docs,
                                  seed=args.seed)
        validation, sample_texts = stream.validation, stream.tokenizer_sample
    else:
        texts: TextSplits = load_texts(args.dataset, text_column=args.text_column,
                                       validation_file=args.validation_file,
                                       validation_percentage=args.validation_split_percentage, seed=args.seed)
        validation, sample_texts = texts.validation, texts.train
    if tokenizer is None:
        tokenizer = trainer.tokenizer(lambda: build_tokenizer(args.tokenizer, sample_texts, args.vocab_size))
    else:
        check_vocabulary(tokenizer, sample_texts)
    train_data = PackedStream(stream, tokenizer, args.block_size) if args.streaming else Blocks(
        pack(texts.train, tokenizer, args.block_size))
    val_blocks = pack(validation, tokenizer, args.block_size)
    # Characters per token of the validation text: turns nats/token into nats/char, comparable across tokenizers.
    chars_per_token = sum(len(t) for t in validation) / sum(
        len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in validation)

    def lm_scores(model: torch.nn.Module, max_batches: int | None = None) -> dict[str, float]:
        s = evaluate_lm(model, val_blocks, chars_per_token, max_batches=max_batches)
        return {"val_loss": s.loss, "val_perplexity": s.perplexity, "val_nats_per_char": s.nats_per_char}

    if args.sample_prompt is None:
        args.sample_prompt = "\n"
    return Data("text", train_data, lm_scores, tokenizer, {})


def sample_prompt(row: dict, tokenizer: Any, rows_format: str) -> str:
    """The prompt of a held-out row, as the app would send it: a chat up to its last assistant turn, rendered."""
    if rows_format == "prompt-completion":
        return row["prompt"]
    messages = row["messages"]
    last = max(i for i, m in enumerate(messages) if m.get("role") == "assistant")
    return tokenizer.apply_chat_template(messages[:last], tokenize=False, add_generation_prompt=True)


def setup(args: argparse.Namespace) -> TextRun:
    trainer = Trainer(args, project="train_text")
    acc = trainer.accelerator
    base, tokenizer = load_base(args) if args.base_model else (None, None)
    if tokenizer is not None:
        trainer._tokenizer = tokenizer  # checkpoints carry it, as they carry a trained one
    data = read_data(args, trainer, tokenizer)
    data_format, train_data, scores, tokenizer = data.format, data.train, data.scores, data.tokenizer
    model = base if base is not None else AutoModelForCausalLM.from_config(model_config(args, tokenizer))
    base_scores = scores(model) if base is not None and trainer.is_main else None  # before a step: the base's
    if base is not None and args.lora_rank:
        model = adapt.lora(model, args, "CAUSAL_LM")
    opt = adamw(model, args)
    if not args.streaming:
        fit_batch(args, len(train_data), acc.num_processes)
    loader = DataLoader(train_data, batch_size=args.train_batch_size, shuffle=not args.streaming, drop_last=True,
                        num_workers=args.dataloader_num_workers, **data.loader_args)
    model, opt, loader = acc.prepare(model, opt, loader)
    _, total = trainer.total_steps(None if args.streaming else len(loader))
    adapt.warmup_steps(args, total)
    trainer.scheduler(opt, total)
    raw = acc.unwrap_model(model)
    if trainer.is_main:
        n_params = sum(p.numel() for p in raw.parameters())
        items = ("streamed blocks" if args.streaming else f"{len(train_data)} training blocks"
                 if data_format == "text" else f"{len(train_data)} {data_format} examples")
        made = adapt.method(args) or f"{args.architecture} model"
        print(f"{made}: {n_params / 1e6:.2f} M parameters, vocab {len(tokenizer)}, {items} of up to "
              f"{args.block_size} tokens", file=sys.stderr)

    def train_step(batch: dict[str, torch.Tensor]) -> dict[str, float]:
        ids = batch["input_ids"]
        with acc.autocast():
            loss = model(input_ids=ids, attention_mask=batch.get("attention_mask"),
                         labels=batch.get("labels", ids)).loss
        trainer.step(loss, model, opt)
        return {"loss": loss.detach().item()}

    return TextRun(args, trainer, tokenizer, model, raw, loader, train_step, scores, base_scores, data_format)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run = setup(args)
    trainer, raw, tokenizer, model = run.trainer, run.raw, run.tokenizer, run.model

    def on_eval(step: int) -> None:
        if not trainer.is_main:
            return
        scores = run.scores(raw, max_batches=args.eval_batches)
        trainer.accelerator.log(scores, step=step)
        trainer.log_text("sample", sample(raw, tokenizer, args), step)
        print(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()), file=sys.stderr)

    trainer.fit(run.loader, [model], run.train_step, hooks=[(args.eval_steps, on_eval)])

    def save_final(out: Path) -> None:
        figures = figures_of(run.scores(raw), run.base_scores, run.data_format)
        text = sample(raw, tokenizer, args)
        merged = adapt.save(raw, tokenizer, out, args)  # weights + tokenizer (+ merged/): merging folds in
        for folder in [out, merged] if merged is not None else [out]:
            write_card(args, folder, figures, trainer.global_step, text, len(tokenizer), run.data_format,
                       merged=folder == merged)

    trainer.finish(save_final, models=[model])


def sample(model, tokenizer, args: argparse.Namespace) -> str:
    """A seeded sample that leaves the global RNG untouched (resume stays exact)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        ids = tokenizer(args.sample_prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        device = next(model.parameters()).device
        room = args.block_size - ids.shape[1]  # absolute positions end at the context length
        out = model.generate(ids.to(device), attention_mask=torch.ones_like(ids).to(device), do_sample=True,
                             max_new_tokens=max(1, min(args.sample_tokens, room)), top_k=50,
                             pad_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0], skip_special_tokens=True)


if __name__ == "__main__":
    main()
