"""Translation path: shared tokenizer, grouped split, tiny train → push → stock load, service, tab, CLI."""

from __future__ import annotations

import json
import re
import sys

import pytest
from gradio_client import Client

from aigc_hub import hub
from aigc_hub.services import GenerationError, ModelRegistry, TranslationService
from conftest import EN_ZH, REPO, TINY_MT, is_user_error, resume_from_kept_checkpoint, run

LINES = ["Hello.", "", "How are you?", "I like tea.", "", "Where is the station?"]


def train(pairs_file, out, *extra):
    proc = run([sys.executable, str(REPO / "training" / "train_translation.py"), "--dataset", str(pairs_file),
                "--output_dir", str(out), *TINY_MT, *extra])
    assert proc.returncode == 0, proc.stderr[-5000:]
    return proc


def test_tokenizer_handles_mixed_chinese_english_and_tags():
    from training.text_tokenizers import train_unigram_tokenizer

    texts = ["我是学生。", "你好，世界！", "Hello, world!", "I am a student.", "他喜欢喝茶。", "We like tea."] * 30
    tok = train_unigram_tokenizer(texts, 200, special_tokens=[">>en<<", ">>zh<<"])
    for sample in ["我是学生。", "Hello, world!", "我是 a student 他喜欢 tea", "你好，world！"]:
        ids = tok(sample)["input_ids"]
        assert ids[-1] == tok.eos_token_id
        assert tok.decode(ids, skip_special_tokens=True) == sample
    tagged = tok(">>zh<< Hello, world!")["input_ids"]
    assert tagged[0] == tok.convert_tokens_to_ids(">>zh<<"), "a tag is one token, never split"
    assert tok.decode(tok("你好，世界！")["input_ids"], skip_special_tokens=True) == "你好，世界！", "NFKC would turn ，！ to ASCII"
    assert tok.unk_token_id in tok("龘")["input_ids"], "an unseen character is <unk>, not an error"


def test_chinese_characters_are_pieces_of_their_own_so_english_keeps_its_words():
    """On the starter's Tatoeba pairs, learned multi-character Chinese pieces ("好。", "了吗？") took 5,200 of 8,000
    entries and cut "Hello" into "▁He ll o", the pieces of "He'll": the tab's own example came back as "他会。"."""
    from training.text_tokenizers import train_unigram_tokenizer

    if not EN_ZH.exists():
        pytest.skip(f"needs the Tatoeba pairs at {EN_ZH}")
    rows = [json.loads(line) for line in EN_ZH.read_text(encoding="utf-8").splitlines()]
    tok = train_unigram_tokenizer([r["en"] for r in rows] + [r["zh"] for r in rows], 8000, [">>en<<", ">>zh<<"])
    assert tok.tokenize("你好吗？") == ["▁", "你", "好", "吗", "？"]
    assert tok.tokenize("Hello.") == ["▁Hello", "."] and tok.tokenize("Help!")[0] == "▁Hel"  # was "▁He l p"
    for sample in ["你好吗？Hello, Tom!", "他说 Hello 了。", "Happy birthday, 汤姆！"]:
        assert tok.decode(tok(sample)["input_ids"], skip_special_tokens=True) == sample
    learned = train_unigram_tokenizer(["你好吗？", "你好。"] * 40, 60, cjk_characters=False)
    assert learned.tokenize("你好吗？")[0] == "▁你好", "the old behaviour, when asked for"


def test_grouped_split_shares_no_sentence(pairs_file):
    from training.translation_data import grouped_split, load_pairs

    pairs = load_pairs(str(pairs_file), ("en", "zh"))
    train_pairs, val = grouped_split(pairs, 10, seed=0)
    assert len(train_pairs) + len(val) == len(pairs) and 0.08 * len(pairs) <= len(val) <= 0.12 * len(pairs)
    for lang in ("en", "zh"):
        assert not set(train_pairs.sentences[lang]) & set(val.sentences[lang])
    sources, refs = val.references("en", "zh")
    assert len(sources) == len(set(sources)) and sum(len(r) for r in refs) == len(val)


def test_a_phrasebook_only_trains_repeated_and_never_touches_validation(pairs_file, tmp_path):
    from training.train_translation import load_splits, parse_args
    from training.translation_data import load_pairs

    pairs = load_pairs(str(pairs_file), ("en", "zh"))
    common = ["--dataset", str(pairs_file), "--source_lang", "en", "--target_lang", "zh", "--output_dir", "x",
              "--validation_split_percentage", "10"]
    train0, val0 = load_splits(parse_args(common))
    held_out = (val0.sentences["en"][0], "一个新的说法。")  # shares its English with validation: must be dropped
    book = [("Happy birthday!", "生日快乐！"), ("Help!", "救命！"), held_out]  # in no Tatoeba pair
    phrasebook = tmp_path / "phrasebook.jsonl"
    phrasebook.write_text("".join(json.dumps({"en": e, "zh": z}, ensure_ascii=False) + "\n" for e, z in book))
    train, val = load_splits(parse_args(common + ["--extra_train_file", str(phrasebook), "--extra_train_repeat", "3"]))
    assert val.sentences == val0.sentences, "the split is the one it would be without a phrasebook"
    added = list(zip(train.sentences["en"], train.sentences["zh"]))[len(train0):]
    assert len(train0) < len(pairs) and added == book[:2] * 3
    with pytest.raises(SystemExit, match="at least 1"):
        load_splits(parse_args(common + ["--extra_train_file", str(phrasebook), "--extra_train_repeat", "0"]))


