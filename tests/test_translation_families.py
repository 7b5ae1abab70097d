"""Translation models as people share them on the Hub, each with its own convention for asking for a direction:
tiny random-weight OPUS-MT (one direction, multi-target), M2M100 and T5 models with their real tokenizer classes and
file layouts (sentencepiece files, no tokenizer.json), served from HF ids in an offline cache."""

from __future__ import annotations

import sys

import pytest

from aigc_hub.errors import GenerationError, ModelLoadError
from aigc_hub.models.translation_conventions import detect, language_name
from aigc_hub.services import ModelRegistry, TranslationService
from conftest import run
from tiny_hub_models import make_m2m100, make_mbart50, make_nllb, make_opus_mt, make_t5

MODELS = {  # HF id → (builder, expected convention, a direction it does, one it does not)
    "Helsinki-NLP/opus-mt-en-zh": (lambda out: make_opus_mt(out), "opus-mt", ("en", "zh"), ("zh", "en")),
    "Helsinki-NLP/opus-mt-en-mul": (lambda out: make_opus_mt(out, ["zho", "fra", "deu"], ["en", "zh", "fr", "de"]),
                                    "opus-mt-multi", ("en", "fra"), ("fra", "en")),
    "facebook/m2m100-tiny": (make_m2m100, "m2m100", ("en", "fr"), ("en", "xx")),
    "facebook/nllb-200-tiny": (make_nllb, "nllb", ("eng_Latn", "fra_Latn"), ("eng_Latn", "fr")),
    "facebook/mbart-large-50-many-to-many-tiny": (make_mbart50, "mbart-50", ("en_XX", "fr_XX"), ("en_XX", "fr")),
    "google-t5/t5-tiny": (make_t5, "t5", ("en", "de"), ("de", "en")),
}


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq2seq")
    return {ref: builder(root / ref.split("/")[1]) for ref, (builder, *_) in MODELS.items()}


@pytest.fixture
def service(tmp_hub, hf_cache, built):
    for ref, folder in built.items():
        hf_cache(ref, folder)
    return TranslationService(ModelRegistry())


def test_sentencepiece_layouts_as_the_hub_ships_them(built):
    files = {ref: {p.name for p in folder.iterdir()} for ref, folder in built.items()}
    assert {"source.spm", "target.spm", "vocab.json"} <= files["Helsinki-NLP/opus-mt-en-zh"]
    assert {"sentencepiece.bpe.model", "vocab.json"} <= files["facebook/m2m100-tiny"]
    assert "spiece.model" in files["google-t5/t5-tiny"]
    assert {"sentencepiece.bpe.model", "tokenizer.json"} <= files["facebook/nllb-200-tiny"]  # NLLB ships both
    assert "sentencepiece.bpe.model" in files["facebook/mbart-large-50-many-to-many-tiny"]
    assert not any("tokenizer.json" in names for ref, names in files.items() if "nllb" not in ref)


@pytest.mark.parametrize("ref", list(MODELS))
def test_each_convention_is_detected_and_translates_from_the_hub_id(service, ref):
    _, kind, good, bad = MODELS[ref]
    conv = service.convention(ref)
    assert conv.kind == kind and conv.supports(*good) and not conv.supports(*bad)
    result = service.translate(ref, "Hello.\n\nThe cat sees a tree.", *good, beams=2, n_best=2)
    assert len(result.lines) == 3 and result.lines[1].text == "" and len(result.lines[2].alternatives) == 2
    again = service.translate(ref, "Hello.\n\nThe cat sees a tree.", *good, beams=2, n_best=2)
    assert again.text == result.text  # beam search: deterministic
    with pytest.raises(GenerationError, match=f"does not translate {bad[0]}→{bad[1]}"):
        service.translate(ref, "Hello.", *bad)


