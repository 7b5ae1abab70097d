"""The one table of tasks and model families. Everything that asks "what kind of model is this" reads it.

A **task** is what a user does (image, text, translation): it has a tab, a service, a default model and a config
setting `<task>_model`. A **family** is a kind of checkpoint folder (a DCGAN, a causal LM, a seq2seq model): how it is
recognised from its folder, how it is loaded, which task it serves, and the card `pipeline_tag` and tags the training
scripts write for it.

The registry (loading), the hub listing (which tab lists a model), the UI (which tabs exist), the config and CLI
(`--image-model`, `--tabs`), the Spaces builder and the training scripts' cards all read these two tables. Adding a
family is one `Family` entry and its loader (in loaders.py); a new task adds one `Task`, its service and its tab.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import ModelLoadError
from .loaders import Loader, load_adapter, load_dcgan, load_diffusion, load_text_to_image, transformers_loader
from .remote import is_remote, load_remote


@dataclass(frozen=True)
class Task:
    key: str  # "image": also the tab id, the config setting `image_model` and the CLI option `--image-model`
    title: str  # the tab's title
    card_task: str  # the task name in the card's model-index
    default_model: str
    tab: str  # module under aigc_hub.ui with build(ctx, tab)
    service: str  # "module:Class" under aigc_hub.services
    train_hint: str  # what to do when the hub has no model for it yet
    service_settings: tuple[str, ...] = ()  # AppConfig settings passed to the service's constructor


@dataclass(frozen=True)
class Family:
    name: str
    task: str  # a key of TASKS
    pipeline_tag: str  # what its cards declare
    tags: tuple[str, ...]  # card tags every model of the family carries
    recognise: Callable[[dict], bool]  # from the parsed config file
    load: Loader
    config_file: str = "config.json"
    weights: str = "*.safetensors"  # glob, under the folder, of the weights it loads (sizes the device placement)
    remote: bool = False  # served elsewhere (remote.py): no weights here, its own lane instead of a device's
    base_families: tuple[str, ...] = ()  # an adapter (models/adapters.py), served on a loaded base of these families


TASKS: dict[str, Task] = {t.key: t for t in [
    Task("image", "Image", "image generation", "aigc-hub/dcgan-mnist", "image_tab", "image:ImageService",
         "train one with training/train_gan.py", ("max_images",)),
    Task("text", "Text", "text generation", "aigc-hub/gpt-tinyshakespeare", "text_tab", "text:TextService",
         "train one with training/train_text.py"),
    Task("translation", "Translation", "translation", "aigc-hub/translator-en-zh", "translation_tab",
         "translation:TranslationService", "train one with training/train_translation.py"),
]}
ADMIN_TABS = {"train": ("Train", "train_tab"), "models": ("Models", "models_tab")}  # tabs that serve no task:
# key → (title, module under aigc_hub.ui)


def _is_dcgan(config: dict) -> bool:
    return "model_type" not in config and {"resolution", "latent_dim", "channels"} <= config.keys()


def _architectures(config: dict) -> list[str]:
    found = config.get("architectures") or []
    return [a for a in found if isinstance(a, str)] if isinstance(found, list) else []


def _is_causal_lm(config: dict) -> bool:
    return any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in _architectures(config))


def _is_seq2seq(config: dict) -> bool:
    return bool(config.get("is_encoder_decoder")) and any(
        a.endswith(("MTModel", "ForConditionalGeneration")) for a in _architectures(config))


def _is_text_to_image(config: dict) -> bool:
    """A diffusers pipeline with a text encoder, a UNet and a VAE: the Stable Diffusion family (1.x, 2.x, XL)."""
    return _is_diffusion(config) and all(config.get(k) for k in ("text_encoder", "unet", "vae"))


def _is_adapter_of(task_type: str | None) -> Callable[[dict], bool]:
    """A PEFT adapter folder's adapter_config.json for a base of this peft task type (None: a model peft has no
    task for, here a diffusers UNet; LoRA is what is served: the others are refused by name when the folder is
    checked)."""
    return lambda config: "peft_type" in config and config.get("task_type") == task_type


def _is_diffusion(config: dict) -> bool:
    """A diffusers pipeline folder (model_index.json): which pipelines load is the loader's to say."""
    name = config.get("_class_name")
    return isinstance(name, str) and name.endswith("Pipeline")


FAMILIES: dict[str, Family] = {f.name: f for f in [
    # Adapters first: a PEFT folder may keep a copy of its base's config.json beside adapter_config.json.
    Family("causal-lm-lora", "text", "text-generation", ("lora", "peft"), _is_adapter_of("CAUSAL_LM"), load_adapter,
           config_file="adapter_config.json", weights="adapter_model.safetensors", base_families=("causal-lm",)),
    Family("seq2seq-lora", "translation", "translation", ("lora", "peft"), _is_adapter_of("SEQ_2_SEQ_LM"),
           load_adapter, config_file="adapter_config.json", weights="adapter_model.safetensors",
           base_families=("seq2seq",)),
    Family("diffusion-lora", "image", "text-to-image", ("lora", "peft", "diffusers"), _is_adapter_of(None),
           load_adapter, config_file="adapter_config.json", weights="adapter_model.safetensors",
           base_families=("diffusion", "text-to-image")),
    Family("dcgan", "image", "unconditional-image-generation", ("dcgan", "gan"), _is_dcgan, load_dcgan),
    Family("text-to-image", "image", "text-to-image", ("diffusers", "text-to-image"), _is_text_to_image,
           load_text_to_image, config_file="model_index.json", weights="*/*.safetensors"),
    Family("diffusion", "image", "unconditional-image-generation", ("diffusers", "ddpm"), _is_diffusion,
           load_diffusion, config_file="model_index.json", weights="unet/*.safetensors"),
    Family("causal-lm", "text", "text-generation", ("causal-lm",), _is_causal_lm,
           transformers_loader("AutoModelForCausalLM")),
    Family("openai-remote", "text", "text-generation", ("remote",), is_remote, load_remote, remote=True),
    Family("seq2seq", "translation", "translation", ("seq2seq", "translation"), _is_seq2seq,
           transformers_loader("AutoModelForSeq2SeqLM")),
]}


