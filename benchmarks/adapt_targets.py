"""The quality targets of adapting shared models (run by bench_adapt.py --chat / --translation): each trains through
the training script as a user would (a subprocess, the README's options) and measures on held-out data."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
DATA = REPO.parent / "shared" / "data" / "translation"
EN_ZH = DATA / "en-zh" / "en-zh.jsonl"
EN_FR = DATA / "en-fr" / "en-fr.jsonl"
TRANSLATOR = "aigc-hub/translator-en-zh"
SHORT = 4  # the domain: everyday phrases of at most this many English words


def script(name: str, *args: str) -> tuple[str, float]:
    """Run a training script; its stderr and wall seconds (SystemExit on failure, with its tail)."""
    begin = time.perf_counter()
    proc = subprocess.run([sys.executable, str(REPO / "training" / name), *args], capture_output=True, text=True,
                          cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    return proc.stderr, time.perf_counter() - begin


def chat_rows(sentences: list[str]) -> list[dict]:
    return [{"messages": [{"role": "user", "content": s}, {"role": "assistant", "content": f"You said: {s}"}]}
            for s in sentences]


def chat_target(train_rows: int = 400, held_out: int = 100, steps: int = 600) -> None:
    """SFT of a small chat Llama (real classes, random weights, as the tests build one but 4 layers × 128) on chat
    rows whose answer is always "You said: <the user's words>"; greedy replies to held-out prompts, before/after."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from aigc_hub import hub
    from aigc_hub.services import ModelRegistry, SamplingSettings, TextService
    from tiny_hub_models import llama_tokenizer

    rng = random.Random(0)
    english = sorted({json.loads(line)["en"] for line in EN_FR.read_text(encoding="utf-8").splitlines()})
    english = [s for s in english if 3 <= len(s.split()) <= 6 and s.isascii()]
    picked = rng.sample(english, train_rows + held_out)
    train, test = picked[:train_rows], picked[train_rows:]
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        tok = llama_tokenizer()
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=128, intermediate_size=384,
                                             num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                                             max_position_embeddings=256, bos_token_id=1, eos_token_id=2,
                                             pad_token_id=2))
        base = tmp_path / "chat-base"
        model.save_pretrained(str(base))
        tok.save_pretrained(str(base))
        hub.push(base, "bench/small-chat")
        rows = tmp_path / "rows.jsonl"
        rows.write_text("".join(json.dumps(r) + "\n" for r in chat_rows(train)))
        results = {}
        # A random base has nothing to keep: both at a from-scratch lr (the defaults, 2e-4 / 2e-5, suit a trained
        # base; at 2e-4 the adapter learned only to answer with spaces in 300 steps).
        for rank, lr in ((16, "2e-3"), (0, "1e-3")):
            out = tmp_path / f"sft-r{rank}"
            _, wall = script("train_text.py", "--base_model", "bench/small-chat", "--dataset", str(rows),
                             "--lora_rank", str(rank), "--learning_rate", lr, "--max_train_steps", str(steps),
                             "--train_batch_size", "16",
                             "--eval_steps", "0", "--sample_tokens", "0",
                             "--report_to", "none", "--checkpointing_steps", "0", "--output_dir", str(out),
                             "--push_to_hub", "--hub_model_id", f"bench/small-chat-sft-r{rank}")
            results[rank] = f"lr {lr}, trained in {wall:.0f} s"
        service = TextService(ModelRegistry())
        greedy = SamplingSettings(max_new_tokens=80, temperature=0)
        print(f"chat SFT (a 4-layer Llama, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
              f"random weights; {train_rows} training rows, {held_out} held-out prompts, {steps} steps × 16 rows):")
        for ref, label in (("bench/small-chat", "base"), ("bench/small-chat-sft-r16", "LoRA rank 16"),
                           ("bench/small-chat-sft-r0", "every weight")):
            replies = ["".join(service.chat(ref, [{"role": "user", "content": s}], greedy, seed=0).chunks)
                       for s in test]
            starts = sum(r.strip().startswith("You said:") for r in replies) / len(test)
            exact = sum(r.strip() == f"You said: {s}" for r, s in zip(replies, test)) / len(test)
            rank = {"LoRA rank 16": 16, "every weight": 0}.get(label)
            took = f", {results[rank]}" if rank is not None else ""
            print(f"  {label:14s} starts with 'You said:' {100 * starts:5.1f} %, the exact echo {100 * exact:5.1f} %"
                  f"{took}; e.g. {test[0]!r} → {replies[0][:80]!r}")


