"""clmr.stopping's pieces that the end-to-end runs of tests/test_main.py cannot reach on purpose: Lightning's own
SIGTERM stop before training starts, and SLURM's requeue signal and requeue command."""

from __future__ import annotations

import os
import signal
import stat
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning import Trainer
from pytorch_lightning.utilities.exceptions import SIGTERMException

from clmr import cli
from clmr.stopping import (
    StopOnNonFiniteLoss,
    StopOnSignal,
    TrainingInterrupted,
    no_silent_sigterm,
    requeue_slurm_job,
)

SLURM = {
    "SLURM_NTASKS": "1",
    "SLURM_JOB_NAME": "clmr",
    "SLURM_JOB_ID": "4242",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODEID": "0",
    "SLURM_NODELIST": "localhost",
}


def test_a_sigterm_that_lightning_caught_before_training_exits_143_with_a_line(capsys):
    with pytest.raises(TrainingInterrupted) as stopped:
        with no_silent_sigterm():
            raise SIGTERMException  # Lightning's own stop: a SystemExit whose status would be 0
    assert stopped.value.code == 128 + signal.SIGTERM
    assert "stopped by SIGTERM before the first training step: nothing was saved" in capsys.readouterr().err


def fake_scontrol(tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    script = tmp_path / "scontrol"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> '{calls}'\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    return calls


def test_requeueing_asks_scontrol_to_requeue_this_job(tmp_path, monkeypatch):
    calls = fake_scontrol(tmp_path, monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    assert requeue_slurm_job() == "requeued SLURM job 4242"
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert requeue_slurm_job() == "requeued SLURM job 77_3"
    assert calls.read_text().splitlines() == ["requeue 4242", "requeue 77_3"]


def test_on_slurm_with_auto_requeue_the_requeue_signal_is_handled_like_sigterm(tmp_path, monkeypatch):
    for name, value in SLURM.items():
        monkeypatch.setenv(name, value)
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, default_root_dir=tmp_path)
    stop = StopOnSignal(tmp_path / "last.ckpt", "resume")
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        stop._install(trainer)
        assert signal.getsignal(signal.SIGTERM) == stop._note and signal.getsignal(signal.SIGUSR1) == stop._note
        signal.raise_signal(signal.SIGUSR1)
        assert stop.received == signal.SIGUSR1
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_without_slurm_only_sigterm_is_taken_over(tmp_path):
    trainer = Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, default_root_dir=tmp_path)
    stop = StopOnSignal(tmp_path / "last.ckpt", "resume")
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGUSR1)}
    try:
        stop._install(trainer)
        assert signal.getsignal(signal.SIGTERM) == stop._note
        assert signal.getsignal(signal.SIGUSR1) == before[signal.SIGUSR1]
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def fake_ddp_trainer(global_rank: int):
    """Just what StopOnNonFiniteLoss reads of a Trainer, as on one process of a 2-process DDP run."""
    progress = SimpleNamespace(current=SimpleNamespace(processed=3))
    return SimpleNamespace(
        global_rank=global_rank,
        global_step=7,
        current_epoch=0,
        num_training_batches=10,
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(batch_progress=progress)),
        strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, all=True: False),  # some rank diverged
    )


@pytest.mark.parametrize("rank, printed", [(0, 1), (1, 0)])
def test_a_diverged_loss_under_ddp_is_one_line_from_rank_zero_and_status_1_on_every_rank(rank, printed, capsys):
    def diverge():
        StopOnNonFiniteLoss("pretrain").on_train_batch_end(
            fake_ddp_trainer(rank), None, torch.tensor(float("nan")), None, 0
        )

    with pytest.raises(SystemExit) as stopped:
        cli.run(diverge)
    assert stopped.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len([line for line in lines if line.startswith("error: Train/loss became nan at step 7")]) == printed
