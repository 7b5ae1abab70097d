"""The one training helper every `train_*.py` script shares.

It owns what is the same for a GAN, a language model and a translation model: accelerate setup, the step loop
with gradient accumulation, learning-rate schedules that count optimizer steps (once, not per process or
micro-batch), exact checkpoint/resume (weights, optimizers, schedulers, RNG, data position), EMA weights, trackers,
sample logging, tqdm progress, and the final save + model card + push. A script supplies only its model-specific
`train_step`, `sample` and `evaluate` functions.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from safetensors.torch import load_model, save_model
from tqdm.auto import tqdm

from aigc_hub.devices import keep_freed_memory
from training.checkpoint_state import (TRAINER_STATE, json_default, list_checkpoints, rng_state, set_rng_state,
                                       step_of)
from training.stopping import StopSignals, stop_run

logger = logging.getLogger("aigc_hub.training")
CHECKPOINT_DIR = "checkpoints"  # under output_dir; never pushed


def add_common_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments every training script accepts (names follow the diffusers/transformers example scripts)."""
    g = parser.add_argument_group("run")
    g.add_argument("--output_dir", required=True, help="where the final model, logs and checkpoints go")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--train_batch_size", type=int, default=64, help="per process, per micro-batch")
    g.add_argument("--gradient_accumulation_steps", type=int, default=1)
    g.add_argument("--num_epochs", type=int, default=1)
    g.add_argument("--max_train_steps", type=int, default=None, help="optimizer steps; overrides --num_epochs")
    g.add_argument("--learning_rate", type=float, default=2e-4)
    g.add_argument("--lr_scheduler", default="constant", help="transformers.get_scheduler name")
    g.add_argument("--lr_warmup_steps", type=int, default=0)
    g.add_argument("--lr_min_ratio", type=float, default=0.0,
                   help="with --lr_scheduler cosine_with_min_lr: final lr as a fraction of --learning_rate")
    g.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default="no", help="GPU only; CPU runs fp32")
    g.add_argument("--dataloader_num_workers", type=int, default=0)
    g = parser.add_argument_group("checkpoints, logging, hub")
    g.add_argument("--checkpointing_steps", type=int, default=500)
    g.add_argument("--checkpoints_total_limit", type=int, default=2)
    g.add_argument("--resume_from_checkpoint", default=None, help="a checkpoint folder, or 'latest'")
    g.add_argument("--report_to", default="tensorboard", help="accelerate tracker name(s), comma-separated, or 'none'")
    g.add_argument("--logging_steps", type=int, default=50)
    g.add_argument("--sample_steps", type=int, default=500, help="log a sample every N steps (0 = never)")
    g.add_argument("--push_to_hub", action="store_true")
    g.add_argument("--hub_model_id", default=None, help="owner/name in the local hub (or on the HF Hub with --hf)")
    g.add_argument("--hf", action="store_true", help="push to the Hugging Face Hub instead of the local hub")
    g.add_argument("--private", action="store_true", help="with --hf: create a private repo")
    g.add_argument("--hub_keep_existing", action="store_true",
                   help="never push over a model the local hub has already (the Train tab's jobs, unless asked to "
                        "overwrite): the model stays in --output_dir and the run says how to publish it")
    g = parser.add_argument_group("model card")
    g.add_argument("--card_title", default=None)
    g.add_argument("--card_dataset", default=None, help="dataset name for the card (default: --dataset)")
    g.add_argument("--card_license", default="mit")
    g.add_argument("--card_notes", default="", help="extra markdown for the card (data attribution, recipe)")
    return parser


def add_optimizer_args(parser: argparse.ArgumentParser, *, weight_decay: float, beta2: float) -> None:
    """AdamW settings of the transformer scripts (defaults differ: nanoGPT's 0.1 / 0.99, Marian's 0.01 / 0.98)."""
    g = parser.add_argument_group("optimizer")
    g.add_argument("--weight_decay", type=float, default=weight_decay)
    g.add_argument("--adam_beta1", type=float, default=0.9)
    g.add_argument("--adam_beta2", type=float, default=beta2)
    g.add_argument("--max_grad_norm", type=float, default=1.0)


