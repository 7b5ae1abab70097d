"""train_text.py started from a shared model (`--base_model`): LoRA on chat rows (a standard PEFT folder, the base's
figures beside its own, --merge, exact resume, served by the app at once), a full fine-tune on prompt / completion
rows, and the refusals, said in one line before any training."""

from __future__ import annotations

import json
import random
import sys

import pytest
import torch

from aigc_hub import hub
from aigc_hub.cards import read_card
from conftest import REPO, make_char_gpt2, resume_from_kept_checkpoint, run
from tiny_hub_models import make_chat_llama, make_opus_mt

MT_QUICK = ["--report_to", "none", "--eval_steps", "0", "--train_batch_size", "8", "--checkpointing_steps", "0"]
QUICK = [*MT_QUICK, "--sample_tokens", "8"]


def sums(k: int = 60) -> list[tuple[str, str]]:
    rng = random.Random(0)
    pairs = [(rng.randint(1, 9), rng.randint(1, 9)) for _ in range(k)]
    return [(f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}.") for a, b in pairs]


@pytest.fixture
def data(tmp_path, tmp_hub):
    """A chat base in the local hub, and the same questions as chat rows and as prompt / completion rows."""
    hub.push(make_chat_llama(tmp_path / "base"), "me/base")
    chat = tmp_path / "chat.jsonl"
    chat.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": a}]}) + "\n"
                            for q, a in sums()))
    pc = tmp_path / "pc.jsonl"
    pc.write_text("".join(json.dumps({"prompt": f"Q: {q}\nA:", "completion": f" {a}"}) + "\n" for q, a in sums()))
    return {"chat": chat, "pc": pc}


def train(out, *args):
    proc = run([sys.executable, str(REPO / "training" / "train_text.py"), "--output_dir", str(out), *QUICK, *args])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def figures(folder) -> dict[str, float]:
    return {f.name: f.value for f in read_card(folder).figures}


@pytest.mark.slow  # subprocesses
def test_lora_on_chat_rows_writes_a_peft_folder_that_beats_its_base_and_is_served(data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "lora"
    proc = train(out, "--base_model", "me/base", "--dataset", str(data["chat"]), "--lora_rank", "8",
                 "--lora_target_modules", "all-linear", "--learning_rate", "1e-2", "--max_train_steps", "40",
                 "--merge", "--push_to_hub", "--hub_model_id", "me/sums-lora")
    assert "LoRA rank 8" in proc.stderr and "54 chat examples" in proc.stderr
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "me/base"
    assert (out / "adapter_model.safetensors").is_file() and not (out / "model.safetensors").exists()
    card = read_card(out)
    assert "lora" in card.tags and "base_model: me/base" in (out / "README.md").read_text()
    f = figures(out)
    assert f["validation loss on the answers (nats/token)"] < f["base model: validation loss on the answers (nats/token)"]

    # Stock peft reads the folder; the merged folder is the same model in ordinary form.
    base = hub.resolve("me/base")
    stock = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(out)).eval()
    merged = AutoModelForCausalLM.from_pretrained(str(out / "merged")).eval()
    ids = torch.tensor([[5, 40, 41, 42, 7, 9]])
    with torch.no_grad():
        assert torch.allclose(stock(input_ids=ids).logits, merged(input_ids=ids).logits, atol=1e-4)
    assert read_card(out / "merged").figures and "merged" not in {p.name for p in hub.resolve("me/sums-lora").iterdir()}

    # Served at once, on its base, by the CLI as by every front end (one service): what stock peft writes greedily.
    answer = run([sys.executable, "-m", "aigc_hub", "generate", "chat", "--model", "me/sums-lora", "--message",
                  "What is 3 plus 4?", "--max-new-tokens", "12", "--temperature", "0"])
    assert answer.returncode == 0, answer.stderr[-2000:]
    tok = AutoTokenizer.from_pretrained(str(out))
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 3 plus 4?"}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        greedy = stock.generate(input_ids=prompt, max_new_tokens=12, do_sample=False)
    assert answer.stdout.strip() == tok.decode(greedy[0, prompt.shape[1]:], skip_special_tokens=True).strip()


@pytest.mark.slow  # subprocesses
def test_a_lora_run_resumes_exactly(data, tmp_path):
    args = ["--base_model", "me/base", "--dataset", str(data["pc"]), "--lora_rank", "4", "--max_train_steps", "8",
            "--checkpointing_steps", "5", "--checkpoints_total_limit", "1", "--lora_dropout", "0.1"]
    resume_from_kept_checkpoint(train, tmp_path, args, files=("adapter_model.safetensors",))


