"""Train a small causal language model from scratch: tokenizer + GPT-2 or Llama-style transformer.

    python training/train_text.py --dataset ../shared/data/text/tinyshakespeare/input.txt \
        --tokenizer char --preset nano --output_dir runs/shakespeare
    accelerate launch training/train_text.py ...

The output folder loads with stock `AutoModelForCausalLM.from_pretrained(folder)` and
`AutoTokenizer.from_pretrained(folder)`: no project code, no remote code. The loop, checkpoints, schedules,
tracking and push come from `training/common.py`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from torch.utils.data import DataLoader
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

from aigc_hub.cards import Figure, figures_table, render_card
from aigc_hub.evaluation.text_metrics import evaluate_lm
from training.common import Trainer, adamw, add_common_args, add_optimizer_args
from training.text_data import Blocks, PackedStream, load_text_stream, load_texts, pack
from training.text_tokenizers import build_tokenizer

PRESETS = {  # n_layer, n_head, n_embd
    "nano": (4, 4, 128),  # nanoGPT's CPU configuration
    "micro": (4, 4, 256),
    "mini": (6, 6, 256),
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
    g.add_argument("--tokenizer", default="char", help="char | bpe | an existing tokenizer (folder or hub id)")
    g.add_argument("--vocab_size", type=int, default=4096, help="for --tokenizer bpe")
    g = parser.add_argument_group("model")
    g.add_argument("--architecture", choices=["gpt2", "llama"], default="gpt2")
    g.add_argument("--preset", choices=list(PRESETS), default="nano")
    g.add_argument("--n_layer", type=int, default=None)
    g.add_argument("--n_head", type=int, default=None)
    g.add_argument("--n_embd", type=int, default=None)
    g.add_argument("--block_size", type=int, default=128)
    g.add_argument("--dropout", type=float, default=0.0)
    add_optimizer_args(parser, weight_decay=0.1, beta2=0.99)
    g = parser.add_argument_group("evaluation")
    g.add_argument("--eval_steps", type=int, default=250)
    g.add_argument("--eval_batches", type=int, default=20, help="batches per periodic evaluation (final: all)")
    g.add_argument("--sample_prompt", default="\n")
    g.add_argument("--sample_tokens", type=int, default=200)
    add_common_args(parser)
    parser.set_defaults(learning_rate=1e-3, lr_scheduler="cosine_with_min_lr", lr_min_ratio=0.1, lr_warmup_steps=100,
                        train_batch_size=32, sample_steps=0)
    return parser.parse_args(argv)


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
    val_blocks: torch.Tensor
    chars_per_token: float


def setup(args: argparse.Namespace) -> TextRun:
    trainer = Trainer(args, project="train_text")
    acc = trainer.accelerator
    if args.streaming:
        stream = load_text_stream(args.dataset, text_column=args.text_column, validation_file=args.validation_file,
                                  validation_docs=args.validation_docs, tokenizer_docs=args.tokenizer_docs,
                                  seed=args.seed)
        validation = stream.validation
        tokenizer = trainer.tokenizer(lambda: build_tokenizer(args.tokenizer, stream.tokenizer_sample, args.vocab_size))
        train_data = PackedStream(stream, tokenizer, args.block_size)
    else:
        texts = load_texts(args.dataset, text_column=args.text_column, validation_file=args.validation_file,
                           validation_percentage=args.validation_split_percentage, seed=args.seed)
        validation = texts.validation
        tokenizer = trainer.tokenizer(lambda: build_tokenizer(args.tokenizer, texts.train, args.vocab_size))
        train_data = Blocks(pack(texts.train, tokenizer, args.block_size))
    val_blocks = pack(validation, tokenizer, args.block_size)
    # Characters per token of the validation text: turns nats/token into nats/char, comparable across tokenizers.
    chars_per_token = sum(len(t) for t in validation) / sum(
        len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in validation)

    model = AutoModelForCausalLM.from_config(model_config(args, tokenizer))
    opt = adamw(model, args)
    loader = DataLoader(train_data, batch_size=args.train_batch_size, shuffle=not args.streaming, drop_last=True,
                        num_workers=args.dataloader_num_workers)
    model, opt, loader = acc.prepare(model, opt, loader)
    _, total = trainer.total_steps(None if args.streaming else len(loader))
    trainer.scheduler(opt, total)
    raw = acc.unwrap_model(model)
    if trainer.is_main:
        n_params = sum(p.numel() for p in raw.parameters())
        blocks = "streamed blocks" if args.streaming else f"{len(train_data)} training blocks"
        print(f"{args.architecture} model: {n_params / 1e6:.2f} M parameters, vocab {len(tokenizer)}, "
              f"{blocks} of {args.block_size} tokens", file=sys.stderr)

    def train_step(batch: dict[str, torch.Tensor]) -> dict[str, float]:
        ids = batch["input_ids"]
        with acc.autocast():
            loss = model(input_ids=ids, labels=ids).loss
        trainer.step(loss, model, opt)
        return {"loss": loss.detach().item()}

    return TextRun(args, trainer, tokenizer, model, raw, loader, train_step, val_blocks, chars_per_token)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    run = setup(args)
    trainer, raw, tokenizer, val_blocks, chars_per_token = (run.trainer, run.raw, run.tokenizer, run.val_blocks,
                                                             run.chars_per_token)
    model = run.model

    def on_eval(step: int) -> None:
        if not trainer.is_main:
            return
        scores = evaluate_lm(raw, val_blocks, chars_per_token, max_batches=args.eval_batches)
        trainer.accelerator.log({"val_loss": scores.loss, "val_nats_per_char": scores.nats_per_char}, step=step)
        trainer.log_text("sample", sample(raw, tokenizer, args), step)
        print(f"step {step}: val loss {scores.loss:.4f}, {scores.nats_per_char:.4f} nats/char", file=sys.stderr)

    trainer.fit(run.loader, [model], run.train_step, hooks=[(args.eval_steps, on_eval)])

    def save_final(out: Path) -> None:
        raw.save_pretrained(str(out))  # config.json + model.safetensors
        tokenizer.save_pretrained(str(out))
        scores = evaluate_lm(raw, val_blocks, chars_per_token)
        figures = [
            Figure("validation nats/char", scores.nats_per_char, "nats-per-char"),
            Figure("validation loss (nats/token)", scores.loss, "loss"),
            Figure("validation perplexity (per token)", scores.perplexity, "perplexity"),
        ]
        write_card(args, out, figures, trainer.global_step, sample(raw, tokenizer, args), len(tokenizer))

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


def write_card(args: argparse.Namespace, out: Path, figures: list[Figure], steps: int, text: str, vocab: int) -> None:
    dataset = args.card_dataset or Path(args.dataset).stem
    ref = args.hub_model_id or args.output_dir
    body = f"""A small {args.architecture} causal language model trained from scratch with AIGC Hub's
`training/train_text.py` ({args.tokenizer} tokenizer, vocabulary {vocab}, context {args.block_size} tokens) for
{steps} optimizer steps (batch {args.train_batch_size} × {args.gradient_accumulation_steps}, lr {args.learning_rate},
{args.lr_scheduler}, seed {args.seed}).

## Use

Stock transformers, no project code:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("{ref}")
model = AutoModelForCausalLM.from_pretrained("{ref}")
ids = tokenizer("ROMEO:", return_tensors="pt").input_ids
print(tokenizer.decode(model.generate(ids, max_new_tokens=200, do_sample=True, top_k=50)[0]))
```

## Evaluation (held-out validation text)

{figures_table(figures)}

Nats per character are tokenizer-independent (total loss over the characters covered).

## Sample

```
{text.strip()[:600]}
```

{args.card_notes}
"""
    card = render_card(title=args.card_title or f"{args.architecture} {dataset}", family="causal-lm",
                       tags=[args.architecture, "from-scratch"],
                       datasets=[dataset], license=args.card_license, figures=figures, body=body,
                       library_name="transformers")
    card.save(out / "README.md")


if __name__ == "__main__":
    main()
