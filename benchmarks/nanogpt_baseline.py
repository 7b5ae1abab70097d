"""nanoGPT's CPU run, re-implemented as a plain PyTorch loop: the same-run baseline for `bench_text.py`.

What nanoGPT's README runs on a CPU (`train.py config/train_shakespeare_char.py --device=cpu --compile=False
--eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128
--max_iters=2000 --lr_decay_iters=2000 --dropout=0.0`), written out here so that it runs beside `train_text.py` in
the same invocation on the same machine, with nothing hard-coded from elsewhere:

- data: Tiny Shakespeare as characters, first 90 % train / last 10 % validation, batches of random windows;
- model: nanoGPT's GPT (pre-norm blocks, fused qkv, `scaled_dot_product_attention`, GELU MLP, no biases, tied
  embeddings, its initialisation);
- optimiser: AdamW (0.9, 0.99), weight decay 0.1 on matrices only, lr 1e-3 with 100 warmup iterations and cosine
  decay to 1e-4 at 2,000, gradient clipping at 1.0;
- evaluation: 20 batches of each split every 250 iterations and at the end, as nanoGPT's `estimate_loss`.

`model_cls` lets the same loop drive another model (bench_text uses it with transformers' GPT-2 of train_text's
configuration to time the loop apart from the model).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Config:
    block_size: int = 64
    batch_size: int = 12
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    max_iters: int = 2000
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    weight_decay: float = 0.1
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_iters: int = 20
    seed: int = 1337  # nanoGPT's


class CausalSelfAttention(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=False)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=False)
        self.n_head = c.n_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in self.c_attn(x).split(d, 2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, d))


class Block(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(c.n_embd, bias=False), nn.LayerNorm(c.n_embd, bias=False)
        self.attn = CausalSelfAttention(c)
        self.mlp = nn.Sequential(nn.Linear(c.n_embd, 4 * c.n_embd, bias=False), nn.GELU(),
                                 nn.Linear(4 * c.n_embd, c.n_embd, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, c: Config, vocab_size: int) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab_size, c.n_embd), nn.Embedding(c.block_size, c.n_embd)
        self.h = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=False)
        self.lm_head = nn.Linear(c.n_embd, vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight  # tied
        for name, p in self.named_parameters():
            if p.dim() >= 2:  # nanoGPT: N(0, 0.02), residual projections scaled by 1/sqrt(2 n_layer)
                std = 0.02 / math.sqrt(2 * c.n_layer) if name.endswith(("c_proj.weight", "mlp.2.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def char_data(path: Path) -> tuple[torch.Tensor, torch.Tensor, int]:
    """nanoGPT's prepare.py for shakespeare_char: sorted characters as ids, 90 % / 10 % split."""
    text = path.read_text(encoding="utf-8")
    stoi = {ch: i for i, ch in enumerate(sorted(set(text)))}
    ids = torch.tensor([stoi[ch] for ch in text], dtype=torch.long)
    n = int(0.9 * len(ids))
    return ids[:n], ids[n:], len(stoi)


def lr_at(it: int, c: Config) -> float:
    if it < c.warmup_iters:
        return c.learning_rate * (it + 1) / (c.warmup_iters + 1)
    ratio = (it - c.warmup_iters) / (c.max_iters - c.warmup_iters)
    return c.min_lr + 0.5 * (1.0 + math.cos(math.pi * min(ratio, 1.0))) * (c.learning_rate - c.min_lr)