@pytest.mark.slow  # a subprocess
def test_a_full_fine_tune_on_prompt_completion_rows_writes_an_ordinary_folder(data, tmp_path):
    out = tmp_path / "full"
    proc = train(out, "--base_model", "me/base", "--dataset", str(data["pc"]), "--lora_rank", "0",
                 "--learning_rate", "3e-3", "--max_train_steps", "30")
    assert "a full fine-tune of `me/base`" in proc.stderr
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    f = figures(out)
    assert f["validation loss on the completions (nats/token)"] < f[
        "base model: validation loss on the completions (nats/token)"]
    assert hub.is_model_folder(out) and "fine-tuned" in read_card(out).tags


def test_what_cannot_be_adapted_is_refused_before_training(data, tmp_path):
    """In-process: each refusal is one line, before a step is taken."""
    from training.train_text import main

    make_opus_mt(tmp_path / "mt")
    hub.push(tmp_path / "mt", "me/mt")
    make_char_gpt2(tmp_path / "char", context=64)
    hub.push(tmp_path / "char", "me/char")
    no_template = make_chat_llama(tmp_path / "plain", chat_template=None)
    hub.push(no_template, "me/plain")
    chinese = tmp_path / "zh.jsonl"
    chinese.write_text("".join(json.dumps({"prompt": "床前明月光，", "completion": "疑是地上霜。"}) + "\n" for _ in range(20)))
    cases = {
        ("--base_model", "me/mt", "--dataset", str(data["chat"])): "me/mt is a seq2seq model",
        ("--base_model", "someone/not-here", "--dataset", str(data["chat"])): "--base_model someone/not-here",
        ("--base_model", "me/plain", "--dataset", str(data["chat"])): "with a chat template",
        ("--base_model", "me/base", "--tokenizer", "bpe", "--dataset", str(data["pc"])): "drop --tokenizer",
        ("--base_model", "me/char", "--dataset", str(chinese)): "vocabulary does not have",
        ("--dataset", str(data["pc"])): "give --base_model",
        ("--base_model", "me/base", "--lora_rank", "0", "--merge", "--dataset", str(data["pc"])): "--merge folds",
    }
    for args, words in cases.items():
        with pytest.raises(SystemExit) as e:
            main([*args, "--output_dir", str(tmp_path / "out"), *QUICK, "--max_train_steps", "1"])
        message = str(e.value)
        assert words in message and "\n" not in message.strip(), (args, message)


@pytest.mark.slow  # a subprocess
def test_lora_on_a_shared_translator_asks_it_as_it_is_served_and_scores_it_beside_its_base(tmp_path, tmp_hub):
    from tiny_hub_models import EN_WORDS, ZH_WORDS, sentences

    hub.push(make_opus_mt(tmp_path / "opus-mt-en-zh"), "me/opus-mt-en-zh")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"en": e, "zh": z}) + "\n" for e, z in zip(
        sentences(EN_WORDS, 200), sentences(ZH_WORDS, 200, joiner="", end="。"))))
    out = tmp_path / "mt-lora"
    proc = run([sys.executable, str(REPO / "training" / "train_translation.py"), "--output_dir", str(out), *MT_QUICK,
                "--base_model", "me/opus-mt-en-zh", "--dataset", str(pairs), "--source_lang", "en", "--target_lang",
                "zh", "--lora_rank", "4", "--max_train_steps", "6", "--num_beams", "1", "--validation_split_percentage",
                "10", "--push_to_hub", "--hub_model_id", "me/mt-lora"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "base model en-zh: BLEU" in proc.stderr and "final en-zh: BLEU" in proc.stderr
    assert json.loads((out / "adapter_config.json").read_text())["task_type"] == "SEQ_2_SEQ_LM"
    assert {"BLEU en→zh", "base model: BLEU en→zh", "chrF en→zh", "base model: chrF en→zh"} <= set(figures(out))
    assert "base_model: me/opus-mt-en-zh" in (out / "README.md").read_text()
    from aigc_hub.services import ModelRegistry, TranslationService

    full = run([sys.executable, str(REPO / "training" / "train_translation.py"), "--output_dir",
                str(tmp_path / "mt-full"), *MT_QUICK, "--base_model", "me/opus-mt-en-zh", "--dataset", str(pairs),
                "--source_lang", "en", "--target_lang", "zh", "--lora_rank", "0", "--max_train_steps", "3",
                "--num_beams", "1", "--push_to_hub", "--hub_model_id", "me/mt-full"])
    assert full.returncode == 0, full.stderr[-3000:]
    service = TranslationService(ModelRegistry())
    # The adapter is asked as its base is; the fine-tuned OPUS-MT keeps its convention (its card: source first).
    assert service.directions("me/mt-lora") == service.directions("me/mt-full") == [("en", "zh")]
    for ref in ("me/mt-lora", "me/mt-full"):
        assert service.translate(ref, ["the cat runs."], "en", "zh", beams=2).lines[0].alternatives[0].text


def test_a_direction_the_base_translator_does_not_do_is_refused(tmp_path, tmp_hub):
    from training.train_translation import main

    hub.push(make_opus_mt(tmp_path / "opus-mt-en-zh"), "me/opus-mt-en-zh")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"en": f"a cat {i}.", "zh": f"猫{i}。"}) + "\n" for i in range(40)))
    with pytest.raises(SystemExit, match="does not translate zh→en"):
        main(["--base_model", "me/opus-mt-en-zh", "--dataset", str(pairs), "--source_lang", "en", "--target_lang",
              "zh", "--bidirectional", "--output_dir", str(tmp_path / "out"), *MT_QUICK, "--max_train_steps", "1"])


