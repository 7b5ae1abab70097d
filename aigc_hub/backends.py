"""The runtime a model is served on: transformers / diffusers (the default), or another where its family has one
(CTranslate2 for translation and causal LMs: int8 on CPU, int8_float16 on GPU). Chosen per model in the app settings
(`--backend REF=NAME`, `*=NAME` for every model whose family has that backend), on the CLI (`--backend`), and shown
in the Models tab. A backend a model cannot take is refused in one line, never swapped for another silently."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ModelLoadError, UserError
from .loaders import Loaded, Loader, check_auto_size

if TYPE_CHECKING:
    import torch
    from transformers import GenerationConfig

    from .families import Family

DEFAULT = "transformers"


def load_ct2_translation(path: Path, config: dict, device: str, dtype: "torch.dtype") -> Loaded:
    import torch
    from transformers import AutoTokenizer

    from .models.ct2_convert import converted
    from .models.ct2_translation import CT2Translator

    check_auto_size(path, "AutoModelForSeq2SeqLM")  # before the converter builds it
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    from .models.translation import BATCH

    # Beam search's length normalisation, as transformers reads it from the folder (CTranslate2's is the same: the
    # score divided by length ** penalty); transformers 5 leaves what a file does not set at None.
    penalty = generation_config(path, config).length_penalty
    model = CT2Translator(converted(path, config), device, torch.get_num_threads(), BATCH,
                          1.0 if penalty is None else float(penalty))
    return Loaded(model, tokenizer, {"backend": f"ctranslate2 {model.compute_type}", "bytes": model.bytes})


def generation_config(path: Path, config: dict) -> "GenerationConfig":
    """The folder's generation_config.json, else (as transformers does) the model config's token ids."""
    from transformers import GenerationConfig

    if (path / "generation_config.json").is_file():
        return GenerationConfig.from_pretrained(str(path))
    return GenerationConfig.from_dict({k: config[k] for k in ("eos_token_id", "bos_token_id") if k in config})


def load_ct2_text(path: Path, config: dict, device: str, dtype: "torch.dtype") -> Loaded:
    import torch
    from transformers import AutoTokenizer

    from .models.ct2_convert import converted
    from .models.ct2_text import CT2Generator

    check_auto_size(path, "AutoModelForCausalLM")  # before the converter builds it
    tokenizer = AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    model = CT2Generator(converted(path, config), device, torch.get_num_threads(), generation_config(path, config))
    return Loaded(model, tokenizer, {"backend": f"ctranslate2 {model.compute_type}", "bytes": model.bytes})


BACKENDS: dict[str, dict[str, Loader]] = {"seq2seq": {"ctranslate2": load_ct2_translation},
                                          "causal-lm": {"ctranslate2": load_ct2_text}}
NAMES = (DEFAULT, *sorted({name for table in BACKENDS.values() for name in table}))


def check(name: str) -> str:
    if name not in NAMES:
        raise UserError(f"unknown backend {str(name)[:40]!r}: choose one of {', '.join(NAMES)}")
    return name


def loader_for(family: "Family", name: str | None, everywhere: bool = False) -> Loader:
    """The loader of `family` on backend `name` (None: the default). `everywhere`: the name was set for every model
    (`*`), so a family without that backend keeps its default."""
    if name in (None, DEFAULT):
        return family.load
    table = BACKENDS.get(family.name, {})
    if name in table:
        return table[name]
    if everywhere:
        return family.load
    raise ModelLoadError(f"{family.name} models have no {name} backend (backends: "
                         f"{', '.join([DEFAULT, *table]) }); serve it with {DEFAULT}")
