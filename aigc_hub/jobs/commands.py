"""The command a job runs: its recipe's script and preset (aigc_hub/recipes.py), and the options every job passes
(steps, output, logging and sample cadence for the live view, tensorboard, the push to the hub)."""

from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..hub import validate_repo_id
from ..recipes import RECIPES
from .uploads import data_options

MAX_STEPS = 1_000_000


def command(recipe: object, data: object, preset: object, steps: object, hub_id: object, output: Path, data_dir: Path,
            data_root: Path | None, hf: bool = False, trackio: bool = False) -> tuple[list[str], str, int]:
    """The job's argv (after `python`), its preset and step count; UserErrors for what cannot run. Tensorboard is
    always on (the tab's live view reads it); `trackio` adds trackio; `hf` pushes to the HF Hub (HF_TOKEN)."""
    if not isinstance(recipe, str) or recipe not in RECIPES:
        raise UserError(f"unknown recipe {str(recipe)[:40]!r}: choose one of {', '.join(RECIPES)}")
    r = RECIPES[recipe]
    name = preset or next(iter(r.presets))
    if not isinstance(name, str) or name not in r.presets:
        raise UserError(f"unknown preset {str(name)[:40]!r} for {recipe}: choose one of {', '.join(r.presets)}")
    if isinstance(steps, float) and steps.is_integer():
        steps = int(steps)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
        raise UserError(f"steps must be a whole number between 1 and {MAX_STEPS}, got {str(steps)[:20]!r}")
    if not isinstance(hub_id, str):
        raise UserError("the hub id to publish as must be owner/name")
    validate_repo_id(hub_id)
    options = data_options(recipe, data, data_dir, data_root)
    every = max(1, steps // 20)  # about 20 points on the loss curve, 10 samples and checkpoints in a run
    argv = [str(Path("training") / r.script), *options, *r.presets[name], "--output_dir", str(output),
            "--max_train_steps", str(steps), "--logging_steps", str(every),
            "--report_to", "tensorboard,trackio" if trackio else "tensorboard",
            "--checkpointing_steps", str(max(1, steps // 10)), "--push_to_hub", "--hub_model_id", hub_id,
            *(["--hf"] if hf else [])]
    if r.shows == "samples":
        argv += ["--sample_steps", str(max(1, steps // 10))]
    else:
        argv += ["--eval_steps", str(max(1, steps // 10))]
    return argv, name, steps