def test_the_starters_phrasebook_is_everyday_pairs_of_both_languages():
    from aigc_hub.evaluation.everyday_phrases import UNSEEN
    from aigc_hub.services.scripts import foreign_script

    rows = [json.loads(line) for line in (REPO / "training/recipes/phrasebook-en-zh.jsonl").read_text().splitlines()]
    assert len(rows) >= 200 and len({r["en"] for r in rows}) == len(rows), "one line per English phrase"
    for r in rows:
        assert set(r) == {"en", "zh"}, r
        assert foreign_script(r["en"], "en") is None and foreign_script(r["zh"], "zh") is None, r
    unseen = {p for table in UNSEEN.values() for p in table}
    assert not unseen & {s for r in rows for s in r.values()}, "the held-out phrases stay out of training"


def test_tiny_run_loads_with_stock_transformers_both_ways(tiny_mt, tmp_hub):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    hub.push(tiny_mt, "me/tiny-mt")
    pushed = tmp_hub / "me" / "tiny-mt"
    assert json.loads((pushed / "generation_config.json").read_text())["length_penalty"] == 0.5  # --length_penalty
    assert re.search(r"sacreBLEU, beam \d+, length penalty 0\.5,", (pushed / "README.md").read_text())
    tok = AutoTokenizer.from_pretrained(str(pushed))
    model = AutoModelForSeq2SeqLM.from_pretrained(str(pushed))
    for source in (">>zh<< Hello.", ">>en<< 你好。"):
        batch = tok([source], return_tensors="pt")
        out = model.generate(**batch, num_beams=2, max_new_tokens=8)
        assert out.shape[0] == 1 and out.shape[1] >= 2
    config = json.loads((pushed / "config.json").read_text())
    assert config["translation_directions"] == [["en", "zh"], ["zh", "en"]]
    entry = next(e for e in hub.list_models() if e.ref == "me/tiny-mt")
    assert entry.card.pipeline_tag == "translation"
    names = {f.name for f in entry.card.figures}
    assert {"BLEU en→zh", "chrF en→zh", "BLEU zh→en", "chrF zh→en"} <= names
    assert "language:\n- en\n- zh" in (pushed / "README.md").read_text()


@pytest.mark.slow  # a subprocess
def test_resume_is_exact(pairs_file, tmp_path):
    args = ["--max_train_steps", "12", "--checkpointing_steps", "5", "--checkpoints_total_limit", "1",
            "--gradient_accumulation_steps", "2", "--eval_steps", "0"]
    proc = resume_from_kept_checkpoint(lambda out, *a: train(pairs_file, out, *a), tmp_path, args)
    assert "at step 10" in proc.stderr


def test_service_keeps_order_and_empty_lines_and_is_deterministic(tiny_mt):
    svc = TranslationService(ModelRegistry())
    ref = str(tiny_mt)
    assert svc.directions(ref) == [("en", "zh"), ("zh", "en")] and svc.languages(ref) == (["en", "zh"], ["zh", "en"])
    first = svc.translate(ref, "\n".join(LINES), "en", "zh", beams=4, n_best=3)
    assert [line.source for line in first.lines] == LINES
    assert [bool(line.alternatives) for line in first.lines] == [bool(s) for s in LINES]
    assert first.text.split("\n")[1] == "" and first.text.count("\n") == len(LINES) - 1
    for line in first.lines:
        if line.alternatives:
            scores = [c.score for c in line.alternatives]
            assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert svc.translate(ref, LINES, "en", "zh", beams=4, n_best=3).text == first.text, "same input, same output"
    backwards = svc.translate(ref, LINES[::-1], "en", "zh", beams=4).text.split("\n")
    assert backwards[::-1] == first.text.split("\n"), "each output line belongs to its input line"


def test_long_lines_are_split_into_sentences(tiny_mt):
    svc = TranslationService(ModelRegistry())
    line = " ".join(f"This is sentence number {i} of a long paragraph." for i in range(40))
    result = svc.translate(str(tiny_mt), [line, "Hi."], "en", "zh", beams=1)
    assert len(result.lines) == 2 and any("pieces" in n for n in result.notices)