def fit_batch(args: argparse.Namespace, items: int, processes: int = 1) -> None:
    """Small data: a --train_batch_size larger than the data (per process) becomes the data's size, and the run says
    so (the Train tab's presets are sized for thousands of items; an upload may hold 48)."""
    per_process = max(1, items // max(1, processes))
    if args.train_batch_size > per_process:
        notice(f"--train_batch_size {args.train_batch_size} is more than the {items} training items hold: batches "
               f"of {per_process}")
        args.train_batch_size = per_process


def notice(text: str) -> None:
    """A line for the person running the script, in its log; the Train tab's live view shows it (jobs/progress.py)."""
    print(f"notice: {text}", file=sys.stderr, flush=True)


def adamw(model: torch.nn.Module, args: argparse.Namespace) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and norm weights (nanoGPT, fairseq), with the fused kernel.

    Fused (one kernel for all parameters, CPU and GPUs alike) instead of the default for-each: the update of the
    text starter's 0.8 M parameters drops from 2.8 ms to 0.6 ms, 4-5 % of a CPU training step."""
    trained = [p for p in model.parameters() if p.requires_grad]  # a LoRA run: only the adapters
    decay = [p for p in trained if p.dim() >= 2]
    rest = [p for p in trained if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                              {"params": rest, "weight_decay": 0.0}],
                             lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2), fused=True)


