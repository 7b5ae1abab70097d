"""Stop on request: SIGTERM or SIGINT asks a run to end. The loop finishes the optimizer step it is in, saves a
checkpoint of that exact step (as any other checkpoint) and exits with STOPPED_EXIT, so that
`--resume_from_checkpoint latest` goes on to the weights the uninterrupted run ends with. The Train tab's Stop, a
cluster's preemption notice and Ctrl-C all arrive this way; a second Ctrl-C interrupts at once.

With several processes, the one that got the signal tells the others through accelerate's trigger (an all-reduce
each step), so that all of them stop, and save, at the same step.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

logger = logging.getLogger("aigc_hub.training")
STOPPED_EXIT = 75  # EX_TEMPFAIL (sysexits.h): stopped on request, resumable


class StopSignals:
    def __init__(self) -> None:
        self.requested = False
        if threading.current_thread() is threading.main_thread():  # (signal handlers can only be set there)
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._ask)

    def _ask(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:  # one line, not the traceback of wherever the loop was
            logger.warning("SIGINT again: interrupted at once, without a checkpoint of this step (the last one is "
                           "where --resume_from_checkpoint latest goes on)")
            raise SystemExit(130)
        self.requested = True
        logger.warning("%s: stopping after this step, with a checkpoint", signal.Signals(signum).name)

    def agreed(self, accelerator: Any) -> bool:
        """Whether every process stops now (called after each optimizer step)."""
        if accelerator.num_processes == 1:
            return self.requested
        if self.requested:
            accelerator.set_trigger()
        return accelerator.check_trigger()


def stop_run(trainer: Any, saved_now: bool) -> None:
    """Save this step's checkpoint (unless the loop just did), close the trackers, exit with STOPPED_EXIT."""
    path = trainer.checkpoint_root() / f"checkpoint-{trainer.global_step}" if saved_now else trainer.save_checkpoint()
    logger.warning("stopped at step %d; %s holds it: --resume_from_checkpoint latest goes on from there",
                   trainer.global_step, path)
    trainer.accelerator.end_training()
    raise SystemExit(STOPPED_EXIT)
