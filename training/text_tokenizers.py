"""Tokenizers trained from scratch with the `tokenizers` library, saved as `PreTrainedTokenizerFast`.

- `char`: one token per character seen in training (plus `<unk>` for the rest); decoding fuses tokens, so any text
  made of seen characters round-trips exactly.
- `bpe`: byte-level BPE (GPT-2 style): every string round-trips exactly, whatever its script.
- `unigram` (translation): a SentencePiece-style Unigram vocabulary shared by all languages of a pair. Chinese and
  Japanese characters are one piece each by default: learned multi-character pieces ("好。", "了吗？") took 5,200 of
  the en-zh starter's 8,000 entries and left English 2,760, too few for "Hello" or "Happy" ("▁He ll o" — the pieces
  of "He'll"); character-level Chinese is the usual choice for small data. Language tags such as `>>zh<<` are
  special tokens (never split); every encoding ends with `</s>` (the Marian convention).

Both load back with stock `AutoTokenizer.from_pretrained(folder)`.
"""

from __future__ import annotations

import logging
from typing import Iterable, Iterator

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

logger = logging.getLogger("aigc_hub.training")
EOS = "<|endoftext|>"
UNK = "<unk>"
# Han (with extension A), kana, CJK and full-width punctuation: scripts written without spaces between words.
CJK_CHARACTER = r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]"


def train_char_tokenizer(texts: Iterable[str], special_tokens: list[str] | None = None) -> PreTrainedTokenizerFast:
    """A character-level tokenizer over the characters of `texts`."""
    specials = [EOS, UNK, *(special_tokens or [])]
    chars: set[str] = set()
    for text in texts:
        chars.update(text)
    vocab = {tok: i for i, tok in enumerate(specials + sorted(chars - set(specials)))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=UNK, fuse_unk=True))  # no merges: one char, one id
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(specials)
    return _wrap(tok)


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int,
                        special_tokens: list[str] | None = None) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with `vocab_size` entries trained on `texts`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS, *(special_tokens or [])],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_chunks(texts), trainer=trainer)
    return _wrap(tok)


def train_unigram_tokenizer(texts: Iterable[str], vocab_size: int, special_tokens: list[str] | None = None,
                            cjk_characters: bool = True) -> PreTrainedTokenizerFast:
    """A shared Unigram vocabulary for translation: `<pad>` 0, `</s>` 1, `<unk>` 2, then `special_tokens`;
    `cjk_characters`: every Chinese / Japanese character is a piece of its own (else pieces span several)."""
    specials = ["<pad>", "</s>", UNK, *(special_tokens or [])]
    texts = list(texts)
    alphabet = len(set().union(*map(set, texts))) + 1 + len(specials)  # + the Metaspace "▁"
    if vocab_size < alphabet + 100:  # Unigram needs every character as a piece (Chinese has thousands)
        logger.warning("--vocab_size %d is too small for %d distinct characters: using %d", vocab_size, alphabet,
                       alphabet + 100)
        vocab_size = alphabet + 100
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFC()  # not NFKC: it would turn Chinese full-width punctuation into ASCII
    # CJK characters split after Metaspace, so "▁" still marks where spaces were and decoding restores them.
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Metaspace(),
                                                  pre_tokenizers.Split(Regex(CJK_CHARACTER), "isolated")])
                         if cjk_characters else pre_tokenizers.Metaspace())
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=specials, unk_token=UNK,
                                      show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A $B </s>",
                                                       special_tokens=[("</s>", tok.token_to_id("</s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>", unk_token=UNK,
                                   extra_special_tokens=list(special_tokens or []),
                                   clean_up_tokenization_spaces=False)
    fast.model_max_length = 10**9
    return fast


def build_tokenizer(kind: str, texts: Iterable[str], vocab_size: int = 4096) -> PreTrainedTokenizerFast:
    """`char`, `bpe`, or a reference to an existing tokenizer (folder or hub id, loaded without remote code)."""
    if kind == "char":
        return train_char_tokenizer(texts)
    if kind == "bpe":
        return train_bpe_tokenizer(texts, vocab_size)
    return AutoTokenizer.from_pretrained(kind, trust_remote_code=False)


def _wrap(tok: Tokenizer) -> PreTrainedTokenizerFast:
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=EOS,
                                   unk_token=UNK if tok.token_to_id(UNK) is not None else None,
                                   clean_up_tokenization_spaces=False)
    fast.model_max_length = 10**9  # the model's context bounds prompts, not the tokenizer
    return fast


def _chunks(texts: Iterable[str], size: int = 1 << 16) -> Iterator[str]:
    """Long documents in pieces: BPE training needs no document longer than a few thousand characters at once."""
    for text in texts:
        for i in range(0, len(text), size):
            yield text[i : i + size]
