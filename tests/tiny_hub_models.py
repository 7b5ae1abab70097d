"""Tiny random-weight models of the architectures people share on the Hugging Face Hub, built from their real config
and tokenizer classes and saved as the Hub ships them (as transformers' and diffusers' own tests build theirs).
The tests cannot download the real checkpoints; these go through the same loading code a download would."""

from __future__ import annotations

import string
from pathlib import Path

# TinyLlama-1.1B-Chat-v1.0's chat template (Zephyr style), as its tokenizer_config.json ships it.
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)


def llama_tokenizer(chat_template: str | None = ZEPHYR_TEMPLATE):
    """A Llama tokenizer (byte-fallback BPE, `▁` for spaces) over ASCII characters: every text encodes."""
    from transformers import LlamaTokenizer

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{i:02X}>": 3 + i for i in range(256)})
    for ch in "▁" + string.ascii_letters + string.digits + string.punctuation + "\n":
        vocab.setdefault(ch, len(vocab))
    tok = LlamaTokenizer(vocab=vocab, merges=[])
    if chat_template:
        tok.chat_template = chat_template
    return tok


def make_chat_llama(out: Path, context: int = 256, chat_template: str | None = ZEPHYR_TEMPLATE) -> Path:
    """A 2-layer LlamaForCausalLM with a Llama tokenizer and a chat template, saved with save_pretrained."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = llama_tokenizer(chat_template)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2)
    model = LlamaForCausalLM(config)
    model.generation_config.suppress_tokens = [2]  # random weights: never end a turn at once by chance
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    (out / "README.md").write_text("---\nlicense: mit\npipeline_tag: text-generation\n---\n# tiny chat llama\n")
    return out


# Seq2seq translators. Their tokenizers are sentencepiece models trained here on a few hundred made-up sentences,
# saved in the layout the real repos ship (OPUS-MT: source.spm / target.spm / vocab.json; M2M100:
# sentencepiece.bpe.model / vocab.json; T5: spiece.model), with no tokenizer.json.
EN_WORDS = "the cat dog sees a big small red house tree runs eats water hello thank you good morning night".split()
ZH_WORDS = "我 你 他 是 的 猫 狗 看 大 小 红 房子 树 跑 吃 水 你好 谢谢 早上 晚上".split()
TINY_SEQ2SEQ = dict(d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                    decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=128)


def sentences(words: list[str], n: int = 300, joiner: str = " ", end: str = ".") -> list[str]:
    import random

    rng = random.Random(0)
    return [joiner.join(rng.choice(words) for _ in range(rng.randint(3, 8))) + end for _ in range(n)]


def train_spm(lines: list[str], path: Path, vocab_size: int, model_type: str = "unigram", **ids: int) -> Path:
    """A sentencepiece model file trained on `lines` (ids: pad_id, eos_id, unk_id, bos_id as the family uses)."""
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size,
                                   model_type=model_type, character_coverage=1.0, minloglevel=2,
                                   hard_vocab_limit=False,
                                   **ids)
    path.write_bytes(model.getvalue())
    return path


def _pieces(path: Path) -> list[str]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(path))
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def _card(out: Path, languages: list[str], title: str) -> None:
    langs = "".join(f"- {x}\n" for x in languages)
    (out / "README.md").write_text(f"---\nlanguage:\n{langs}license: apache-2.0\npipeline_tag: translation\n"
                                   f"tags:\n- translation\n---\n# {title}\n\nTiny random weights for tests.\n")


def make_opus_mt(out: Path, target_tags: list[str] | None = None, languages: list[str] = ("en", "zh")) -> Path:
    """An OPUS-MT Marian model: one direction, or several targets asked for with `>>xx<<` tokens in its vocab."""
    import json
    import tempfile

    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    special = dict(pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    with tempfile.TemporaryDirectory() as tmp:
        src = train_spm(sentences(EN_WORDS), Path(tmp) / "source.spm", 60, **special)
        tgt = train_spm(sentences(ZH_WORDS, joiner="", end="。"), Path(tmp) / "target.spm", 60, **special)
        vocab = {"</s>": 0, "<unk>": 1}  # as OPUS-MT's vocab.json: <pad> comes last
        pieces = [p for p in [*(f">>{t}<<" for t in target_tags or []), *_pieces(src), *_pieces(tgt)] if p != "<pad>"]
        for piece in [*pieces, "<pad>"]:
            vocab.setdefault(piece, len(vocab))
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        tok = MarianTokenizer(str(src), str(tgt), str(Path(tmp) / "vocab.json"))
        tok.save_pretrained(str(out))
    torch.manual_seed(0)
    pad = vocab["<pad>"]
    config = MarianConfig(vocab_size=len(vocab), pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad,
                          forced_eos_token_id=0, **TINY_SEQ2SEQ)
    MarianMTModel(config).save_pretrained(str(out))
    _card(out, list(languages), out.name)
    return out


def make_m2m100(out: Path) -> Path:
    """An M2M100 model: `src_lang` on the tokenizer, the target's `__xx__` token forced first."""
    import json
    import tempfile

    import torch
    from transformers import M2M100Config, M2M100ForConditionalGeneration, M2M100Tokenizer
    from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES

    with tempfile.TemporaryDirectory() as tmp:
        spm_file = train_spm(sentences(EN_WORDS + ZH_WORDS), Path(tmp) / "sentencepiece.bpe.model", 100, "bpe")
        vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
        for piece in _pieces(spm_file):
            vocab.setdefault(piece, len(vocab))
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
        M2M100Tokenizer(str(Path(tmp) / "vocab.json"), str(spm_file)).save_pretrained(str(out))
    torch.manual_seed(0)
    size = len(vocab) + len(FAIRSEQ_LANGUAGE_CODES["m2m100"]) + 8  # + language tokens + "madeup words", as the real
    M2M100ForConditionalGeneration(M2M100Config(vocab_size=size, **TINY_SEQ2SEQ)).save_pretrained(str(out))
    _card(out, ["multilingual", "en", "zh", "fr"], out.name)
    return out