class Trainer:
    """Runs a step loop under accelerate and makes it resumable to the exact step."""

    def __init__(self, args: argparse.Namespace, project: str) -> None:
        if args.push_to_hub and not args.hub_model_id:
            raise SystemExit("--push_to_hub needs --hub_model_id owner/name")
        if args.push_to_hub:
            from aigc_hub.hub import validate_repo_id

            validate_repo_id(args.hub_model_id)  # fail now, not after hours of training
        self.args = args
        self.output_dir = Path(args.output_dir)
        mixed = args.mixed_precision
        if mixed != "no" and not torch.cuda.is_available():
            logger.warning("--mixed_precision %s needs a GPU; this CPU runs fp32 (bf16 is ~100x slower here)", mixed)
            mixed = "no"
        trackers = [t for t in args.report_to.split(",") if t and t != "none"]
        # Several processes without GPUs (torchrun on CPU): accelerate only picks MULTI_CPU/gloo when told cpu=True.
        multi_cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
        self.accelerator = Accelerator(
            cpu=multi_cpu,
            gradient_accumulation_steps=args.gradient_accumulation_steps,
            mixed_precision=mixed,
            log_with=trackers or None,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir), logging_dir=str(self.output_dir / "logs")),
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
        )
        logging.basicConfig(level=logging.INFO if self.accelerator.is_main_process else logging.WARNING,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        if self.accelerator.device.type == "cpu" and keep_freed_memory():
            logger.info("glibc keeps freed memory for reuse (no page faults on every CPU step)")
        set_seed(args.seed)  # before any model is built, so initial weights follow the seed
        logger.info("%s, %d process(es), device %s, mixed precision %s", self.accelerator.distributed_type,
                    self.accelerator.num_processes, self.accelerator.device, mixed)
        if self.accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            if trackers:
                config = {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}
                self.accelerator.init_trackers(project, config=config)
        self.global_step = 0
        self.epoch = 0  # the data position: epoch and micro-batches consumed in it, saved with every checkpoint
        self.batches_in_epoch = 0
        self.schedulers: list[torch.optim.lr_scheduler.LRScheduler] = []
        self.ema_models: dict[str, torch.nn.Module] = {}
        self._ema_sources: dict[str, torch.nn.Module] = {}
        self._tokenizer: Any = None
        self.stop = StopSignals()

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    # --- set-up ---------------------------------------------------------------------------------------------------
    def scheduler(self, optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
        """A schedule the helper steps once per optimizer step (not prepared: accelerate would step it per process)."""
        from transformers import get_scheduler

        extra = {"min_lr_rate": self.args.lr_min_ratio} if "min_lr" in self.args.lr_scheduler else None
        sched = get_scheduler(self.args.lr_scheduler, optimizer, num_warmup_steps=self.args.lr_warmup_steps,
                              num_training_steps=total_steps, scheduler_specific_kwargs=extra)
        self.schedulers.append(sched)
        return sched

    def ema(self, name: str, model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel:
        """EMA of the *unwrapped* model, buffers (batch-norm statistics) included; update it after each step."""
        from torch.optim.swa_utils import AveragedModel

        def update(ema_params: list, params: list, num_averaged: torch.Tensor) -> None:
            # Warm-up (as diffusers' EMAModel): early on the average follows the model closely, so samples
            # logged in the first thousand steps are not a blur of the initial weights.
            n = float(num_averaged)
            floats = [(e, p) for e, p in zip(ema_params, params) if e.is_floating_point()]
            if floats:
                torch._foreach_lerp_([e for e, _ in floats], [p for _, p in floats], 1.0 - min(decay, (1 + n) / (10 + n)))
            for e, p in zip(ema_params, params):
                if not e.is_floating_point():  # counters such as batch-norm's num_batches_tracked
                    e.copy_(p)

        model = self.accelerator.unwrap_model(model)
        # On the training device: prepare() moves the model there, and the average must live beside it.
        ema = AveragedModel(model, multi_avg_fn=update, use_buffers=True).to(self.accelerator.device)
        self.ema_models[name], self._ema_sources[name] = ema, model
        return ema

    def tokenizer(self, build: Callable[[], Any]) -> Any:
        """The run's tokenizer: a resumed run reads its checkpoint's; otherwise the main process builds it (a trained
        tokenizer can number its pieces differently from run to run) and the other processes read that one."""
        from transformers import AutoTokenizer

        checkpoint = self.find_checkpoint()
        if checkpoint is not None and (checkpoint / "tokenizer").is_dir():
            self._tokenizer = AutoTokenizer.from_pretrained(str(checkpoint / "tokenizer"))
            return self._tokenizer
        shared = self.output_dir / ".tokenizer-of-this-run"  # hidden: never pushed
        if self.is_main:
            self._tokenizer = build()
            self._tokenizer.save_pretrained(str(shared))
        self.accelerator.wait_for_everyone()
        if not self.is_main:
            self._tokenizer = AutoTokenizer.from_pretrained(str(shared))
        return self._tokenizer

    def total_steps(self, dataloader_len: int | None) -> tuple[int | None, int]:
        """(optimizer steps per epoch, total optimizer steps) for a prepared dataloader of this length
        (None: a stream of unknown length, which needs --max_train_steps)."""
        if dataloader_len is None:
            if not self.args.max_train_steps:
                raise SystemExit("a streamed dataset has no known length: give --max_train_steps")
            return None, self.args.max_train_steps
        per_epoch = max(1, math.ceil(dataloader_len / self.args.gradient_accumulation_steps))
        total = self.args.max_train_steps or self.args.num_epochs * per_epoch
        return per_epoch, total

    def step(self, loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """The end of a one-optimizer train_step: backward, clip at --max_grad_norm (on the micro-batch that syncs
        gradients), optimizer step, gradients freed."""
        acc = self.accelerator
        acc.backward(loss)
        if acc.sync_gradients and self.args.max_grad_norm:
            acc.clip_grad_norm_(model.parameters(), self.args.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # --- checkpoints ------------------------------------------------------------------------------------------------
    def checkpoint_root(self) -> Path:
        return self.output_dir / CHECKPOINT_DIR

    def save_checkpoint(self) -> Path:
        path = self.checkpoint_root() / f"checkpoint-{self.global_step}"
        self.accelerator.save_state(str(path), safe_serialization=True)  # models, optimizers, scaler, RNG
        if self.is_main:
            for name, ema in self.ema_models.items():
                save_model(ema, str(path / f"ema_{name}.safetensors"))
            if self._tokenizer is not None:
                self._tokenizer.save_pretrained(str(path / "tokenizer"))
            state = {"global_step": self.global_step, "epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch,
                     "schedulers": [s.state_dict() for s in self.schedulers]}
            (path / TRAINER_STATE).write_text(json.dumps(state, default=json_default))
            self._rotate_checkpoints()
        self.accelerator.wait_for_everyone()
        return path

    def _rotate_checkpoints(self) -> None:
        limit = self.args.checkpoints_total_limit
        found = sorted(list_checkpoints(self.checkpoint_root()), key=lambda p: step_of(p))
        for old in found[: max(0, len(found) - limit)] if limit else []:
            shutil.rmtree(old, ignore_errors=True)

    def find_checkpoint(self) -> Path | None:
        ref = self.args.resume_from_checkpoint
        if not ref:
            return None
        if ref == "latest":
            found = [p for p in list_checkpoints(self.checkpoint_root()) if (p / TRAINER_STATE).exists()]
            if not found:
                logger.warning("no checkpoint in %s: starting from scratch", self.checkpoint_root())
                return None
            return max(found, key=step_of)
        path = Path(ref)
        if not (path / TRAINER_STATE).exists():
            raise SystemExit(f"--resume_from_checkpoint {ref}: not a checkpoint folder (no {TRAINER_STATE})")
        return path

    def load_checkpoint(self, path: Path) -> None:
        self.accelerator.load_state(str(path))
        state = json.loads((path / TRAINER_STATE).read_text())
        self.global_step = int(state["global_step"])
        self.epoch, self.batches_in_epoch = int(state["epoch"]), int(state["batches_in_epoch"])
        for sched, sd in zip(self.schedulers, state["schedulers"]):
            sched.load_state_dict(sd)
        for name, ema in self.ema_models.items():
            load_model(ema, str(path / f"ema_{name}.safetensors"), device=str(self.accelerator.device))
        logger.info("resumed from %s at step %d", path, self.global_step)

    # --- the loop ---------------------------------------------------------------------------------------------------
    def fit(
        self,
        dataloader: Iterable,
        models: list[torch.nn.Module],
        train_step: Callable[[Any], dict[str, float]],
        hooks: list[tuple[int, Callable[[int], Any]]] = (),
    ) -> None:
        """Run `train_step(batch)` under `accelerator.accumulate(*models)` until the planned optimizer step count.

        `hooks` are (every N steps, fn(step)) pairs, also called at the last step: sample grids, evaluations.
        They run on every process; a hook that writes files checks `is_main` itself.
        """
        acc, args = self.accelerator, self.args
        for model in models:  # a base read with from_pretrained comes in eval mode: no dropout, frozen batch-norm
            model.train()
        length = _length(dataloader)
        if length == 0:
            raise SystemExit("the dataset is smaller than one batch: lower --train_batch_size or add data")
        _, total = self.total_steps(length)
        checkpoint = self.find_checkpoint()
        rng_at_checkpoint = None
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
            rng_at_checkpoint = rng_state()
        skip = self.batches_in_epoch
        bar = tqdm(total=total, initial=self.global_step, desc="steps", disable=not self.is_main, dynamic_ncols=True)
        logs: dict[str, float] = {}
        while self.global_step < total:
            dataloader.set_epoch(self.epoch)  # shuffling follows seed + epoch: the same order after a resume
            loader = acc.skip_first_batches(dataloader, skip) if skip else dataloader
            self.batches_in_epoch, skip = skip, 0
            for batch in loader:
                self.batches_in_epoch += 1
                if rng_at_checkpoint is not None:
                    # Starting an epoch's iterator draws from the global RNG; the uninterrupted run did that before
                    # it saved the checkpoint, so give back the RNG state the checkpoint holds.
                    set_rng_state(rng_at_checkpoint)
                    rng_at_checkpoint = None
                with acc.accumulate(*models):
                    logs = train_step(batch)
                if not acc.sync_gradients:
                    continue
                for sched in self.schedulers:
                    sched.step()
                for name, ema in self.ema_models.items():
                    ema.update_parameters(self._ema_sources[name])
                self.global_step += 1
                bar.update(1)
                step = self.global_step
                if step % args.logging_steps == 0 or step == total:
                    logs = {**logs, "lr": self.schedulers[0].get_last_lr()[0]} if self.schedulers else logs
                    acc.log(logs, step=step)
                    bar.set_postfix({k: f"{v:.3g}" for k, v in logs.items()})
                if args.checkpointing_steps and step % args.checkpointing_steps == 0 and step < total:
                    self.save_checkpoint()
                for every, hook in hooks:
                    if every and (step % every == 0 or step == total):
                        hook(step)
                if step >= total:
                    break
                if self.stop.agreed(acc):  # SIGTERM / SIGINT (stopping.py)
                    bar.close()
                    stop_run(self, saved_now=bool(args.checkpointing_steps) and step % args.checkpointing_steps == 0)
            else:
                self.epoch, self.batches_in_epoch = self.epoch + 1, 0
                if rng_at_checkpoint is not None:  # the checkpoint closed its epoch: restore before the next one
                    set_rng_state(rng_at_checkpoint)
                    rng_at_checkpoint = None
        bar.close()
        acc.wait_for_everyone()

    def log_images(self, name: str, grid_hwc: Any, step: int) -> None:
        """Log an HWC uint8 image to every tracker that takes images (tensorboard, wandb, ...)."""
        if not self.is_main:
            return
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_image(name, grid_hwc, step, dataformats="HWC")
            elif hasattr(tracker, "log_images"):
                tracker.log_images({name: [grid_hwc]}, step=step)

    def grid_hook(self, make_grid: Callable[[], Any]) -> Callable[[int], None]:
        """A `fit` hook for image scripts: on the main process, `make_grid()` (an HWC uint8 array) is saved as
        `output_dir/samples/step-N.png` and logged to the trackers as "samples"."""

        def hook(step: int) -> None:
            if not self.is_main:
                return
            from PIL import Image

            grid = make_grid()
            out = self.output_dir / "samples"
            out.mkdir(parents=True, exist_ok=True)
            Image.fromarray(grid.squeeze()).save(out / f"step-{step:07d}.png")
            self.log_images("samples", grid, step)

        return hook

    def log_text(self, name: str, text: str, step: int) -> None:
        """Log a text sample to every tracker that takes text."""
        if not self.is_main:
            return
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                tracker.writer.add_text(name, text, step)
            elif hasattr(tracker, "log_table"):
                tracker.log_table(name, columns=["step", "text"], data=[[step, text]], step=step)

    # --- the end ----------------------------------------------------------------------------------------------------
    def check_replicas(self, models: list[torch.nn.Module]) -> None:
        """Fail loudly if data-parallel replicas drifted apart (a broken all-reduce or EMA would show here)."""
        acc = self.accelerator
        sums = [sum(p.detach().double().sum() for p in acc.unwrap_model(m).parameters()) for m in models]
        local = torch.stack([torch.as_tensor(s, dtype=torch.float64) for s in sums]).to(acc.device)
        gathered = acc.gather(local[None])
        if not torch.equal(gathered.min(0).values, gathered.max(0).values):
            raise RuntimeError(f"replicas differ after training: {gathered.tolist()}")
        logger.info("replicas in sync across %d process(es) (%s): checksums %s", acc.num_processes,
                    acc.distributed_type, [f"{v:.10g}" for v in local.tolist()])

    def finish(self, save_final: Callable[[Path], None], models: list[torch.nn.Module] = ()) -> Path | None:
        """Main process: `save_final(model_dir)` writes weights + card into output_dir; then push if asked."""
        acc, args = self.accelerator, self.args
        self.check_replicas([*models, *self.ema_models.values()])
        pushed = None
        if self.is_main:
            save_final(self.output_dir)
            if args.push_to_hub:
                from aigc_hub import hub

                if args.hub_keep_existing and not args.hf and hub.locate(args.hub_model_id)[0] == "local":
                    raise SystemExit(f"{args.hub_model_id} was published while this run trained, and it is kept: "
                                     f"the model is in {self.output_dir}; publish it under another id with "
                                     f"`python -m aigc_hub push {self.output_dir} --repo-id owner/name`")
                pushed = hub.push(self.output_dir, args.hub_model_id, hf=args.hf, private=args.private)
                logger.info("pushed to %s", pushed)
        acc.wait_for_everyone()
        acc.end_training()
        return pushed


def _length(dataloader: Any) -> int | None:
    try:
        return len(dataloader)
    except TypeError:  # an iterable (streamed) dataset
        return None
