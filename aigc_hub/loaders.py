"""How each model family's folder becomes a model on a device. Every loader returns a `Loaded`.

Loaders run on the target device's worker thread (see services/registry.py), read safetensors only and never run
remote code. They raise `ModelLoadError` for folders they cannot use; the registry turns any other failure (a
truncated file, a shape mismatch) into one too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import ModelLoadError

if TYPE_CHECKING:
    import torch

Loader = Callable[[Path, dict, str, "torch.dtype"], "Loaded"]


@dataclass
class Loaded:
    model: Any
    tokenizer: Any = None  # text and translation models
    extras: dict = field(default_factory=dict)  # what else a family's service needs (a diffusion scheduler config)


# Pipelines whose folder is a UNet2DModel and a scheduler: what DDPMPipeline.save_pretrained writes (and DDIM's).
UNET_PIPELINES = ("DDPMPipeline", "DDIMPipeline")


def check_declared_size(path: Path, build: Callable[[], Any], bytes_per_param: float, weights: Path | None = None,
                        ) -> None:
    """Refuse a folder whose config declares more parameters than its weight files could hold, before any layer is
    allocated: `build()` makes the model on the meta device (no memory), and a config that asks for terabytes beside a
    small file (a hostile or broken folder) costs nothing. `bytes_per_param`: the smallest a stored weight can be."""
    import torch

    try:
        with torch.device("meta"):
            model = build()
    except (TypeError, ValueError, RuntimeError, OverflowError, KeyError, AttributeError) as e:
        raise ModelLoadError(f"{path.name}: config.json does not describe a model of its family ({str(e)[:200]})"
                             ) from None
    declared = sum(t.numel() for t in [*model.parameters(), *model.buffers()]) * bytes_per_param
    stored = sum(f.stat().st_size for f in (weights or path).glob("*.safetensors"))
    if declared > stored:
        raise ModelLoadError(f"{path.name}: the weights could not be loaded: config.json declares "
                             f"{declared / 2**20:.1f} MiB of weights or more, its weight files hold "
                             f"{stored / 2**20:.1f} MiB")


def load_dcgan(path: Path, config: dict, device: str, dtype: "torch.dtype") -> Loaded:
    from .models.dcgan import Generator

    check_declared_size(path, lambda: Generator(**{k: v for k, v in config.items() if not k.startswith("_")}), 2)
    try:
        model = Generator.from_pretrained(str(path), strict=True)
    except TypeError as e:
        raise ModelLoadError(f"{path.name}: config.json does not describe a DCGAN generator ({e})") from None
    return Loaded(model.to(device=device, dtype=dtype).eval().requires_grad_(False))


def check_auto_size(path: Path, auto_class: str) -> None:
    """`check_declared_size` for a transformers folder of `auto_class` (AutoModelForCausalLM, ...)."""
    import transformers

    auto = getattr(transformers, auto_class)
    # int8 is the smallest weight these loaders read (no 4-bit formats are served)
    check_declared_size(path, lambda: auto.from_config(transformers.AutoConfig.from_pretrained(
        str(path), trust_remote_code=False)), 1)


def transformers_loader(auto_class: str) -> Loader:
    """A loader for a transformers Auto class: the model and its tokenizer."""

    def load(path: Path, config: dict, device: str, dtype: "torch.dtype") -> Loaded:
        import transformers
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        auto = getattr(transformers, auto_class)
        check_auto_size(path, auto_class)
        # Safetensors only, never remote code: a folder that asks for either is refused by the loader.
        model = auto.from_pretrained(str(path), dtype=dtype, use_safetensors=True, trust_remote_code=False)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        return Loaded(model.to(device).eval().requires_grad_(False), tokenizer)

    load.__name__ = f"load_{auto_class}"
    return load


def load_adapter(path: Path, config: dict, device: str, dtype: "torch.dtype") -> Loaded:
    """Adapters are not loaded alone: the registry adds them to their loaded base (models/adapters.py)."""
    raise ModelLoadError(f"{path.name}: a LoRA adapter loads on its base model, through the model registry")


def diffusion_parts(path: Path, index: dict) -> tuple[dict, dict]:
    """The UNet config and scheduler config of a diffusers pipeline folder, checked against what it may hold:
    stock diffusers classes only (a component from another library or module would be remote code)."""
    import diffusers

    name = str(index.get("_class_name"))[:60]
    if not hasattr(diffusers, name):
        raise ModelLoadError(f"{path.name}: model_index.json names {name!r}, a pipeline class diffusers does not have")
    if name not in UNET_PIPELINES:
        raise ModelLoadError(f"{path.name}: {name} folders are not served yet (image pipelines: "
                             f"{', '.join(UNET_PIPELINES)} folders, a UNet2DModel and a scheduler; text-to-image "
                             "pipelines with a text encoder, a UNet and a VAE)")
    unet, scheduler = index.get("unet"), index.get("scheduler")
    if unet != ["diffusers", "UNet2DModel"]:
        raise ModelLoadError(f"{path.name}: model_index.json's unet must be diffusers' UNet2DModel, "
                             f"got {str(unet)[:80]}")
    if not (isinstance(scheduler, list) and len(scheduler) == 2 and scheduler[0] == "diffusers"
            and isinstance(scheduler[1], str) and scheduler[1].endswith("Scheduler")
            and hasattr(diffusers, scheduler[1])):
        raise ModelLoadError(f"{path.name}: model_index.json's scheduler must be a diffusers scheduler, got "
                             f"{str(scheduler)[:80]}")
    configs = []
    for sub, file in (("unet", "config.json"), ("scheduler", "scheduler_config.json")):
        try:
            config = json.loads((path / sub / file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ModelLoadError(f"{path.name}: {sub}/{file} does not parse ({e})") from None
        if not isinstance(config, dict):
            raise ModelLoadError(f"{path.name}: {sub}/{file} must hold a JSON object")
        configs.append(config)
    return configs[0], configs[1]


# Libraries a pipeline component may come from. Anything else (a module of the repository itself) is remote code.
COMPONENT_LIBRARIES = ("diffusers", "transformers")


def pipeline_components(path: Path, index: dict) -> dict[str, dict]:
    """The parsed configs of a text-to-image pipeline folder's model components (unet, vae, ...), after checking its
    model_index.json: a diffusers pipeline class, and every component a stock diffusers or transformers class (or a
    diffusers pipeline module's own, like Stable Diffusion's safety checker) or left out (null)."""
    import diffusers
    import transformers

    name = str(index.get("_class_name"))[:60]
    if not hasattr(diffusers, name):
        raise ModelLoadError(f"{path.name}: model_index.json names {name!r}, a pipeline class diffusers does not have")
    configs = {}
    for key, value in index.items():
        if key.startswith("_") or not isinstance(value, list):
            continue
        if value in ([None, None], [None]):
            continue
        if len(value) != 2 or not all(isinstance(v, str) for v in value):
            raise ModelLoadError(f"{path.name}: model_index.json's {key[:40]} must be [library, class], got "
                                 f"{str(value)[:80]}")
        library, cls = value
        if library in COMPONENT_LIBRARIES:
            module = diffusers if library == "diffusers" else transformers
        elif hasattr(diffusers.pipelines, library):  # e.g. ["stable_diffusion", "StableDiffusionSafetyChecker"]
            module = getattr(diffusers.pipelines, library)
        else:
            raise ModelLoadError(f"{path.name}: component {key[:40]} comes from {library[:60]!r}, not from diffusers "
                                 "or transformers: that would run remote code, which AIGC Hub never does")
        if not hasattr(module, cls):
            raise ModelLoadError(f"{path.name}: component {key[:40]} names {cls[:60]!r}, which {library} does not have")
        if not (path / key).is_dir():
            raise ModelLoadError(f"{path.name}: {name} needs its {key[:40]} component, and there is no {key[:40]}/ "
                                 "folder")
        for file in ("config.json", "scheduler_config.json"):
            if (path / key / file).is_file():
                try:
                    configs[key] = json.loads((path / key / file).read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                    raise ModelLoadError(f"{path.name}: {key}/{file} does not parse ({e})") from None
    for needed in ("unet", "vae", "scheduler"):
        if not isinstance(configs.get(needed), dict):
            raise ModelLoadError(f"{path.name}: a text-to-image pipeline needs a {needed} component with its config")
    return configs


def load_text_to_image(path: Path, config: dict, device: str, dtype: "torch.dtype") -> Loaded:
    """A text-to-image pipeline (Stable Diffusion family) with DiffusionPipeline.from_pretrained: safetensors only,
    never remote code; fp16 / bf16 on GPUs as the device policy says, fp32 on a CPU."""
    import torch
    from diffusers import DiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as hf_logging

    parts = pipeline_components(path, config)
    diffusers_logging.disable_progress_bar()
    hf_logging.disable_progress_bar()
    pipe = DiffusionPipeline.from_pretrained(str(path), dtype=dtype, use_safetensors=True,
                                             trust_remote_code=False)
    pipe.set_progress_bar_config(disable=True)
    for module in pipe.components.values():
        if isinstance(module, torch.nn.Module):
            module.eval().requires_grad_(False)
    return Loaded(pipe.to(device), pipe.tokenizer if hasattr(pipe, "tokenizer") else None,
                  extras={"scheduler": dict(parts["scheduler"]), "unet": parts["unet"], "vae": parts["vae"]})


def load_diffusion(path: Path, config: dict, device: str, dtype: "torch.dtype") -> Loaded:
    from diffusers import UNet2DModel
    from diffusers.utils import logging as diffusers_logging

    unet_config, scheduler_config = diffusion_parts(path, config)
    diffusers_logging.disable_progress_bar()
    check_declared_size(path, lambda: UNet2DModel.from_config(unet_config), 2, weights=path / "unet")
    unet = UNet2DModel.from_pretrained(str(path), subfolder="unet", use_safetensors=True, dtype=dtype)
    return Loaded(unet.to(device).eval().requires_grad_(False),
                  extras={"scheduler": scheduler_config, "unet": unet_config})