@pytest.mark.parametrize("text, kwargs, message", [
    ("", {}, "empty"),
    ("  \n \n", {}, "empty"),
    ("\n".join(["Hi."] * 10_000), {}, "limit"),
    ("x" * 100_000, {}, "characters"),
    ("Hi.", {"src": "en", "tgt": "fr"}, "does not translate"),
    ("Hi.", {"src": "../../etc", "tgt": "zh"}, "does not translate"),
    ("Hi.", {"beams": 0}, "beams must be between 1 and 8, got 0"),
    ("Hi.", {"beams": 1000}, "beams must be between 1 and 8"),
    ("Hi.", {"beams": "four"}, "integer"),
    ("Hi.", {"beams": 2, "n_best": 3}, r"n_best must be at most the beam size \(2\), got 3"),
    ("Hi.\x00", {}, "control"),
    (12345, {}, "text"),
])
def test_bad_translation_requests(tiny_mt, text, kwargs, message):
    args = {"src": "en", "tgt": "zh", **kwargs}
    with pytest.raises(GenerationError, match=message):
        TranslationService().translate(str(tiny_mt), text, **args)


@pytest.fixture
def mt_app(launched, tmp_hub, tiny_mt, tiny_gan):
    hub.push(tiny_mt, "me/tiny-mt")
    hub.push(tiny_gan, "me/tiny-gan")
    url, _ = launched(image_model="me/tiny-gan", translation_model="me/tiny-mt")
    return Client(url, verbose=False)


def test_translation_tab_translates_a_batch_over_the_api(mt_app):
    text, table, notice = mt_app.predict("me/tiny-mt", "\n".join(LINES), "en", "zh", 4, 2, api_name="/translate")
    lines = text.split("\n")
    assert len(lines) == len(LINES) and lines[1] == "" and lines[4] == ""
    rows = table["data"] if isinstance(table, dict) else table
    assert {r[0] for r in rows} == {i + 1 for i, s in enumerate(LINES) if s} and len(rows) == 2 * 4
    again = mt_app.predict("me/tiny-mt", "\n".join(LINES), "en", "zh", 4, 2, api_name="/translate")
    assert again[0] == text
    back = mt_app.predict("me/tiny-mt", "你好。\n\n谢谢。", "zh", "en", 2, 1, api_name="/translate")[0]
    assert len(back.split("\n")) == 3


@pytest.mark.parametrize("args", [
    ("me/tiny-mt", "", "en", "zh", 4, 1),
    ("me/tiny-mt", "\n".join(["Hi."] * 10_000), "en", "zh", 4, 1),
    ("me/tiny-mt", "x" * 100_000, "en", "zh", 4, 1),
    ("me/tiny-mt", "Hi.", "en", "fr", 4, 1),
    ("me/nothing", "Hi.", "en", "zh", 4, 1),
    ("me/tiny-gan", "Hi.", "en", "zh", 4, 1),
])
def test_bad_input_over_the_api_is_refused_and_the_server_keeps_serving(mt_app, args):
    with pytest.raises(Exception) as err:
        mt_app.predict(*args, api_name="/translate")
    assert is_user_error(str(err.value)), str(err.value)
    assert mt_app.predict("me/tiny-mt", "Hi.", "en", "zh", 1, 1, api_name="/translate")[0] != "\n"


def test_cli_translates_files_line_by_line(tiny_mt, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    cmd = [sys.executable, "-m", "aigc_hub", "translate", "--model", str(tiny_mt), "--src", "en", "--tgt", "zh",
           "--beams", "2"]
    proc = run([*cmd, "--input", str(source), "--output", str(out)])
    assert proc.returncode == 0, proc.stderr
    lines = out.read_text(encoding="utf-8").split("\n")
    assert len(lines) == len(LINES) + 1 and lines[1] == "" and lines[4] == "" and lines[-1] == ""
    piped = run([*cmd, "--input", str(source)])
    assert piped.stdout == out.read_text(encoding="utf-8"), "stdout mode gives the same lines"
    bad = run([*cmd[:-4], "--tgt", "fr", "--input", str(source)])
    assert bad.returncode == 2 and "does not translate" in bad.stderr and "Traceback" not in bad.stderr


def test_concurrent_requests_share_the_tokenizer_safely():
    """Four threads translating at once: every tokenizer call runs on the device worker (a fast tokenizer's padding
    state is shared, and an unpadded call racing a padded batch made 'Unable to create tensor' errors)."""
    import threading

    from aigc_hub.services import ModelRegistry, TranslationService

    service = TranslationService(ModelRegistry())
    ref = "aigc-hub/translator-en-zh"
    expected = service.translate(ref, "Hello.\nHow are you?\nI like tea.", "en", "zh", 2).text
    results, errors = [], []

    def user() -> None:
        for _ in range(8):
            try:
                results.append(service.translate(ref, "Hello.\nHow are you?\nI like tea.", "en", "zh", 2).text)
            except Exception as e:  # collected: the assertion below names it
                errors.append(f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=user) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[:3]
    assert results == [expected] * 32