def train(path: Path, c: Config = Config(), model_cls: Callable[[Config, int], nn.Module] = GPT,
          log: Callable[[str], None] | None = None,
          final_whole_split: bool = False) -> list[tuple[int, float, float]]:
    """Run the loop; returns (iteration, seconds since start, validation loss) at every evaluation, each also
    told to `log` as it happens. `final_whole_split` adds, after nanoGPT's loop, the loss over the whole validation
    split (not something nanoGPT does; bench_text asks for it so the final figures of both runs compare)."""
    torch.manual_seed(c.seed)
    train_ids, val_ids, vocab = char_data(path)
    model = model_cls(c, vocab)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": c.weight_decay}, {"params": rest, "weight_decay": 0.0}],
                            lr=c.learning_rate, betas=(0.9, c.beta2))

    def batch(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ix = torch.randint(len(ids) - c.block_size, (c.batch_size,))
        return (torch.stack([ids[i : i + c.block_size] for i in ix]),
                torch.stack([ids[i + 1 : i + 1 + c.block_size] for i in ix]))

    @torch.no_grad()
    def val_loss() -> float:
        model.eval()
        for ids in (train_ids, val_ids):  # nanoGPT estimates both splits; the validation one is reported
            losses = [model(*batch(ids)).item() for _ in range(c.eval_iters)]
        model.train()
        return sum(losses) / len(losses)

    @torch.no_grad()
    def whole_split_loss() -> float:
        """Mean loss over every non-overlapping window of the validation split (no sampling noise): what
        train_text.py's card reports, so the two final figures compare."""
        model.eval()
        starts = torch.arange(0, len(val_ids) - c.block_size - 1, c.block_size)
        total = 0.0
        for chunk in starts.split(64):
            x = torch.stack([val_ids[i : i + c.block_size] for i in chunk])
            y = torch.stack([val_ids[i + 1 : i + 1 + c.block_size] for i in chunk])
            total += model(x, y).item() * len(chunk)
        model.train()
        return total / len(starts)

    evals = []
    start = time.perf_counter()
    for it in range(c.max_iters + 1):  # as nanoGPT: iterations 0..max_iters, the last one only evaluated
        for group in opt.param_groups:
            group["lr"] = lr_at(it, c)
        if it % c.eval_interval == 0:
            loss = val_loss()
            evals.append((it, time.perf_counter() - start, loss))
            if log:
                log(f"step {it}: val loss {loss:.4f}")
        if it == c.max_iters:
            break
        loss = model(*batch(train_ids))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()  # nanoGPT logs every iteration (--log_interval=1)
    if final_whole_split:
        loss = whole_split_loss()
        evals.append((c.max_iters, time.perf_counter() - start, loss))
        if log:
            log(f"final: val loss {loss:.4f} (whole split)")
    return evals


class HFGPT2(nn.Module):
    """transformers' GPT-2 with train_text.py's configuration for this run, behind nanoGPT's forward signature:
    the same loop then times the loop apart from the model. `activation` "gelu_new" is GPT-2's default."""

    activation = "gelu"  # what train_text.py builds

    def __init__(self, c: Config, vocab_size: int) -> None:
        super().__init__()
        from transformers import AutoModelForCausalLM, GPT2Config

        config = GPT2Config(n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd, n_positions=c.block_size,
                            vocab_size=vocab_size, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                            activation_function=self.activation, bos_token_id=None, eos_token_id=None)
        self.model = AutoModelForCausalLM.from_config(config)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.model(input_ids=idx).logits
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def interleaved_step_times(models: dict[str, nn.Module], vocab_size: int, c: Config = Config(), rounds: int = 6,
                           steps: int = 50) -> dict[str, list[float]]:
    """Milliseconds per training iteration (forward, backward, AdamW step) of each model on the same fixed batch,
    the models taking turns round by round so that a slower spell of the machine hits them all alike."""
    x = torch.randint(vocab_size, (c.batch_size, c.block_size), generator=torch.Generator().manual_seed(0))
    y = torch.roll(x, -1, dims=1)
    opts = {name: torch.optim.AdamW(m.parameters(), lr=c.learning_rate, betas=(0.9, c.beta2)) for name, m in
            models.items()}

    def step(name: str) -> None:
        models[name](x, y).backward()
        opts[name].step()
        opts[name].zero_grad(set_to_none=True)

    for name in models:  # warm-up
        for _ in range(10):
            step(name)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name in models:
            start = time.perf_counter()
            for _ in range(steps):
                step(name)
            times[name].append(1000 * (time.perf_counter() - start) / steps)
    return times


if __name__ == "__main__":  # run on its own, as nanoGPT's train.py is: bench_text times it as a separate process
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="nanoGPT's CPU run as plain PyTorch")
    parser.add_argument("data", type=Path, help="Tiny Shakespeare's input.txt")
    parser.add_argument("--seed", type=int, default=Config.seed)
    cli = parser.parse_args()
    train(cli.data, Config(seed=cli.seed), log=lambda line: print(line, file=sys.stderr, flush=True),
          final_whole_split=True)
