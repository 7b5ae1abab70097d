"""The model card of a translation model: languages and directions in the metadata, BLEU/chrF per direction. An
adapted model (`--base_model`) carries `base_model` and the base's figures on the same held-out pairs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aigc_hub.cards import Figure, figures_table, render_card
from aigc_hub.evaluation.translation_metrics import TranslationScores
from aigc_hub.models.translation import language_tag
from training.adapt import base_figures, base_metadata


def _figures(scores: list[TranslationScores], dataset: str) -> list[Figure]:
    out = []
    for s in scores:
        arrow, data = s.direction.replace("-", "→"), f"{dataset} validation ({s.sentences} sentences)"
        out += [Figure(f"BLEU {arrow}", s.bleu, "bleu", data), Figure(f"chrF {arrow}", s.chrf, "chrf", data)]
    return out


def _asking(dirs: list[tuple[str, str]], convention: Any) -> tuple[str, str]:
    """How the card says to ask for a direction, and the stock-transformers snippet that does."""
    src, tgt = dirs[0]
    if convention is None:
        rows = "\n".join(f"| {a} → {b} | `{language_tag(b)}` |" for a, b in dirs)
        return (f"Ask for the target language with a tag at the start of the source text:\n\n| direction | tag |\n"
                f"|---|---|\n{rows}", f'["{language_tag(tgt)} Hello."]')
    return (f"Asked for as its base is ({convention.describe()}); in AIGC Hub pick the direction in the "
            "Translation tab or pass `--src` / `--tgt`.", f'["{convention.source_text("Hello.", src, tgt)}"]')


def write_card(args: argparse.Namespace, out: Path, dirs: list[tuple[str, str]], scores: list[TranslationScores],
               steps: int, vocab: int, samples: list[tuple[str, list[str], list[str]]],
               base_scores: list[TranslationScores] | None = None, convention: Any = None,
               merged: bool = False) -> None:
    dataset = args.card_dataset or Path(args.dataset).stem
    ref = args.hub_model_id or args.output_dir
    adapting = args.base_model is not None
    adapter = adapting and args.lora_rank > 0 and not merged
    split = (f"`{args.validation_file}`" if args.validation_file else
             f"{args.validation_split_percentage:g} % of the pairs held out in groups that share no sentence with "
             "training")
    figures = _figures(scores, dataset) + base_figures(_figures(base_scores or [], dataset))
    penalty = f", length penalty {args.length_penalty:g}" if not adapting and args.length_penalty != 1 else ""
    src, tgt = dirs[0]
    asking, example = _asking(dirs, convention)
    sample_rows = "\n".join(f"| {d} | {s} | {h} |" for d, sources, hyps in samples for s, h in zip(sources, hyps))
    signature = scores[0].signature if scores else ""
    loop = (f"for {steps} optimizer steps (batch {args.train_batch_size} × {args.gradient_accumulation_steps}, "
            f"lr {args.learning_rate}, label smoothing {args.label_smoothing}, seed {args.seed})")
    if adapting:
        from training.adapt import method

        what = method(args)
        what = (f"The base with {what} folded in" if merged else what[0].upper() + what[1:])
        intro = f"{what}, trained on {dataset} with AIGC Hub's `training/train_translation.py` {loop}."
        load = (f"from peft import AutoPeftModelForSeq2SeqLM\nmodel = AutoPeftModelForSeq2SeqLM.from_pretrained("
                f'"{ref}")' if adapter else f'model = AutoModelForSeq2SeqLM.from_pretrained("{ref}")')
    else:
        cjk = (", one per Chinese / Japanese character" if args.tokenizer == "unigram" and args.cjk_characters
               else "")
        intro = (f"A Marian-style encoder-decoder translation model trained from scratch with AIGC Hub's\n"
                 f"`training/train_translation.py` (shared Unigram vocabulary of {vocab} pieces{cjk}, preset "
                 f"{args.preset}) {loop}.")
        load = f'model = AutoModelForSeq2SeqLM.from_pretrained("{ref}")'
    base_note = "\n\nThe base model's figures are measured on the same pairs before training." if adapting else ""
    body = f"""{intro}

## Directions

{asking}

## Use

Stock transformers{" and peft" if adapter else ""}, no project code:

```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("{ref}")
{load}
batch = tokenizer({example}, return_tensors="pt", padding=True)
print(tokenizer.batch_decode(model.generate(**batch, num_beams=4), skip_special_tokens=True))
```

## Evaluation (validation split: {split})

sacreBLEU, beam {args.num_beams}{penalty}, every reference of a source counted (`{signature}`; Chinese targets use `tok:zh`).

{figures_table(figures)}{base_note}

## Samples (validation sources)

| direction | source | translation |
|---|---|---|
{sample_rows}

{args.card_notes}
"""
    tags = ["lora", "peft"] if adapter else ["fine-tuned"] if adapting else ["marian", "from-scratch"]
    # Source first: a fine-tuned one-direction OPUS-MT is recognised by its card's two languages in that order.
    extra: dict = {"language": list(dict.fromkeys(lang for d in dirs for lang in d))}
    extra.update(base_metadata(args, adapter))
    title = args.card_title or f"Translation {src}-{tgt} ({dataset})"
    card = render_card(title=title + (" (merged)" if merged else ""), family="seq2seq",
                       tags=[*tags, *[f"{a}-{b}" for a, b in dirs]], datasets=[dataset], license=args.card_license,
                       figures=figures, body=body, library_name="peft" if adapter else "transformers", extra=extra)
    card.save(out / "README.md")
