"""The command a job runs: its recipe's script and preset (aigc_hub/recipes.py), and the options every job passes
(steps, output, logging and sample cadence for the live view, tensorboard, the push to the hub)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..hub import validate_repo_id
from ..recipes import RECIPES
from .uploads import data_options

MAX_STEPS = 1_000_000
MAX_LORA_RANK = 256


def base_options(recipe: str, base: object, lora_rank: object) -> tuple[list[str], str]:
    """The options that start `recipe`'s script from the listed model `base` (LoRA of `lora_rank`, 0 = every
    weight), and the job's label for it; UserErrors for a base the recipe cannot adapt."""
    from ..added_models import listed

    r = RECIPES[recipe]
    if r.base_family is None:
        raise UserError(f"the {recipe} recipe trains from scratch only (for now)")
    entry = next((e for e in listed() if e.ref == base), None) if isinstance(base, str) else None
    if entry is None:
        raise UserError(f"unknown model {str(base)[:100]!r} to start from: pick one the hub lists")
    if entry.family != r.base_family:
        raise UserError(f"{entry.ref} is a {entry.family or 'unrecognised'} model; the {recipe} recipe adapts "
                        f"{r.base_family} models")
    if isinstance(lora_rank, float) and lora_rank.is_integer():
        lora_rank = int(lora_rank)
    if not isinstance(lora_rank, int) or isinstance(lora_rank, bool) or not 0 <= lora_rank <= MAX_LORA_RANK:
        raise UserError(f"the LoRA rank must be a whole number from 0 (every weight) to {MAX_LORA_RANK}, got "
                        f"{str(lora_rank)[:20]!r}")
    if not r.lora:  # its script fine-tunes every weight
        return ["--base_model", entry.ref], f"{entry.ref}, full fine-tune"
    label = f"{entry.ref}, " + (f"LoRA rank {lora_rank}" if lora_rank else "full fine-tune")
    return ["--base_model", entry.ref, "--lora_rank", str(lora_rank)], label


def command(recipe: object, data: object, preset: object, steps: object, hub_id: object, output: Path, data_dir: Path,
            data_root: Path | None, hf: bool = False, trackio: bool = False, base: str | None = None,
            lora_rank: object = 16, overwrite: bool = False) -> tuple[list[str], str, int]:
    """The job's argv (after `python`), its preset (or the model it starts from) and step count; UserErrors for
    what cannot run. Tensorboard is always on (the tab's live view reads it); `trackio` adds trackio; `hf` pushes to
    the HF Hub (HF_TOKEN); `base` adapts that listed model instead of training from scratch. Without `overwrite`
    the run will not publish over a model published while it trained."""
    if not isinstance(recipe, str) or recipe not in RECIPES:
        raise UserError(f"unknown recipe {str(recipe)[:40]!r}: choose one of {', '.join(RECIPES)}")
    r = RECIPES[recipe]
    name = preset or next(iter(r.presets))
    if not isinstance(name, str) or name not in r.presets:
        raise UserError(f"unknown preset {str(name)[:40]!r} for {recipe}: choose one of {', '.join(r.presets)}")
    model_options = list(r.presets[name])
    if base:  # the base's own architecture and tokenizer: the preset (a size from scratch) does not apply
        model_options, name = base_options(recipe, base, lora_rank)
    if isinstance(steps, float) and steps.is_integer():
        steps = int(steps)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise UserError(f"steps must be a whole number between 1 and {MAX_STEPS}, got {str(steps)[:20]!r}")
    if not isinstance(hub_id, str):
        raise UserError("the hub id to publish as must be owner/name")
    validate_repo_id(hub_id)
    options = data_options(recipe, data, data_dir, data_root)
    every = max(1, steps // 20)  # about 20 points on the loss curve, 10 samples and checkpoints in a run
    argv = [str(Path("training") / r.script), *options, *model_options, "--output_dir", str(output),
            "--max_train_steps", str(steps), "--logging_steps", str(every),
            "--report_to", "tensorboard,trackio" if trackio else "tensorboard",
            "--checkpointing_steps", str(max(1, steps // 10)), "--push_to_hub", "--hub_model_id", hub_id,
            *(["--hf"] if hf else []), *([] if overwrite else ["--hub_keep_existing"])]
    if r.shows == "samples":
        argv += ["--sample_steps", str(max(1, steps // 10))]
    else:
        argv += ["--eval_steps", str(max(1, steps // 10))]
    return argv, name, steps
