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


def _texts(history):
    """Message texts from the Chatbot value a client receives (Gradio 6: content as a list of parts)."""
    from aigc_hub.ui.chat_view import plain_messages

    return [(m["role"], m["content"]) for m in plain_messages(history)]


def test_text_tab_chat_view_over_the_api(launched, hf_cache, chat_llama, tiny_gan):
    from gradio_client import Client

    from aigc_hub import hub

    hf_cache(REF, chat_llama)
    hub.push(tiny_gan, "me/tiny-gan")
    url, _ = launched(image_model="me/tiny-gan", text_model=REF, extra_models=[REF], preload=False)
    client = Client(url, verbose=False)
    sampling = ["Be brief.", 16, 0.8, 50, 0.95, 1.0, "", 7]  # system, max new, temp, top-k, top-p, penalty, stops, seed
    updates = list(client.submit(REF, "Hello!", [], *sampling[:1], 64, *sampling[2:], api_name="/chat"))
    assert len(updates) > 3 and "Stopped" not in updates[-1][3]  # streamed, and it ran to its end
    history, box, seed, _ = client.predict(REF, "Hello!", [], *sampling, api_name="/chat")
    assert box == "" and seed == 7  # Send clears the message box
    (role1, text1), (role2, answer) = _texts(history)
    assert (role1, text1) == ("user", "Hello!") and role2 == "assistant" and answer
    history2, _, _, _ = client.predict(REF, "And then?", history, *sampling, api_name="/chat")
    assert [r for r, _ in _texts(history2)] == ["user", "assistant", "user", "assistant"]
    assert _texts(history2)[1][1] == answer  # the earlier turn is kept as it was
    again, _, _, _ = client.predict(REF, history2, *sampling, api_name="/chat_regenerate")
    assert _texts(again)[:3] == _texts(history2)[:3] and _texts(again)[3] == _texts(history2)[3]  # same seed
    long = client.submit(REF, "Tell a long story.", [], *sampling[:1], 2000, *sampling[2:], api_name="/chat")
    while not long.outputs():  # the first streamed update: it is generating
        long.status()
    assert client.predict(api_name="/stop_chat") == "Stopped."
    history3, _, _, note = list(long)[-1] if not long.done() else long.outputs()[-1]
    assert "Stopped." in note and len(_texts(history3)[-1][1]) < 2000
    plain = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]  # strings, as clients send
    assert _texts(client.predict(REF, "Bye", plain, *sampling, api_name="/chat")[0])[:2] == [
        ("user", "Hi"), ("assistant", "Hello.")]
    for bad, words in [(["", [], *sampling], "empty"), (["hi", "not a list", *sampling], "chat history"),
                       (["hi", [{"role": "user"}], *sampling], "chat history|message 1"),
                       (["hi", [{"role": "tool", "content": "x"}], *sampling], "role")]:
        with pytest.raises(Exception, match=words):
            client.predict(REF, *bad, api_name="/chat")
    assert _texts(client.predict(REF, "Hi", [], *sampling, api_name="/chat")[0])[-1][1], "still serving"


def test_a_stream_prints_the_same_text_however_its_tokens_arrive():
    """Byte-fallback tokens (`<0x72>`) decode as a run: "r" alone, but one \\ufffd per byte once an invalid run
    goes on. The streamed text must not depend on how many tokens the consumer found waiting."""
    import queue

    from aigc_hub.services.text import _TokenQueue
    from tiny_hub_models import llama_tokenizer

    tok = llama_tokenizer()
    ids = tok.convert_tokens_to_ids(["1", "<0x72>", "<0x9F>", "<0x9F>", "a", "<0xC3>", "<0xA9>", "b"])

    class OneAtATime(queue.Queue):
        def empty(self) -> bool:  # the consumer never sees more than one waiting: it decodes after each token
            return True

    def streamed(q: _TokenQueue) -> str:
        for i in ids:
            q.queue.put([i])
        q.end()
        return "".join(q.text(tok, timeout=5))

    piled, single = _TokenQueue(), _TokenQueue()
    single.queue = OneAtATime()
    expected = tok.decode(ids, skip_special_tokens=True)
    assert streamed(piled) == streamed(single) == expected == "1\ufffd\ufffd\ufffda\u00e9b"


@pytest.mark.slow  # starts the CLI as a process
def test_cli_chats_with_an_hf_id(service, tmp_hub, tmp_path, short_lm):
    """`generate chat`: the same answer as the service for the same seed, a history file, clear refusals."""
    import json
    import sys

    from conftest import run

    history = [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."}]
    messages = [*history, {"role": "user", "content": "How are you?"}]
    expected = "".join(service.chat(REF, messages, SamplingSettings(max_new_tokens=12), seed=5, system="Be brief.")
                       .chunks)
    (tmp_path / "history.json").write_text(json.dumps(history))
    env = {"AIGC_HUB_HOME": str(tmp_hub), "HF_HUB_CACHE": str(tmp_path / "hf-cache"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "aigc_hub", "generate", "chat", "--max-new-tokens", "12", "--seed", "5"]
    proc = run([*cmd, "--model", REF, "--message", "How are you?", "--system", "Be brief.",
                "--history", str(tmp_path / "history.json")], env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected + "\n" and "seed 5, 12 new tokens" in proc.stderr
    (tmp_path / "bad.json").write_text('{"role": "user"}')
    for extra, words in [(["--model", REF, "--message", "hi", "--history", str(tmp_path / "bad.json")], "JSON list"),
                         (["--model", str(short_lm), "--message", "hi"], "no chat template"),
                         (["--model", REF, "--message", " "], "empty")]:
        bad = run([*cmd, *extra], env=env)
        assert bad.returncode == 2 and words in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