def make_nllb(out: Path) -> Path:
    """An NLLB model (M2M100 architecture, NllbTokenizer, codes like `eng_Latn`) laid out as facebook/nllb-200-*:
    sentencepiece.bpe.model, tokenizer.json, a tokenizer_config.json listing the 202 language codes."""
    import json

    import torch
    from transformers import AutoTokenizer, M2M100Config, M2M100ForConditionalGeneration
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES

    out.mkdir(parents=True, exist_ok=True)
    train_spm(sentences(EN_WORDS + ZH_WORDS), out / "sentencepiece.bpe.model", 100, "bpe")
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "NllbTokenizer", "src_lang": "eng_Latn", "model_max_length": 1024,
        "additional_special_tokens": list(FAIRSEQ_LANGUAGE_CODES)}))
    tok = AutoTokenizer.from_pretrained(str(out))
    tok.save_pretrained(str(out))  # adds tokenizer.json, as the real repositories hold
    torch.manual_seed(0)
    M2M100ForConditionalGeneration(M2M100Config(vocab_size=len(tok), **TINY_SEQ2SEQ)).save_pretrained(str(out))
    _card(out, ["multilingual", "en", "fr", "zh"], out.name)
    return out


def make_mbart50(out: Path) -> Path:
    """An mBART-50 many-to-many model (MBart50Tokenizer over sentencepiece.bpe.model, codes like `en_XX`) laid out
    as facebook/mbart-large-50-many-to-many-mmt: no tokenizer.json."""
    import json

    import torch
    from transformers import AutoTokenizer, MBartConfig, MBartForConditionalGeneration

    out.mkdir(parents=True, exist_ok=True)
    train_spm(sentences(EN_WORDS + ZH_WORDS), out / "sentencepiece.bpe.model", 100, "bpe")
    (out / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "MBart50Tokenizer",
                                                           "src_lang": None, "tgt_lang": None}))
    tok = AutoTokenizer.from_pretrained(str(out))
    torch.manual_seed(0)
    config = MBartConfig(vocab_size=len(tok), pad_token_id=1, bos_token_id=0, eos_token_id=2,
                         decoder_start_token_id=2, tokenizer_class="MBart50Tokenizer", **TINY_SEQ2SEQ)
    MBartForConditionalGeneration(config).save_pretrained(str(out))
    _card(out, ["multilingual", "en", "fr", "zh"], out.name)
    return out