def test_the_direction_reaches_the_model_as_each_family_expects(service):
    """What the model is given: the tag, the task prefix, or the source language token and the forced target."""
    entry = service.registry.get("facebook/m2m100-tiny")
    conv = service.convention("facebook/m2m100-tiny")
    extra = conv.prepare(entry.tokenizer, "en", "fr")
    assert extra == {"forced_bos_token_id": entry.tokenizer.convert_tokens_to_ids("__fr__")}
    assert entry.tokenizer("Hello.").input_ids[0] == entry.tokenizer.convert_tokens_to_ids("__en__")
    multi = service.registry.get("Helsinki-NLP/opus-mt-en-mul")
    text = service.convention("Helsinki-NLP/opus-mt-en-mul").source_text("Hello.", "en", "fra")
    assert multi.tokenizer(text).input_ids[0] == multi.tokenizer.convert_tokens_to_ids(">>fra<<")
    for ref, src, tgt in (("facebook/nllb-200-tiny", "eng_Latn", "fra_Latn"),
                          ("facebook/mbart-large-50-many-to-many-tiny", "en_XX", "fr_XX")):
        entry = service.registry.get(ref)
        extra = service.convention(ref).prepare(entry.tokenizer, src, tgt)
        assert extra == {"forced_bos_token_id": entry.tokenizer.convert_tokens_to_ids(tgt)}
        ids = entry.tokenizer("Hello.").input_ids
        assert ids[0] == entry.tokenizer.convert_tokens_to_ids(src) and ids[-1] == entry.tokenizer.eos_token_id
        assert entry.tokenizer.convert_tokens_to_ids(tgt) != entry.tokenizer.unk_token_id
    t5 = service.convention("google-t5/t5-tiny")
    assert t5.source_text("Hi.", "en", "de") == "translate English to German: Hi."
    assert sorted(t5.directions()) == [("en", "de"), ("en", "fr"), ("en", "ro")]  # summarization is not one


def test_directions_that_cannot_be_told_are_refused_in_one_line(tmp_hub, built, tmp_path):
    import shutil

    anonymous = tmp_path / "my-marian"
    shutil.copytree(built["Helsinki-NLP/opus-mt-en-zh"], anonymous)
    (anonymous / "README.md").write_text("---\nlicense: mit\n---\n")  # no languages, no telling name
    with pytest.raises(ModelLoadError, match="direction cannot be told"):
        TranslationService(ModelRegistry()).convention(str(anonymous))
    (anonymous / "README.md").write_text("---\nlanguage:\n- zh\n- en\n---\n")
    assert TranslationService(ModelRegistry()).convention(str(anonymous)).pairs == (("zh", "en"),)


def test_language_names():
    assert language_name("en") == "English (en)" and language_name("zho_Hans") == "Chinese (Simplified) (zho_Hans)"
    assert language_name("en_XX") == "English (en_XX)" and language_name("fra") == "French (fra)"


@pytest.mark.slow  # starts the CLI as a process
def test_cli_translates_with_an_hf_id(tmp_hub, built, hf_cache, tmp_path):
    hf_cache("facebook/m2m100-tiny", built["facebook/m2m100-tiny"])
    lines = tmp_path / "in.txt"
    lines.write_text("Hello.\nThe cat.\n")
    env = {"AIGC_HUB_HOME": str(tmp_hub), "HF_HUB_CACHE": str(tmp_path / "hf-cache"), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "aigc_hub", "translate", "--model", "facebook/m2m100-tiny", "--input", str(lines),
           "--src", "en", "--beams", "2", "--tgt"]
    proc = run([*cmd, "fr"], env=env)
    assert proc.returncode == 0 and proc.stdout.count("\n") == 2, proc.stderr
    bad = run([*cmd, "klingon"], env=env)
    assert bad.returncode == 2 and "between its 100 languages" in bad.stderr


def test_translation_tab_serves_each_family_over_the_api(launched, service, built, tiny_gan):
    from gradio_client import Client

    from aigc_hub import hub

    hub.push(tiny_gan, "me/tiny-gan")
    url, _ = launched(image_model="me/tiny-gan", translation_model="facebook/m2m100-tiny", extra_models=list(MODELS),
                      preload=False)
    client = Client(url, verbose=False)
    for ref, (_, _, good, bad) in MODELS.items():
        text, table, _ = client.predict(ref, "Hello.\nThe cat.", *good, 2, 1, api_name="/translate")
        assert text.count("\n") == 1 and len(table["data"]) == 2
        with pytest.raises(Exception, match="does not translate"):
            client.predict(ref, "Hello.", *bad, 2, 1, api_name="/translate")


def test_detect_reads_files_only(built):
    from aigc_hub.families import read_config

    folder = built["Helsinki-NLP/opus-mt-en-mul"]
    conv = detect(read_config(folder), folder, "Helsinki-NLP/opus-mt-en-mul")
    assert conv.sources == ("en",) and conv.targets == ("zho", "fra", "deu")
