"""LoRA adapters (PEFT folders) served on a shared base model.

A base model on a device is loaded once; each adapter of it is added to it with peft (`PeftModel.from_pretrained` for
the first, `load_adapter` for the next), which wraps the base's target layers in place. No adapter is active by
default, so the base serves exactly as before (a LoRA layer with no active adapter returns its base layer's output).
Each adapter is served through an `AdapterView`: the base model with that adapter switched on for the length of one
call. The calls of one device run one at a time on its worker thread (services/registry.py), so a view's switch
never meets another's: requests for two adapters of one base, and for the base itself, keep their own outputs
when they arrive together.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from ..errors import ModelLoadError

ADAPTER_CONFIG = "adapter_config.json"
PEFT_TASKS = {"CAUSAL_LM": "causal-lm", "SEQ_2_SEQ_LM": "seq2seq", None: "diffusion"}  # peft task_type → the
# family of its base (None: a model peft has no task for, the UNet of a diffusers pipeline)


def base_ref(config: dict, where: str) -> str:
    """The base model an adapter names (adapter_config.json's `base_model_name_or_path`)."""
    ref = config.get("base_model_name_or_path")
    if not isinstance(ref, str) or not ref.strip():
        raise ModelLoadError(f"{where}: adapter_config.json names no base model (base_model_name_or_path)")
    return ref.strip()


def base_of_folder(path: Path) -> str | None:
    """The base an adapter folder names, or None when its config does not say (never raises: listings use it)."""
    import json

    try:
        config = json.loads((path / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        return base_ref(config, path.name) if isinstance(config, dict) else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ModelLoadError):
        return None


def check_adapter_config(config: dict, where: str) -> None:
    """What this app serves of PEFT's formats: LoRA on the layers of a causal LM, a seq2seq model or a diffusion
    pipeline's UNet, no extra trained modules saved beside it that would need unpickling or code."""
    if config.get("peft_type") != "LORA":
        raise ModelLoadError(f"{where}: a {str(config.get('peft_type'))[:30]} adapter; AIGC Hub serves LoRA adapters")
    if config.get("task_type") not in PEFT_TASKS:
        raise ModelLoadError(f"{where}: a LoRA adapter for {str(config.get('task_type'))[:30]}; AIGC Hub serves "
                             "adapters of causal LMs, seq2seq models and diffusion UNets")
    mapping = config.get("auto_mapping")
    if mapping and not _names_a_diffusers_class(mapping):
        raise ModelLoadError(f"{where}: the adapter names a model class of its own (auto_mapping): that would run "
                             "remote code, which AIGC Hub never does")


def _names_a_diffusers_class(mapping: object) -> bool:
    """peft's note of a base that is not a transformers model (a diffusers UNet): a class diffusers has, nothing
    to import from elsewhere. (The base is loaded by its own folder here; the note is never imported.)"""
    import diffusers

    return (isinstance(mapping, dict) and str(mapping.get("parent_library", "")).startswith("diffusers.models.")
            and isinstance(mapping.get("base_model_class"), str) and hasattr(diffusers, mapping["base_model_class"]))


class Adapters:
    """The adapters added to one loaded base model: peft's wrapper around it, and a short peft name per ref."""

    def __init__(self, model: Any) -> None:
        self.model = model  # the base model as it is served
        # What peft wraps in place: the model itself, or a diffusers pipeline's UNet (a pipeline is no nn.Module).
        self.wrapped = model if isinstance(model, torch.nn.Module) else model.unet
        self.peft: Any = None
        self.names: dict[str, str] = {}  # ref → peft adapter name (refs hold "/", peft names may not)
        self.layers: list[Any] = []
        self._count = 0

    def add(self, ref: str, path: Path) -> "AdapterView":
        from peft import PeftModel
        from peft.tuners.tuners_utils import BaseTunerLayer

        self._count += 1
        name = f"adapter_{self._count}"
        try:
            if self.peft is None:
                self.peft = PeftModel.from_pretrained(self.wrapped, str(path), adapter_name=name,
                                                      is_trainable=False)
            else:
                self.peft.load_adapter(str(path), adapter_name=name, is_trainable=False)
        except (ValueError, KeyError, RuntimeError, OSError) as e:  # layers the base does not have, shapes
            raise ModelLoadError(f"{ref}: the adapter does not fit its base ({type(e).__name__}: {str(e)[:200]})"
                                 ) from None
        self.names[ref] = name
        self.layers = [m for m in self.wrapped.modules() if isinstance(m, BaseTunerLayer)]
        _activate(self.layers, [])  # the base itself serves without any adapter
        return AdapterView(self, name)

    def remove(self, ref: str) -> None:
        name = self.names.pop(ref, None)
        if name is not None and self.peft is not None:
            self.peft.base_model.delete_adapter(name)
            _activate(self.layers, [])

    @contextmanager
    def active(self, name: str) -> Iterator[None]:
        _activate(self.layers, [name])
        try:
            yield
        finally:
            _activate(self.layers, [])


def _activate(layers: list[Any], names: list[str]) -> None:
    # What BaseTunerLayer.set_adapter sets, without its per-call walk over every adapter's parameters to set
    # requires_grad (nothing trains here): a few microseconds per layer per call.
    for layer in layers:
        layer._active_adapter = names


@contextmanager
def switched(model: Any) -> Iterator[Any]:
    """The object to call for `model`: an adapter view's base with that adapter on for the block, or `model` itself.
    For code that takes a served model's parts apart (a pipeline rebuilt around another scheduler) instead of
    calling it."""
    if not isinstance(model, AdapterView):
        yield model
        return
    with model._adapters.active(model._name):
        yield model._adapters.model


class AdapterView:
    """The base model as one adapter serves it: calls and `generate` run with that adapter on; everything else
    (config, device, generation_config) is the base model's."""

    def __init__(self, adapters: Adapters, name: str) -> None:
        self._adapters, self._name = adapters, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._adapters.active(self._name):
            return self._adapters.model(*args, **kwargs)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        with self._adapters.active(self._name):
            return self._adapters.model.generate(*args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._adapters.model, attr)
