"""The model card of a causal LM from train_text.py: trained from scratch, a LoRA adapter, a full fine-tune, or an
adapter merged into its base. Adapted models carry `base_model` in the metadata and the base's figures on the same
held-out data beside their own."""

from __future__ import annotations

import argparse
from pathlib import Path

from aigc_hub.cards import Figure, figures_table, render_card
from training.adapt import base_figures, base_metadata

FIGURES = {  # score key → (card name, metric type), in the card's order
    "val_nats_per_char": ("validation nats/char", "nats-per-char"),
    "val_loss": ("validation loss{} (nats/token)", "loss"),
    "val_perplexity": ("validation perplexity{} (per token)", "perplexity"),
}
SCORED = {"text": "", "chat": " on the answers", "prompt-completion": " on the completions"}


def figures_of(scores: dict[str, float], base: dict[str, float] | None, data_format: str) -> list[Figure]:
    """The card's figures; when adapting, the base model's on the same held-out data after them."""
    shown = [(key, name.format(SCORED[data_format]), kind) for key, (name, kind) in FIGURES.items() if key in scores]
    out = [Figure(name, scores[key], kind) for key, name, kind in shown]
    return out + base_figures([Figure(name, base[key], kind) for key, name, kind in shown] if base else [])


def _use(args: argparse.Namespace, ref: str, adapter: bool, data_format: str) -> str:
    prompt = '"ROMEO:"' if data_format == "text" else "prompt"
    if adapter:
        return f"""Stock peft and transformers, no project code (the base is downloaded or read from its folder):

```python
from peft import AutoPeftModelForCausalLM
from transformers import AutoTokenizer
model = AutoPeftModelForCausalLM.from_pretrained("{ref}")
tokenizer = AutoTokenizer.from_pretrained("{ref}")
ids = tokenizer({prompt}, return_tensors="pt").input_ids
print(tokenizer.decode(model.generate(input_ids=ids, max_new_tokens=200, do_sample=True, top_k=50)[0]))
```

In AIGC Hub, the adapter is served on its base: `python -m aigc_hub generate text --model {ref} --prompt ...`."""
    return f"""Stock transformers, no project code:

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("{ref}")
model = AutoModelForCausalLM.from_pretrained("{ref}")
ids = tokenizer({prompt}, return_tensors="pt").input_ids
print(tokenizer.decode(model.generate(ids, max_new_tokens=200, do_sample=True, top_k=50)[0]))
```"""


def write_card(args: argparse.Namespace, out: Path, figures: list[Figure], steps: int, text: str, vocab: int,
               data_format: str = "text", merged: bool = False) -> None:
    dataset = args.card_dataset or Path(args.dataset).stem
    ref = args.hub_model_id or args.output_dir
    adapting = args.base_model is not None
    adapter = adapting and args.lora_rank > 0 and not merged
    loop = (f"for {steps} optimizer steps (batch {args.train_batch_size} × {args.gradient_accumulation_steps}, "
            f"lr {args.learning_rate}, {args.lr_scheduler}, seed {args.seed})")
    if adapting:
        what = f"{'The base with ' if merged else ''}{_method(args)}{' folded in' if merged else ''}"
        data = {"text": "text", "chat": "chat conversations (the loss on the assistant turns)",
                "prompt-completion": "prompt / completion pairs (the loss on the completions)"}[data_format]
        intro = (f"{what}, trained with AIGC Hub's `training/train_text.py` on {data} from {dataset}, {loop}, "
                 f"context {args.block_size} tokens.")
    else:
        intro = (f"A small {args.architecture} causal language model trained from scratch with AIGC Hub's\n"
                 f"`training/train_text.py` ({args.tokenizer} tokenizer, vocabulary {vocab}, context "
                 f"{args.block_size} tokens) {loop}.")
    held = "held-out validation text" if data_format == "text" else "held-out validation rows"
    base_note = ("\n\nThe base model's figures are measured on the same held-out data before training."
                 if adapting else "")
    body = f"""{intro}

## Use

{_use(args, ref, adapter, data_format)}

## Evaluation ({held})

{figures_table(figures)}

{"Nats per character are tokenizer-independent (total loss over the characters covered)." if data_format == "text"
 else "Loss per token of what the model should write; the prompts are context only."}{base_note}

## Sample

```
{text.strip()[:600]}
```

{args.card_notes}
"""
    tags = [args.architecture] if not adapting else ["lora", "peft"] if adapter else ["fine-tuned"]
    extra = base_metadata(args, adapter)
    title = args.card_title or (f"{args.architecture} {dataset}" if not adapting else f"{dataset} {tags[0]}")
    card = render_card(title=title + (" (merged)" if merged else ""), family="causal-lm",
                       tags=tags if adapting else [*tags, "from-scratch"], datasets=[dataset],
                       license=args.card_license, figures=figures, body=body,
                       library_name="peft" if adapter else "transformers", extra=extra)
    card.save(out / "README.md")


def _method(args: argparse.Namespace) -> str:
    from training.adapt import method

    text = method(args)
    return text[0].upper() + text[1:]