def tab_keys() -> list[str]:
    """Every tab the app can show, in order: one per task, then the admin tabs."""
    return [*TASKS, *ADMIN_TABS]


def read_config(path: Path, name: str = "config.json") -> dict:
    """The parsed config file of a model folder; ModelLoadError when it is missing or not a JSON object."""
    try:
        config = json.loads((path / name).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path.name}: {name} does not parse ({e})") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{path.name}: {name} must hold a JSON object")
    return config


def detect(config: dict, where: str = "the model") -> Family:
    """The family whose recogniser accepts `config`; ModelLoadError naming what is supported otherwise."""
    for family in FAMILIES.values():
        if family.recognise(config):
            return family
    if "peft_type" in config:  # an adapter of a kind or for a task not served: say which
        from .models.adapters import check_adapter_config

        check_adapter_config(config, where)
    kinds = ", ".join(FAMILIES)
    raise ModelLoadError(f"{where}: unsupported model type {str(config.get('model_type', 'unknown'))[:60]!r} "
                         f"(AIGC Hub serves: {kinds})")


def inspect_folder(path: Path, where: str) -> tuple[Family, dict]:
    """The family of a model folder and its parsed config file; ModelLoadError when no config file is there, one
    does not parse, or no family takes it."""
    names = list(dict.fromkeys(f.config_file for f in FAMILIES.values()))
    present = [name for name in names if (path / name).is_file()]
    if not present:
        raise ModelLoadError(f"{where}: no {' or '.join(names)} in the model folder")
    config: dict = {}
    for name in present:
        config = read_config(path, name)
        for family in FAMILIES.values():
            if family.config_file == name and family.recognise(config):
                _refuse_remote_code(config, where)
                if family.base_families:
                    from .models.adapters import check_adapter_config

                    check_adapter_config(config, where)
                return family, config
    return detect(config, where), config  # raises, naming what is supported


def checked_folder(path: Path, where: str | None = None) -> tuple[Family, dict]:
    """The family and config file of a model folder, checked before any weights are read: refuses folders whose
    only weights are pickles, and folders without the family's safetensors."""
    where = where or path.name
    try:
        family, config = inspect_folder(path, where)
    except ModelLoadError:
        _refuse_pickles(path, where)  # a pickle checkpoint says so first, whatever else is wrong
        raise
    if not family.remote and not list(path.glob(family.weights)):
        sub = family.weights.rpartition("/")[0]
        _refuse_pickles(path / sub if sub else path, where)
        place = f"its {sub}/ folder" if sub else "the model folder"
        raise ModelLoadError(f"{where}: no .safetensors weights in {place}")
    return family, config


def _refuse_pickles(folder: Path, where: str) -> None:
    if list(folder.glob("*.safetensors")):
        return
    pickles = [p.name for p in folder.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    if pickles:
        raise ModelLoadError(f"{where}: only pickle weights ({', '.join(pickles)}); AIGC Hub loads safetensors only "
                             "(convert with safetensors.torch.save_file)")


def _refuse_remote_code(config: dict, where: str) -> None:
    """A config whose model type transformers does not know, with an `auto_map` naming the repository's own code:
    only that code could load it. (Configs that keep an `auto_map` for a type transformers now has load natively.)"""
    if "auto_map" not in config or "model_type" not in config:
        return
    from transformers import CONFIG_MAPPING

    kind = str(config["model_type"])[:60]
    if kind not in CONFIG_MAPPING:
        raise ModelLoadError(f"{where}: model type {kind!r} needs the repository's own code (auto_map in "
                             "config.json), and AIGC Hub never runs remote code")


def family_of_folder(path: Path | None) -> Family | None:
    """The family of a model folder, or None when it has no readable config or none matches (never raises).
    Each config file is read once, however many families look at it."""
    if path is None:
        return None
    configs: dict[str, dict | None] = {}
    for family in FAMILIES.values():
        name = family.config_file
        if name not in configs:
            try:
                configs[name] = read_config(path, name) if (path / name).is_file() else None
            except ModelLoadError:
                configs[name] = None
        if configs[name] is not None and family.recognise(configs[name]):
            return family
    return None


def card_fields(family: str, extra_tags: list[str] | tuple[str, ...] = ()) -> dict:
    """The card metadata a family's training script writes: pipeline tag, model-index task, tags."""
    fam = FAMILIES[family]
    tags = list(dict.fromkeys([*fam.tags, *extra_tags]))
    return {"pipeline_tag": fam.pipeline_tag, "task": TASKS[fam.task].card_task, "tags": tags}
