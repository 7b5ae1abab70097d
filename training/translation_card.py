"""The model card of a translation model: languages and directions in the metadata, BLEU/chrF per direction."""

from __future__ import annotations

import argparse
from pathlib import Path

from aigc_hub.cards import Figure, figures_table, render_card
from aigc_hub.evaluation.translation_metrics import TranslationScores
from aigc_hub.models.translation import language_tag


def write_card(args: argparse.Namespace, out: Path, dirs: list[tuple[str, str]], scores: list[TranslationScores],
               steps: int, vocab: int, samples: list[tuple[str, list[str], list[str]]]) -> None:
    dataset = args.card_dataset or Path(args.dataset).stem
    ref = args.hub_model_id or args.output_dir
    split = (f"`{args.validation_file}`" if args.validation_file else
             f"{args.validation_split_percentage:g} % of the pairs held out in groups that share no sentence with "
             "training")
    figures = []
    for s in scores:
        arrow = s.direction.replace("-", "→")
        figures.append(Figure(f"BLEU {arrow}", s.bleu, "bleu", f"{dataset} validation ({s.sentences} sentences)"))
        figures.append(Figure(f"chrF {arrow}", s.chrf, "chrf", f"{dataset} validation ({s.sentences} sentences)"))
    src, tgt = dirs[0]
    direction_rows = "\n".join(f"| {a} → {b} | `{language_tag(b)}` |" for a, b in dirs)
    sample_rows = "\n".join(f"| {d} | {s} | {h} |" for d, sources, hyps in samples for s, h in zip(sources, hyps))
    signature = scores[0].signature if scores else ""
    body = f"""A Marian-style encoder-decoder translation model trained from scratch with AIGC Hub's
`training/train_translation.py` (shared Unigram vocabulary of {vocab} pieces, preset {args.preset}) for {steps}
optimizer steps (batch {args.train_batch_size} × {args.gradient_accumulation_steps}, lr {args.learning_rate},
label smoothing {args.label_smoothing}, seed {args.seed}).

## Directions

Ask for the target language with a tag at the start of the source text:

| direction | tag |
|---|---|
{direction_rows}

## Use

Stock transformers, no project code:

```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained("{ref}")
model = AutoModelForSeq2SeqLM.from_pretrained("{ref}")
batch = tokenizer(["{language_tag(tgt)} Hello."], return_tensors="pt", padding=True)
print(tokenizer.batch_decode(model.generate(**batch, num_beams=4), skip_special_tokens=True))
```

## Evaluation (validation split: {split})

sacreBLEU, beam {args.num_beams}, every reference of a source counted (`{signature}`; Chinese targets use `tok:zh`).

{figures_table(figures)}

## Samples (validation sources)

| direction | source | translation |
|---|---|---|
{sample_rows}

{args.card_notes}
"""
    card = render_card(title=args.card_title or f"Translation {src}-{tgt} ({dataset})", family="seq2seq",
                       tags=["marian", "from-scratch", *[f"{a}-{b}" for a, b in dirs]],
                       datasets=[dataset], license=args.card_license, figures=figures, body=body,
                       library_name="transformers", extra={"language": sorted({lang for d in dirs for lang in d})})
    card.save(out / "README.md")