def make_t5(out: Path) -> Path:
    """A T5 model with t5-small's translation task prefixes in its config (`translate English to German: `)."""
    import json

    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    out.mkdir(parents=True, exist_ok=True)
    train_spm(sentences(EN_WORDS + ["translate", "English", "to", "German:", "French:", "die", "Katze", "le", "chat"]),
              out / "spiece.model", 80, pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    (out / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer", "extra_ids": 0}))
    prefixes = {"translation_en_to_de": "translate English to German: ", "translation_en_to_fr":
                "translate English to French: ", "translation_en_to_ro": "translate English to Romanian: "}
    torch.manual_seed(0)
    config = T5Config(vocab_size=80, d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=8,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                      task_specific_params={"summarization": {"prefix": "summarize: "},
                                            **{k: {"prefix": v, "num_beams": 4} for k, v in prefixes.items()}})
    T5ForConditionalGeneration(config).save_pretrained(str(out))
    _card(out, ["en", "fr", "ro", "de"], out.name)
    return out


CLIP_MERGES = [("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>")]


def clip_vocab() -> dict[str, int]:
    """A CLIP vocabulary (byte-level BPE with `</w>` word ends) over single bytes and a few merges: every text
    encodes, as with the real 49,408-token one."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in chars + [c + "</w>" for c in chars] + ["".join(m) for m in CLIP_MERGES]:
        vocab.setdefault(token, len(vocab))
    return vocab


def write_clip_tokenizer(folder: Path) -> None:
    """The tokenizer/ folder as Stable Diffusion 1.5 ships it: vocab.json, merges.txt and a config (no
    tokenizer.json)."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        stale.unlink()
    (folder / "vocab.json").write_text(json.dumps(clip_vocab()))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in CLIP_MERGES))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "do_lower_case": True}))


def make_tiny_sd(out: Path) -> Path:
    """A Stable Diffusion pipeline as the Hub ships one (model_index.json, unet/, vae/, text_encoder/, tokenizer/,
    scheduler/ with SD 1.5's PNDM config, no safety checker), with the tiny component sizes diffusers' own tests use:
    64 px images from 32 px latents."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4,
                                out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=[32, 64], in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2)
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer(vocab=clip_vocab(), merges=CLIP_MERGES, model_max_length=77)
    text_encoder = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32,
                                                intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                                                vocab_size=len(tokenizer), max_position_embeddings=77))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                              steps_offset=1, set_alpha_to_one=False)
    pipe = StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(str(out), safe_serialization=True)
    write_clip_tokenizer(out / "tokenizer")
    (out / "README.md").write_text("---\nlicense: mit\npipeline_tag: text-to-image\ntags: [stable-diffusion]\n---\n"
                                   "# tiny stable diffusion\n")
    return out


def make_ddpm_pipeline(out: Path) -> Path:
    """An unconditional DDPMPipeline as google/ddpm-* ship theirs: a UNet2DModel and a DDPMScheduler."""
    import torch
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(16, 32), norm_num_groups=8,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"))
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler(num_train_timesteps=1000)).save_pretrained(
        str(out), safe_serialization=True)
    return out


def make_lora(base: Path, out: Path, base_ref: str, seed: int = 0, task_type: str = "CAUSAL_LM") -> Path:
    """A LoRA adapter of `base` as peft saves one (adapter_config.json naming `base_ref`, adapter_model.safetensors),
    with random (not zero) weights so that it changes what the base writes."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    auto = AutoModelForCausalLM if task_type == "CAUSAL_LM" else AutoModelForSeq2SeqLM
    torch.manual_seed(seed)
    model = get_peft_model(auto.from_pretrained(str(base)), LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type=task_type, init_lora_weights=False))
    model.peft_config["default"].base_model_name_or_path = base_ref
    model.save_pretrained(str(out))
    (out / "README.md").write_text(f"---\nbase_model: {base_ref}\nlibrary_name: peft\n---\n# a tiny LoRA\n")
    return out
