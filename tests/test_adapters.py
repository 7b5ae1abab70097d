"""LoRA adapters served on a shared base: stock peft's outputs, the base loaded once and left as it was, adapters
of one base keeping their own outputs together, and one-line refusals. In-process, tiny models (fast tier)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from aigc_hub import hub
from aigc_hub.errors import ModelLoadError
from aigc_hub.services import ModelRegistry, SamplingSettings, TextService
from tiny_hub_models import make_chat_llama, make_lora, make_opus_mt

PROMPT = "<|user|>\nWhat is 3 plus 4?</s>\n<|assistant|>\n"


@pytest.fixture
def shared(tmp_hub, tmp_path):
    """A base chat model in the hub and two adapters of it."""
    base = make_chat_llama(tmp_path / "base")
    hub.push(base, "me/base")
    for k in (1, 2):
        hub.push(make_lora(base, tmp_path / f"lora{k}", "me/base", seed=k), f"me/lora-{k}")
    return base


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_an_adapter_serves_what_stock_peft_computes_and_leaves_its_base_as_it_was(shared, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = AutoTokenizer.from_pretrained(str(shared))(PROMPT, return_tensors="pt", add_special_tokens=False).input_ids
    fresh = AutoModelForCausalLM.from_pretrained(str(shared)).eval()
    before = logits(fresh, ids)
    stock = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(shared)).eval(),
                                      str(hub.resolve("me/lora-1")))
    registry = ModelRegistry()
    base = registry.get("me/base")
    one = registry.get("me/lora-1")
    assert torch.allclose(logits(one.model, ids), logits(stock, ids), atol=1e-6)
    assert not torch.allclose(logits(one.model, ids), before, atol=1e-3), "the adapter changes the output"
    assert torch.equal(logits(base.model, ids), before), "the base serves exactly as without adapters"
    two = registry.get("me/lora-2")
    assert one.model._adapters is two.model._adapters, "the second adapter is added to the same base"
    assert [m.ref for m in registry.loaded()].count("me/base") == 1
    assert "not loaded again" in two.describe() and "me/base" in two.describe()
    registry.unload("me/lora-1")
    assert torch.equal(logits(base.model, ids), before)
    assert torch.allclose(logits(two.model, ids), logits(PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(shared)).eval(), str(hub.resolve("me/lora-2"))), ids), atol=1e-6)
    registry.unload("me/base")  # a base takes its adapters with it
    assert registry.loaded() == []


def test_the_hub_lists_an_adapter_with_its_base(shared):
    entries = {e.ref: e for e in hub.list_models()}
    assert entries["me/lora-1"].task == "text" and entries["me/lora-1"].family == "causal-lm-lora"
    assert entries["me/lora-1"].base == "me/base" and entries["me/base"].base is None


def test_adapters_of_one_base_keep_their_own_text_when_they_arrive_together(shared):
    service = TextService(ModelRegistry())

    def text(ref: str) -> str:
        return service.generate(ref, PROMPT, SamplingSettings(max_new_tokens=24), seed=5)[0]

    alone = {ref: text(ref) for ref in ("me/base", "me/lora-1", "me/lora-2")}
    assert len(set(alone.values())) == 3, "each adapter writes its own text"
    together: dict[str, list[str]] = {ref: [] for ref in alone}
    start = threading.Barrier(9)

    def ask(ref: str) -> None:
        start.wait()
        together[ref].append(text(ref))

    threads = [threading.Thread(target=ask, args=(ref,)) for ref in alone for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert together == {ref: [alone[ref]] * 3 for ref in alone}


def test_adapters_that_cannot_be_served_are_refused_in_one_line(tmp_hub, tmp_path, shared):
    lora = hub.resolve("me/lora-1")

    def variant(name: str, change) -> str:
        folder = tmp_path / name
        folder.mkdir()
        for f in lora.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        change(folder)
        if not list(folder.glob("*.safetensors")):
            return str(folder)  # the hub takes no pickles: served as a folder
        hub.push(folder, f"me/{name}")
        return f"me/{name}"

    def config(**fields):
        def change(folder: Path) -> None:
            data = json.loads((folder / "adapter_config.json").read_text())
            (folder / "adapter_config.json").write_text(json.dumps({**data, **fields}))
        return change

    def pickled(folder: Path) -> None:
        (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")

    make_opus_mt(tmp_path / "mt")
    hub.push(tmp_path / "mt", "me/mt")
    cases = {
        variant("no-base", config(base_model_name_or_path="someone/not-downloaded")): "is not here",
        variant("other-family", config(base_model_name_or_path="me/mt")): "its base me/mt is a seq2seq model",
        variant("pickle", pickled): "only pickle weights",
        variant("own-code", config(auto_mapping={"base_model_class": "MyModel"})): "remote code",
        variant("code-elsewhere", config(auto_mapping={"base_model_class": "UNet2DModel",
                                                       "parent_library": "mylib.models"})): "remote code",
        variant("not-lora", config(peft_type="PREFIX_TUNING")): "serves LoRA adapters",
    }
    registry = ModelRegistry()
    for ref, words in cases.items():
        with pytest.raises(ModelLoadError) as e:
            registry.get(ref)
        assert words in str(e.value) and "\n" not in str(e.value), (ref, str(e.value))


def test_a_translation_adapter_is_asked_as_its_base_and_translates_as_stock_peft(tmp_hub, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from aigc_hub.services import TranslationService

    base = make_opus_mt(tmp_path / "opus-mt-en-zh")
    hub.push(base, "me/opus-mt-en-zh")
    hub.push(make_lora(base, tmp_path / "mt-lora", "me/opus-mt-en-zh", task_type="SEQ_2_SEQ_LM"), "me/mt-lora")
    service = TranslationService(ModelRegistry())
    assert service.directions("me/mt-lora") == service.directions("me/opus-mt-en-zh") == [("en", "zh")]
    served = service.translate("me/mt-lora", ["the cat sees a dog."], "en", "zh", beams=1)
    stock = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(str(base)).eval(),
                                      str(hub.resolve("me/mt-lora")))
    tok = AutoTokenizer.from_pretrained(str(base))
    ids = tok(["the cat sees a dog."], return_tensors="pt")
    with torch.no_grad():
        out = stock.generate(**ids, num_beams=1, do_sample=False, max_new_tokens=64)
    text = served.lines[0].alternatives[0].text
    # The same greedy path; the service stops at its length budget for the source, stock generate later.
    assert len(text) > 10 and tok.decode(out[0], skip_special_tokens=True).startswith(text)
    plain = service.translate("me/opus-mt-en-zh", ["the cat sees a dog."], "en", "zh", beams=1)
    assert plain.lines[0].alternatives[0].text != text, "the adapter changes the translation; the base does not"
