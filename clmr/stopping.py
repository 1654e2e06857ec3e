"""Stopping a training run cleanly: on SIGTERM (a `kill`, a SLURM preemption) after a checkpoint of the current
step, and on a loss that is no longer a finite number, before anything of it is written.

Both decide at the end of a training step, where every DDP process is at the same step: each process contributes
what it saw (a signal, a NaN), one all-reduce makes it the decision of all, so every rank stops at the same step
and no process waits in a collective that another has left. Lightning's own SIGTERM handler is replaced while the
run trains, because it broadcasts inside the signal handler (a collective at whatever point the signal lands) and
its loops then stop each rank where that rank happens to be.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities.exceptions import SIGTERMException

from clmr.checkpoints import first_non_finite
from clmr.config import ConfigError

SIGNAL_EXIT_BASE = 128  # the shell's convention: a run stopped by signal N exits with 128 + N (SIGTERM: 143)

# What usually makes the loss of a stage non-finite, named in the message that stops it.
DIVERGENCE_CAUSES = {
    "pretrain": "a learning rate too high (--learning_rate, or LARS with a large batch), a --temperature too small, "
    "NaN or Inf in the input audio, or fp16 overflow (--precision 16-mixed; try bf16-mixed or 32-true)",
    "supervised": "a learning rate too high (--learning_rate), NaN or Inf in the input audio, or fp16 overflow "
    "(--precision 16-mixed; try bf16-mixed or 32-true)",
    "linear": "a learning rate too high (--finetuner_learning_rate), or NaN or Inf in the encoder's representations",
}


class TrainingInterrupted(SystemExit):
    """Training stopped on a signal (once it had begun, after writing a checkpoint of its last step); the exit
    status is 128 + the signal's number."""

    def __init__(self, signum: int, message: str):
        super().__init__(SIGNAL_EXIT_BASE + signum)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TrainingDiverged(ConfigError):
    """The training loss (or a weight about to be written) is NaN or infinite: stopped, nothing of it written.

    A user error (exit status 1): the flags or the data made it diverge, and the message names the likely causes.
    Every DDP process raises it (they stop together); only global rank 0's is printed (`silent` on the others).
    """

    def __init__(self, message: str, global_rank: int = 0):
        super().__init__(message)
        self.silent = global_rank != 0


def _epoch_position(trainer: Trainer) -> str:
    batches = trainer.num_training_batches
    done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    of = f" of {batches}" if batches != float("inf") else ""
    return f"epoch {trainer.current_epoch}, batch {done}{of}"


class StopOnNonFiniteLoss(Callback):
    """Stops training at the first step whose loss is NaN or Inf, and refuses to write a checkpoint of such weights.

    The check runs after the step and before the checkpoint callbacks of that step (Lightning calls checkpoint
    callbacks last), so the last checkpoint written stays the last good one. `on_save_checkpoint` is the backstop:
    weights that became non-finite without the loss showing it are never written either.
    """

    def __init__(self, stage: str, last_path: str | os.PathLike | None = None):
        self.causes = DIVERGENCE_CAUSES.get(stage, DIVERGENCE_CAUSES["pretrain"])
        self.last_path = Path(last_path) if last_path else None

    def _kept(self) -> str:
        if self.last_path is not None and self.last_path.is_file():
            return f"the last good checkpoint, {self.last_path}, is kept"
        return "no checkpoint was written"

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        finite = bool(torch.isfinite(loss.detach()).all())
        if trainer.strategy.reduce_boolean_decision(finite, all=True):
            return
        value = f"{loss.item():g}" if not finite and loss.numel() == 1 else "non-finite on another process"
        raise TrainingDiverged(
            f"Train/loss became {value} at step {trainer.global_step} "
            f"({_epoch_position(trainer)}): training stopped and {self._kept()}. "
            f"Likely causes: {self.causes}",
            trainer.global_rank,
        )

    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        bad = first_non_finite(checkpoint.get("state_dict", {}))
        if trainer.strategy.reduce_boolean_decision(bad is None, all=True):
            return
        raise TrainingDiverged(
            f"the weights hold NaN or Inf at step {trainer.global_step} "
            f"({bad or 'on another process'}): training stopped and {self._kept()}. "
            f"Likely causes: {self.causes}",
            trainer.global_rank,
        )


class StopOnSignal(Callback):
    """SIGTERM (and, on SLURM with Lightning's auto-requeue, its requeue signal) while training: finish the step,
    write a checkpoint of it to `last_path` (rank 0 writes, atomically), then stop every rank with exit status
    128 + signal and one line saying where the checkpoint is and how to continue.

    The handler only notes the signal; the decision is taken at the end of a training step, where all ranks agree
    on it through one all-reduce. After the requeue signal, rank 0 also asks SLURM to requeue the job, as
    Lightning's auto-requeue does.
    """

    def __init__(self, last_path: str | os.PathLike, how_to_continue: str):
        self.last_path = Path(last_path)
        self.how_to_continue = how_to_continue
        self.received: int | None = None
        self._signals: tuple[int, ...] = (signal.SIGTERM,)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.received = self.received or signum

    def _install(self, trainer: Trainer) -> None:
        """Our handler instead of Lightning's (registered just before the sanity check); Lightning restores the
        handlers of before `fit` when it tears down."""
        if threading.current_thread() is not threading.main_thread():
            return
        connector = getattr(trainer, "_accelerator_connector", None)  # where Lightning's signal connector looks
        environment = getattr(connector, "cluster_environment", None)
        if isinstance(environment, SLURMEnvironment) and environment.auto_requeue and environment.requeue_signal:
            self._signals = (signal.SIGTERM, environment.requeue_signal)
        for signum in self._signals:
            if signal.getsignal(signum) != self._note:
                signal.signal(signum, self._note)

    def on_sanity_check_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._install(trainer)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._install(trainer)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if not trainer.strategy.reduce_boolean_decision(self.received is not None, all=False):
            return
        signum = self.received or signal.SIGTERM  # a signal another rank received
        position = _epoch_position(trainer)
        trainer.save_checkpoint(self.last_path)
        name = signal.Signals(signum).name
        message = (
            f"stopped by {name} at step {trainer.global_step} ({position}): saved {self.last_path}; "
            f"{self.how_to_continue}"
        )
        if signum != signal.SIGTERM and trainer.is_global_zero:
            message += "; " + requeue_slurm_job()
        if trainer.is_global_zero:
            print(message, file=sys.stderr, flush=True)
        raise TrainingInterrupted(signum, message)


@contextlib.contextmanager
def no_silent_sigterm() -> Iterator[None]:
    """A SIGTERM that Lightning's own handler caught, in the moments of `fit` before `StopOnSignal` replaces it
    (setting up the loaders), ends the run with status 143 and a line too, instead of Lightning's status 0."""
    try:
        yield
    except SIGTERMException:
        message = "stopped by SIGTERM before the first training step: nothing was saved"
        print(message, file=sys.stderr, flush=True)
        raise TrainingInterrupted(signal.SIGTERM, message) from None


def requeue_slurm_job() -> str:
    """Ask SLURM to requeue this job (what Lightning's auto-requeue runs); the outcome, in a few words."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}" if array_job else os.environ.get("SLURM_JOB_ID", "")
    if not job:
        return "not requeued (no SLURM_JOB_ID)"
    try:
        status = subprocess.call(["scontrol", "requeue", job])
    except OSError as err:
        return f"requeueing SLURM job {job} failed ({err.strerror})"
    return f"requeued SLURM job {job}" if status == 0 else f"requeueing SLURM job {job} failed (status {status})"
