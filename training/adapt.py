"""Starting a training script from a shared model (`--base_model`): LoRA through `peft`, or a full fine-tune.

The base is any reference the app resolves (a local hub id, a folder, an HF id, downloaded or in the offline cache)
and must be of the script's family. A LoRA run trains low-rank adapters on the base's layers (peft's per-architecture
target modules unless told) and writes a standard PEFT folder: `adapter_config.json` naming the base as it was given,
`adapter_model.safetensors`, the base's tokenizer and a card with `base_model`. It loads with stock
`PeftModel.from_pretrained` / `AutoPeftModelForCausalLM` and in this app. `--merge` also writes `merged/`, the base
with the adapter folded in, an ordinary folder of the family. `--lora_rank 0` fine-tunes every weight and writes an
ordinary folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

MERGED_DIR = "merged"  # under output_dir, beside the adapter; never pushed with it


def add_adapt_args(parser: argparse.ArgumentParser, lora: bool = True) -> None:
    """--base_model, and (`lora`) the LoRA options; a script without LoRA (the GAN) fine-tunes every weight."""
    g = parser.add_argument_group("start from a shared model")
    g.add_argument("--base_model", default=None,
                   help="adapt this model (a hub id, a folder, an HF id) instead of training from scratch")
    if not lora:
        parser.set_defaults(lora_rank=0, lora_alpha=None, lora_dropout=0.0, lora_target_modules=None, merge=False)
        return
    g.add_argument("--lora_rank", type=int, default=16, help="with --base_model: LoRA rank (0 = full fine-tune)")
    g.add_argument("--lora_alpha", type=float, default=None, help="LoRA scale numerator (default: 2 × rank)")
    g.add_argument("--lora_dropout", type=float, default=0.05)
    g.add_argument("--lora_target_modules", default=None,
                   help="comma-separated module names, or 'all-linear' (default: peft's choice for the architecture)")
    g.add_argument("--merge", action="store_true", help="also write merged/: the base with the adapter folded in")


def check_args(args: argparse.Namespace) -> None:
    if args.base_model is None:
        if args.merge:
            raise SystemExit("--merge needs --base_model (a LoRA adapter to fold into its base)")
        return
    if args.lora_rank < 0:
        raise SystemExit(f"--lora_rank must be 0 (full fine-tune) or more, got {args.lora_rank}")
    if args.merge and args.lora_rank == 0:
        raise SystemExit("--merge folds a LoRA adapter into its base; a full fine-tune (--lora_rank 0) has none")
    if not 0 <= args.lora_dropout < 1:
        raise SystemExit(f"--lora_dropout must be in [0, 1), got {args.lora_dropout}")


def settle(args: argparse.Namespace, *, lr: tuple[float, float, float], warmup: int,
           tokenizer: str | None = None) -> argparse.Namespace:
    """The options checked, and the defaults that differ between training from scratch and adapting filled in:
    `lr` = (from scratch, LoRA, every weight); `warmup` steps from scratch (adapting: `warmup_steps` at set-up,
    once the run's length is known); `tokenizer`, the script's own from scratch (a base brings its own)."""
    check_args(args)
    scratch = args.base_model is None
    if tokenizer is not None:
        if not scratch and args.tokenizer:
            raise SystemExit("--base_model brings its own tokenizer (its vocabulary is what the model knows): drop "
                             "--tokenizer")
        args.tokenizer = args.tokenizer or (tokenizer if scratch else None)
    args.learning_rate = args.learning_rate or (lr[0] if scratch else lr[1] if args.lora_rank else lr[2])
    if scratch and args.lr_warmup_steps is None:
        args.lr_warmup_steps = warmup
    return args


def warmup_steps(args: argparse.Namespace, total: int) -> None:
    """Adapting: a short warm-up, 3 % of the run (TRL's examples), unless one was given."""
    if args.lr_warmup_steps is None:
        args.lr_warmup_steps = round(0.03 * total)


def base_figures(figures: list) -> list:
    """The base model's figures, named and typed apart for the card: "base model: …", "<type>-base"."""
    from aigc_hub.cards import Figure

    return [Figure(f"base model: {f.name}", f.value, f"{f.metric_type}-base", f.dataset) for f in figures]


def base_folder(ref: str, family: str | tuple[str, ...]) -> Path:
    """The folder of `ref`, checked to be a model of `family` (or one of them; SystemExit with one line
    otherwise)."""
    from aigc_hub import hub
    from aigc_hub.errors import UserError
    from aigc_hub.families import FAMILIES, checked_folder

    try:
        path = hub.resolve(ref)
        found, _ = checked_folder(path, ref)
    except UserError as e:
        raise SystemExit(f"--base_model {ref}: {e}") from None
    except OSError as e:  # not in the offline cache, no network
        raise SystemExit(f"--base_model {ref}: cannot be found here ({type(e).__name__}: {str(e)[:200]})") from None
    families = (family,) if isinstance(family, str) else family
    if found.name not in families:
        raise SystemExit(f"--base_model {ref} is a {found.name} model; this script adapts "
                         f"{' or '.join(f'{f} ({FAMILIES[f].pipeline_tag})' for f in families)} models")
    return path


def base_family(ref: str, families: tuple[str, ...]) -> str:
    """Which of `families` the base `ref` is (SystemExit with one line when none)."""
    from aigc_hub.families import checked_folder

    path = base_folder(ref, families)
    return checked_folder(path, ref)[0].name


# LoRA's usual layers in a diffusers UNet: attention projections (as diffusers' LoRA scripts) and, for the
# project's small UNets whose attention is at one resolution only, the ResNet blocks' convolutions.
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2"]


def lora(model: torch.nn.Module, args: argparse.Namespace, task_type: str | None,
         default_targets: list[str] | None = None) -> torch.nn.Module:
    """`model` with LoRA adapters on (only they train); said on stderr with the trainable share. Target modules:
    --lora_target_modules, else `default_targets`, else peft's choice for a transformers architecture."""
    from peft import LoraConfig, get_peft_model
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULT_TARGETS

    targets: Any = args.lora_target_modules
    if targets and targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    elif not targets and default_targets:
        targets = default_targets
    elif not targets and getattr(model.config, "model_type", None) not in DEFAULT_TARGETS:
        targets = "all-linear"  # peft has no default for this architecture
    config = LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha or 2 * args.lora_rank,
                        lora_dropout=args.lora_dropout, target_modules=targets, task_type=task_type)
    try:
        model = get_peft_model(model, config)
    except ValueError as e:  # a target module the model does not have
        raise SystemExit(f"--lora_target_modules: {e}") from None
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print(f"LoRA rank {args.lora_rank} on {sorted(model.peft_config['default'].target_modules)}: "
          f"{trainable / 1e6:.3f} M of {total / 1e6:.2f} M parameters train ({100 * trainable / total:.2f} %)",
          file=sys.stderr)
    return model


def is_lora(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def save(model: Any, tokenizer: Any, out: Path, args: argparse.Namespace) -> Path | None:
    """Write the trained model into `out`: an adapter folder (LoRA) or an ordinary one (full fine-tune); with
    --merge, the merged model into out/merged too (returned). Merging folds the adapter into `model` itself: call
    this last."""
    if is_lora(model):
        save_adapter(model, out, args)
    else:
        model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    if not (args.merge and is_lora(model)):
        return None
    merged = model.merge_and_unload()
    merged.save_pretrained(str(out / MERGED_DIR))
    tokenizer.save_pretrained(str(out / MERGED_DIR))
    return out / MERGED_DIR


def save_adapter(model: Any, out: Path, args: argparse.Namespace) -> None:
    """A peft model's adapter as peft writes it (adapter_config.json + adapter_model.safetensors), naming the base as
    it was given (a hub id), not the folder it was read from on this machine."""
    model.save_pretrained(str(out))
    config = json.loads((out / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = args.base_model
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")


def base_metadata(args: argparse.Namespace, adapter: bool) -> dict:
    """The card's `base_model` fields. The Hub's field names a Hub model: a base read from a local folder (a recipe's
    earlier stage) is said in the card's text only."""
    if args.base_model is None or Path(args.base_model).expanduser().is_dir():
        return {}
    return {"base_model": args.base_model, **({"base_model_relation": "adapter"} if adapter else {})}


def method(args: argparse.Namespace) -> str:
    """How the model was made, for the card: "LoRA rank 16 (alpha 32) on X", "full fine-tune of X" or None."""
    if args.base_model is None:
        return ""
    if args.lora_rank == 0:
        return f"a full fine-tune of `{args.base_model}`"
    alpha = args.lora_alpha or 2 * args.lora_rank
    return f"a LoRA adapter (rank {args.lora_rank}, alpha {alpha:g}) for `{args.base_model}`"
