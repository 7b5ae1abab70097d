"""How each model family's folder becomes a model on a device. Every loader returns a `Loaded`.

Loaders run on the target device's worker thread (see services/registry.py), read safetensors only and never run
remote code. They raise `ModelLoadError` for folders they cannot use; the registry turns any other failure (a
truncated file, a shape mismatch) into one too.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def load_dcgan(path: Path, config: dict, device: str, dtype: "torch.dtype") -> Loaded:
    from .models.dcgan import Generator

    try:
        model = Generator.from_pretrained(str(path), strict=True)
    except TypeError as e:
        raise ModelLoadError(f"{path.name}: config.json does not describe a DCGAN generator ({e})") from None
    return Loaded(model.to(device=device, dtype=dtype).eval().requires_grad_(False))


def transformers_loader(auto_class: str) -> Loader:
    """A loader for a transformers Auto class: the model and its tokenizer."""

    def load(path: Path, config: dict, device: str, dtype: "torch.dtype") -> Loaded:
        import transformers
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        # Safetensors only, never remote code: a folder that asks for either is refused by the loader.
        model = getattr(transformers, auto_class).from_pretrained(str(path), dtype=dtype, use_safetensors=True,
                                                                  trust_remote_code=False)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        return Loaded(model.to(device).eval().requires_grad_(False), tokenizer)

    load.__name__ = f"load_{auto_class}"
    return load
