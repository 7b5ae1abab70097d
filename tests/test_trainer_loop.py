"""The shared training helper's loop, in this process on a tiny model: steps, schedule, EMA, hooks, exact resume.

The scripts exercise it through subprocesses (test_training.py and friends); this runs `Trainer.fit` directly, so a
change to the loop is caught in the fast tier.
"""

from __future__ import annotations

import argparse

import pytest

import torch
from torch.utils.data import DataLoader, TensorDataset

from training.common import Trainer, add_common_args


def make_args(out, *extra: str) -> argparse.Namespace:
    parser = add_common_args(argparse.ArgumentParser())
    return parser.parse_args(["--output_dir", str(out), "--report_to", "none", "--train_batch_size", "8",
                              "--learning_rate", "0.3", "--lr_scheduler", "cosine", "--lr_warmup_steps", "2",
                              "--logging_steps", "1", "--checkpoints_total_limit", "1", *extra])


def fit(out, *extra: str) -> tuple[Trainer, torch.nn.Module, torch.nn.Module, list[int]]:
    """Regress y = 3x - 1 with a 1-unit linear model for the asked steps; returns the trainer, the model, its EMA
    and the steps the hook ran at."""
    args = make_args(out, *extra)
    trainer = Trainer(args, project="test")
    acc = trainer.accelerator
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, generator=g)
    data = TensorDataset(x, 3 * x - 1)
    model = raw = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=args.learning_rate)
    ema = trainer.ema("model", model, decay=0.9)
    model, opt, loader = acc.prepare(model, opt, DataLoader(data, batch_size=args.train_batch_size, shuffle=True))
    _, total = trainer.total_steps(len(loader))
    trainer.scheduler(opt, total)
    calls: list[int] = []

    def step(batch) -> dict[str, float]:
        inputs, targets = batch
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        acc.backward(loss)
        opt.step()
        opt.zero_grad()
        return {"loss": loss.item()}

    trainer.fit(loader, [model], step, hooks=[(4, calls.append)])
    trainer.finish(lambda folder: None, models=[model])
    return trainer, raw, ema, calls


def test_the_loop_counts_optimizer_steps_runs_hooks_and_learns(tmp_path):
    trainer, model, ema, calls = fit(tmp_path / "run", "--max_train_steps", "30", "--gradient_accumulation_steps", "2",
                                     "--checkpointing_steps", "10")
    assert trainer.global_step == 30, "optimizer steps, not micro-batches"
    assert calls == [4, 8, 12, 16, 20, 24, 28, 30], "every 4 steps, and at the last"
    assert trainer.schedulers[0].get_last_lr()[0] < 1e-3, "the cosine schedule ran to its end once"
    weight, bias = (p.item() for p in model.parameters())
    assert abs(weight - 3) < 0.3 and abs(bias + 1) < 0.3, (weight, bias)
    averaged = [p.item() for p in ema.module.parameters()]
    assert averaged != [weight, bias] and abs(averaged[0] - 3) < 1.0, "the EMA trails the model, near it"
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["checkpoint-20"]


def test_resume_in_process_ends_with_the_same_weights(tmp_path):
    full, full_model, full_ema, _ = fit(tmp_path / "full", "--max_train_steps", "14", "--checkpointing_steps", "6")
    checkpoint = tmp_path / "full" / "checkpoints" / "checkpoint-12"
    resumed, resumed_model, resumed_ema, calls = fit(tmp_path / "resumed", "--max_train_steps", "14",
                                                     "--resume_from_checkpoint", str(checkpoint))
    assert calls == [14], "hooks run only for the steps after the checkpoint"
    for a, b in zip([*full_model.parameters(), *full_ema.parameters()],
                    [*resumed_model.parameters(), *resumed_ema.parameters()]):
        assert torch.equal(a, b)
    assert resumed.global_step == full.global_step == 14


def test_a_second_ctrl_c_exits_at_once_in_one_line(caplog):
    import signal

    from training.stopping import StopSignals

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        stops = StopSignals()
        stops._ask(signal.SIGINT, None)
        assert stops.requested
        with pytest.raises(SystemExit) as exit_:
            stops._ask(signal.SIGINT, None)
        assert exit_.value.code == 130 and "interrupted at once" in caplog.text
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