@pytest.mark.slow  # subprocesses
def test_a_gan_is_fine_tuned_whole_from_a_pushed_one_with_its_discriminator(digits_npz, tmp_path, tmp_hub):
    from safetensors.torch import load_file

    gan = ["--dataset", str(digits_npz), "--image_column", "x_train", "--label_column", "y_train",
           "--base_channels", "8", "--latent_dim", "16", "--embed_dim", "8", "--train_batch_size", "32",
           "--max_train_samples", "256", "--report_to", "none", "--sample_steps", "0", "--checkpointing_steps", "0"]

    def train_gan(out, *args):
        proc = run([sys.executable, str(REPO / "training" / "train_gan.py"), "--output_dir", str(out), *gan, *args])
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc

    train_gan(tmp_path / "base", "--max_train_steps", "4", "--push_to_hub", "--hub_model_id", "me/tiny-gan")
    proc = train_gan(tmp_path / "tuned", "--base_model", "me/tiny-gan", "--max_train_steps", "4")
    assert "its generator and discriminator" in proc.stderr
    tuned, base = load_file(str(tmp_path / "tuned" / "model.safetensors")), load_file(
        str(hub.resolve("me/tiny-gan") / "model.safetensors"))
    assert tuned.keys() == base.keys() and any(not torch.equal(tuned[k], base[k]) for k in base)
    card = (tmp_path / "tuned" / "README.md").read_text()
    assert "base_model: me/tiny-gan" in card and "fine-tuned from `me/tiny-gan`" in card


def test_a_gan_base_that_makes_other_images_is_refused(digits_npz, tmp_path, tmp_hub):
    from conftest import make_gan
    from training.train_gan import main

    hub.push(make_gan(tmp_path / "rgb", channels=3), "me/rgb-gan")
    with pytest.raises(SystemExit, match="makes 3-channel images of 10 classes; this data has 1 channel"):
        main(["--base_model", "me/rgb-gan", "--dataset", str(digits_npz), "--image_column", "x_train",
              "--label_column", "y_train", "--output_dir", str(tmp_path / "out"), "--report_to", "none",
              "--max_train_steps", "1", "--max_train_samples", "64", "--checkpointing_steps", "0"])


@pytest.mark.slow  # a subprocess
def test_a_diffusion_pipeline_is_fine_tuned_whole_with_its_schedule(digits_npz, tiny_ddpm, tmp_path, tmp_hub):
    from safetensors.torch import load_file

    hub.push(tiny_ddpm, "me/tiny-ddpm")
    out = tmp_path / "tuned"
    proc = run([sys.executable, str(REPO / "training" / "train_diffusion.py"), "--base_model", "me/tiny-ddpm",
                "--dataset", str(digits_npz), "--image_column", "x_train", "--label_column", "y_train",
                "--output_dir", str(out), "--train_batch_size", "16", "--max_train_samples", "64", "--report_to",
                "none", "--sample_steps", "0", "--num_sample_images", "4", "--sample_inference_steps", "2",
                "--eval_steps_list", "2", "--max_train_steps", "3", "--checkpointing_steps", "0", "--lora_rank", "0"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    tuned = load_file(str(out / "unet" / "diffusion_pytorch_model.safetensors"))
    base = load_file(str(hub.resolve("me/tiny-ddpm") / "unet" / "diffusion_pytorch_model.safetensors"))
    assert tuned.keys() == base.keys() and any(not torch.equal(tuned[k], base[k]) for k in base)
    assert json.loads((out / "scheduler" / "scheduler_config.json").read_text())["num_train_timesteps"] == json.loads(
        (hub.resolve("me/tiny-ddpm") / "scheduler" / "scheduler_config.json").read_text())["num_train_timesteps"]
    assert "base_model: me/tiny-ddpm" in (out / "README.md").read_text()


def test_a_card_names_a_hub_base_in_its_metadata_and_a_local_folder_only_in_its_text(tmp_path):
    """The Hub's `base_model` field must name a Hub model: a recipe's earlier stage read from a folder is not one."""
    from argparse import Namespace

    from training.adapt import base_metadata

    assert base_metadata(Namespace(base_model="me/base"), adapter=False) == {"base_model": "me/base"}
    assert base_metadata(Namespace(base_model="me/base"), adapter=True) == {"base_model": "me/base",
                                                                            "base_model_relation": "adapter"}
    assert base_metadata(Namespace(base_model=str(tmp_path)), adapter=True) == {}
    assert base_metadata(Namespace(base_model=None), adapter=False) == {}
