"""A transformers folder converted once for CTranslate2 (int8 weights), into a cache of its own: the translators
(ct2_translation.py) and the causal LMs (ct2_text.py) that are served on that backend.

The conversion goes to `<hub home>/../runtimes/ctranslate2/<key>/`, never into the hub entry (a push does not carry
it). The key hashes the folder's path and every file's name, size, modification time and inode, the quantization and
CTranslate2's version: a model pushed again, or edited, is converted again. It is written to a temporary folder and
renamed into place, so a crash leaves no half-converted model behind. The converter reads safetensors only and never
runs remote code, as every loader here.

This project's own translators (training/train_translation.py) are Marian-shaped but keep their own tokenizer: pad
is token 0 and the decoder starts from it. CTranslate2's Marian loader assumes OPUS-MT's layout (pad last, dropped,
a zero start embedding), so those folders convert with `_OwnMarianLoader`, which keeps the vocabulary whole.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from ..errors import ModelLoadError
from ..paths import hub_home

_CONVERTING = threading.Lock()  # conversions are rare: one at a time (a loader swap below is process-wide)
COMPUTE_TYPES = {"cpu": "int8", "cuda": "int8_float16"}


def placement(device: str) -> tuple[str, int, str]:
    """CTranslate2's device kind, index and compute type for one of ours ("cpu", "cuda:1")."""
    kind, _, index = device.partition(":")
    return kind, int(index or 0), COMPUTE_TYPES.get(kind, "default")


def folder_bytes(folder: Path) -> int:
    """The loaded size of a converted model: its files."""
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def cache_root() -> Path:
    return hub_home().parent / "runtimes" / "ctranslate2"


def cache_key(folder: Path, quantization: str) -> str:
    import ctranslate2

    h = hashlib.sha256(f"{folder.resolve()}\n{quantization}\n{ctranslate2.__version__}\n".encode())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()  # a push renames a new folder into place: new inodes, even for the same bytes
        h.update(f"{path.relative_to(folder)} {stat.st_size} {stat.st_mtime_ns} {stat.st_ino}\n".encode())
    return h.hexdigest()[:20]


def converted(folder: Path, config: dict, quantization: str = "int8") -> Path:
    """The CTranslate2 model of `folder` (whose checked config.json is `config`), converted now if the cache has
    none for this version of it."""
    out = cache_root() / cache_key(folder, quantization)
    if (out / "model.bin").is_file():
        return out
    with _CONVERTING:
        if (out / "model.bin").is_file():
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
        try:
            _convert(folder, config, work / "model", quantization)
            os.replace(work / "model", out)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out


def _convert(folder: Path, config: dict, out: Path, quantization: str) -> None:
    from ctranslate2.converters import TransformersConverter
    from ctranslate2.converters import transformers as ct2t

    class SafeConverter(TransformersConverter):
        def load_model(self, model_class: Any, model_name_or_path: str, **kwargs: Any) -> Any:
            kwargs.update(use_safetensors=True, trust_remote_code=False)
            return model_class.from_pretrained(model_name_or_path, **kwargs)

    swaps = {"M2M100Config": _m2m100_loader(), "MBartConfig": _mbart_loader()}  # (NLLB's config is M2M100's)
    if config.get("model_type") == "marian" and "translation_directions" in config:  # train_translation.py's
        swaps["MarianConfig"] = _own_marian_loader()
    saved = {name: ct2t._MODEL_LOADERS.get(name) for name in swaps}
    try:
        ct2t._MODEL_LOADERS.update(swaps)
        SafeConverter(str(folder)).convert(str(out), quantization=quantization)
    except (ValueError, KeyError, AttributeError) as e:  # a configuration CTranslate2 does not convert
        raise ModelLoadError(f"{folder.name}: CTranslate2 cannot convert this model ({type(e).__name__}: "
                             f"{str(e)[:200]}); serve it with the transformers backend") from None
    finally:
        ct2t._MODEL_LOADERS.update({k: v for k, v in saved.items() if v is not None})


def _mbart_loader() -> Any:
    """mBART is pre-norm with a normalised embedding; transformers 5's MBartConfig no longer says so
    (`normalize_before`), which CTranslate2's loader reads."""
    from ctranslate2.converters import transformers as ct2t

    class _MBartLoader(ct2t.MBartLoader):
        def get_model_spec(self, model: Any) -> Any:
            model.config.normalize_before = True
            model.config.normalize_embedding = True
            return super().get_model_spec(model)

        def set_config(self, config: Any, model: Any, tokenizer: Any) -> None:
            super().set_config(config, model, tokenizer)
            ids = model.config
            config.bos_token = config.bos_token or tokenizer.convert_ids_to_tokens(ids.bos_token_id)
            if config.decoder_start_token is None and "50" in type(tokenizer).__name__:  # mBART-25's is the code
                config.decoder_start_token = tokenizer.convert_ids_to_tokens(ids.decoder_start_token_id)

    return _MBartLoader()


def _m2m100_loader() -> Any:
    """CTranslate2's M2M100 loader finds the language tokens under `additional_special_tokens`, where transformers 5
    no longer lists them: the vocabulary then misses them. This one asks the tokenizer for every id the model has
    (language tokens included), then fairseq's made-up words, as the stock loader means to."""
    from ctranslate2.converters import transformers as ct2t

    class _M2M100Loader(ct2t.M2M100Loader):
        def get_vocabulary(self, model: Any, tokenizer: Any) -> list[str]:
            tokens = ct2t.BartLoader.get_vocabulary(self, model, tokenizer)
            if tokens[-1] == tokenizer.unk_token:  # CTranslate2 issue 1039, as the stock loader
                tokens.insert(tokenizer.unk_token_id, tokens.pop())
            known = set(tokens)
            for i in range(len(tokens), model.config.vocab_size):
                token = tokenizer.convert_ids_to_tokens(i)
                tokens.append(token if isinstance(token, str) and token not in known else f"madeupword{i}")
                known.add(tokens[-1])
            return tokens

    return _M2M100Loader()


def _own_marian_loader() -> Any:
    from ctranslate2.converters import transformers as ct2t

    class _OwnMarianLoader(ct2t.MarianMTLoader):
        """Marian's normalisation settings, BART's vocabulary and decoder start (the pad token, kept)."""

        def get_model_spec(self, model: Any) -> Any:
            model.config.normalize_before = False
            model.config.normalize_embedding = False
            return ct2t.BartLoader.get_model_spec(self, model)

        def set_config(self, config: Any, model: Any, tokenizer: Any) -> None:
            ct2t.BartLoader.set_config(self, config, model, tokenizer)
            config.bos_token = config.bos_token or tokenizer.pad_token  # unused: sources get no BOS

        def set_decoder(self, spec: Any, decoder: Any) -> None:
            ct2t.BartLoader.set_decoder(self, spec, decoder)

        def get_vocabulary(self, model: Any, tokenizer: Any) -> list[str]:
            return ct2t.BartLoader.get_vocabulary(self, model, tokenizer)

    return _OwnMarianLoader()
