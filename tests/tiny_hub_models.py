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
