"""Chat with a model whose tokenizer ships a chat template: a tiny random Llama with TinyLlama-Chat's template, served
from an HF id in an offline Hugging Face cache, through the service."""

from __future__ import annotations

import pytest

from aigc_hub.errors import GenerationError
from aigc_hub.services import ModelRegistry, TextService
from aigc_hub.services.text import SamplingSettings
from tiny_hub_models import make_chat_llama

REF = "TinyLlama/tiny-chat"


@pytest.fixture(scope="session")
def chat_llama(tmp_path_factory):
    return make_chat_llama(tmp_path_factory.mktemp("chat") / "tiny-chat", context=128)


@pytest.fixture
def service(tmp_hub, hf_cache, chat_llama):
    hf_cache(REF, chat_llama)
    return TextService(ModelRegistry())


def test_the_models_own_template_shapes_the_prompt_and_the_answer_is_seeded(service, chat_llama):
    from transformers import AutoTokenizer

    assert service.has_chat(REF)
    messages = [{"role": "user", "content": "Hello!"}]
    stream = service.chat(REF, messages, SamplingSettings(max_new_tokens=12), seed=3, system="Be brief.")
    answer = "".join(stream.chunks)
    expected = AutoTokenizer.from_pretrained(str(chat_llama)).apply_chat_template(
        [{"role": "system", "content": "Be brief."}, *messages], add_generation_prompt=True)["input_ids"]
    assert stream.prompt_tokens == len(expected) and stream.tokens == 12 and answer
    again = service.chat(REF, messages, SamplingSettings(max_new_tokens=12), seed=3, system="Be brief.")
    assert "".join(again.chunks) == answer
    other = service.chat(REF, messages, SamplingSettings(max_new_tokens=12), seed=3)  # no system prompt
    assert other.prompt_tokens < stream.prompt_tokens


def test_a_long_chat_leaves_out_its_oldest_turns(service):
    turn = "word " * 12
    history = []
    for i in range(8):
        history += [{"role": "user", "content": f"{i} {turn}"}, {"role": "assistant", "content": turn}]
    history.append({"role": "user", "content": "last question?"})
    stream = service.chat(REF, history, SamplingSettings(max_new_tokens=40), seed=0, system="sys")
    "".join(stream.chunks)
    assert stream.prompt_tokens <= 128 - 40
    assert any("oldest messages were left out" in n for n in stream.notices)


def test_a_model_without_a_template_has_no_chat(tmp_hub, short_lm):
    service = TextService(ModelRegistry())
    assert not service.has_chat(str(short_lm))
    with pytest.raises(GenerationError, match="no chat template"):
        service.chat(str(short_lm), [{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("messages, system, words", [
    ([], None, "no messages"),
    ("hi", None, "no messages"),
    ([{"role": "assistant", "content": "hi"}], None, "last message must be the user's"),
    ([{"role": "tool", "content": "x"}], None, "role"),
    ([{"role": "user", "content": ""}], None, "message 1 is empty"),
    ([{"role": "user"}], None, "message 1 is empty"),
    ([{"role": "user", "content": "x" * 60_000}], None, "limit"),
    ([{"role": "user", "content": "hi"}] * 201, None, "limit is 200"),
    ([{"role": "user", "content": "hi"}], 5, "system prompt"),
])
def test_bad_chats_are_refused_before_any_work(service, messages, system, words):
    with pytest.raises(GenerationError, match=words):
        service.chat(REF, messages, system=system)
    assert not service.registry.loaded(), "refused before the model was loaded"