def _split_domain() -> tuple[list[dict], list[dict], list[dict]]:
    """The base's own split (its recipe: 3 % grouped, seed 0), then the domain's pairs on each side."""
    from training.translation_data import grouped_split, load_pairs

    train, val = grouped_split(load_pairs(str(EN_ZH), ("en", "zh")), 3.0, 0)

    def rows(pairs) -> list[dict]:
        return [{"en": e, "zh": z} for e, z in zip(pairs.sentences["en"], pairs.sentences["zh"])]

    def short(r: dict) -> bool:
        return len(r["en"].split()) <= SHORT

    return [r for r in rows(train) if short(r)], [r for r in rows(val) if short(r)], rows(val)


def translation_target(steps: int = 400, rank: int = 16) -> None:
    """The shipped translator adapted to everyday short phrases; BLEU on the domain's and the general held-out."""
    import torch
    from peft import PeftModel

    from aigc_hub.evaluation.translation_metrics import evaluate_translation
    from training.train_translation import directions, load_base, parse_args
    from training.translation_data import load_pairs

    domain_train, domain_val, general_val = _split_domain()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        files = {}
        for name, rows in (("train", domain_train), ("domain", domain_val), ("general", general_val)):
            files[name] = tmp_path / f"{name}.jsonl"
            files[name].write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        out = tmp_path / "everyday"
        common = ["--base_model", TRANSLATOR, "--source_lang", "en", "--target_lang", "zh", "--bidirectional"]
        log, wall = script("train_translation.py", *common, "--dataset", str(files["train"]), "--validation_file",
                           str(files["domain"]), "--lora_rank", str(rank), "--max_train_steps", str(steps),
                           "--train_batch_size", "64", "--eval_steps", "0", "--report_to", "none",
                           "--checkpointing_steps", "0", "--output_dir", str(out))
        domain = {m.group(1, 2): float(m.group(3)) for m in re.finditer(
            r"^(final|base model) (\S+): BLEU ([\d.]+)", log, re.M)}
        args = parse_args([*common, "--dataset", str(files["general"]), "--output_dir", str(tmp_path / "x")])
        base, tokenizer, convention = load_base(args, directions(args))
        general = load_pairs(str(files["general"]), ("en", "zh"))
        scores = {}
        for label, model in (("base model", base.eval()), ("final", None)):
            if model is None:
                model = PeftModel.from_pretrained(base, str(out)).eval()
            with torch.no_grad():
                for src, tgt in directions(args):
                    sources, refs = general.references(src, tgt)
                    s, _ = evaluate_translation(model, tokenizer, sources, refs, src, tgt, beams=4,
                                                max_source_tokens=args.max_source_length, convention=convention)
                    scores[label, s.direction] = s.bleu
    print(f"translation: {TRANSLATOR} + LoRA rank {rank}, {steps} steps × 64 on everyday phrases (Tatoeba pairs of "
          f"≤ {SHORT} English words from the base's own training side, {len(domain_train)} pairs), {wall:.0f} s; "
          "sacreBLEU, beam 4:")
    for d in ("en-zh", "zh-en"):
        print(f"  {d}: domain held-out ({len(domain_val)} pairs) {domain.get(('base model', d), float('nan')):.2f}"
              f" → {domain.get(('final', d), float('nan')):.2f}; general held-out (the base's validation split, "
              f"{len(general_val)} pairs) {scores['base model', d]:.2f} → {scores['final', d]:.2f}")
