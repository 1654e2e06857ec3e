"""A training run's folder, `<log_dir>/<run_name>`: one live run at a time, checked writable before any data
is read, never overwritten by a fresh start, and where `--resume 1` finds what to continue
(`training_checkpoint` checks that it can be continued before Lightning restores it).

    with open_run(cfg, "pretrain"):       # locks <log_dir>/<run_name>/run.lock until the block ends
        ...
        trainer.fit(..., ckpt_path=resume_path(cfg, "pretrain"))

The lock file holds the owner's pid, host and start time, and the owner holds an advisory `flock` on it for as
long as it runs (the kernel drops it when the process dies, even by kill -9). A lock of this host that no live
process holds is stale: it is said and taken over. A lock of another host is refused, since whether its owner
still runs cannot be checked from here.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from clmr.atomic import OutputPathError, check_writable
from clmr.checkpoints import (
    CheckpointError,
    first_mismatch,
    hyper_parameters,
    read_checkpoint,
    require_finite,
    some_keys,
    state_dict_in,
)
from clmr.config import ConfigError
from clmr.filenames import shown
from clmr.trainer import BEST, LAST, checkpoint_dir, run_name

LOCK = "run.lock"
TAKEOVER_ATTEMPTS = 3  # a lock file replaced between our open and our flock is opened again
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK")  # torchrun, SLURM, Lightning


class RunInUse(ConfigError):
    """Another live run holds the run folder."""


def launched_as_rank_zero() -> bool:
    """Whether this process is global rank 0 of its launch, known before the Trainer exists: none of the rank
    variables of torchrun, SLURM or Lightning's own launcher names another rank. The other ranks neither lock
    nor check the folder: rank 0 does it for the run."""
    return all((os.environ.get(name) or "0").strip() in ("0", "") for name in RANK_VARIABLES)


def run_dir(cfg: Namespace, stage: str) -> Path:
    return Path(cfg.log_dir) / run_name(cfg, stage)


class RunLock:
    """`<run folder>/run.lock` for the life of one process; see the module's docstring."""

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    @staticmethod
    def owner() -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
        }

    def acquire(self) -> str | None:
        """Take the lock; returns a note when a stale lock was taken over. Raises RunInUse, or OSError when the
        folder cannot be written."""
        for _ in range(TAKEOVER_ATTEMPTS):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                claimed, note = self._claim(fd)
            except BaseException:
                os.close(fd)
                raise
            if claimed:
                self.fd = fd
                return note
            os.close(fd)  # the file was replaced between our open and our flock: try the new one
        raise RunInUse(f"{self.path}: the lock keeps being replaced; is another run starting on this folder?")

    def _claim(self, fd: int) -> tuple[bool, str | None]:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            flocked = True
        except BlockingIOError:
            raise RunInUse(self._in_use(self._read(fd))) from None
        except OSError:  # a filesystem without flock: the pid and host decide alone
            flocked = False
        try:
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                return False, None
        except FileNotFoundError:
            return False, None
        holder, note = self._read(fd), None
        if holder:
            host, pid = holder.get("host"), holder.get("pid")
            if host != socket.gethostname() or (not flocked and _alive(pid)):
                raise RunInUse(self._in_use(holder))
            note = (
                f"took over the stale lock {self.path} of pid {pid} on this host (started "
                f"{holder.get('started', '?')}): that run is no longer running"
            )
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(self.owner()) + "\n").encode())
            os.fsync(fd)
        except OSError:  # a full disk: leave no empty lock behind
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise
        return True, note

    @staticmethod
    def _read(fd: int) -> dict[str, Any]:
        try:
            data = json.loads(os.pread(fd, 1 << 16, 0).decode() or "{}")
        except (ValueError, UnicodeDecodeError):
            return {"pid": None, "host": socket.gethostname()}  # half-written by a run killed at its start
        return data if isinstance(data, dict) else {}

    def _in_use(self, holder: dict[str, Any]) -> str:
        where = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started {holder.get('started', '?')}"
        advice = "wait for it to end, or pass another --run_name"
        if holder.get("host") != socket.gethostname():
            advice += f"; if that run has ended, delete {self.path}"
        return f"{self.path.parent}: in use by another run ({where}); {advice}"

    def release(self) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            if os.fstat(self.fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        os.close(self.fd)
        self.fd = None


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def existing_checkpoints(cfg: Namespace, stage: str) -> list[Path]:
    folder = checkpoint_dir(cfg, stage)
    return [folder / name for name in (LAST, BEST) if (folder / name).is_file()]


def describe_checkpoints(cfg: Namespace, stage: str) -> str:
    """The run's checkpoints that exist now, for the line printed at the end of a run."""
    found = existing_checkpoints(cfg, stage)
    if not found:
        return "checkpoints: none written (no training step ran)"
    if len(found) == 1:
        return f"checkpoints: {found[0]}"
    return f"checkpoints: {found[0].parent}/{{{','.join(p.stem for p in found)}}}.ckpt"


def check_fresh_start(cfg: Namespace, stage: str) -> None:
    """A run started without --resume 1 or --checkpoint_path must not overwrite an earlier run's checkpoints."""
    if cfg.resume or cfg.checkpoint_path:
        return
    found = existing_checkpoints(cfg, stage)
    if found:
        raise ConfigError(
            f"{checkpoint_dir(cfg, stage)} already holds {' and '.join(p.name for p in found)} of an "
            f"earlier run: pass --resume 1 to continue it, or another --run_name to start afresh"
        )


def resume_path(cfg: Namespace, stage: str) -> str | None:
    """The checkpoint to continue from: --checkpoint_path, or with --resume 1 the run's last.ckpt (which must exist)."""
    if cfg.checkpoint_path:
        if not Path(cfg.checkpoint_path).is_file():
            raise FileNotFoundError(f"--checkpoint_path {cfg.checkpoint_path}: file not found")
        return cfg.checkpoint_path
    if not cfg.resume:
        return None
    last = checkpoint_dir(cfg, stage) / LAST
    if last.is_file():
        return str(last)
    others = sorted(p.parent.parent.name for p in Path(cfg.log_dir).glob(f"*/checkpoints/{LAST}"))
    known = (
        f"runs with a {LAST} in {cfg.log_dir}: {', '.join(others)}" if others else f"no run in {cfg.log_dir} has one"
    )
    raise CheckpointError(
        f"--resume 1: nothing to resume for --run_name {run_name(cfg, stage)} (no {last}; {known}); "
        f"drop --resume to start afresh"
    )


def _remove_half_written(folder: Path) -> None:
    """Temporary files of a write that a kill -9 interrupted (clmr.atomic): only the holder of the lock writes here."""
    for tmp in folder.glob(".*.tmp-*"):
        with contextlib.suppress(OSError):
            tmp.unlink()


@contextlib.contextmanager
def open_run(cfg: Namespace, stage: str) -> Iterator[Path]:
    """The run folder, locked for this run (on global rank 0) until the block ends, however it ends.

    Refused before any data is read: a folder that cannot be written (one line naming it), a live run holding
    it, a fresh start over an earlier run's checkpoints, --resume 1 with nothing to resume.
    """
    folder = run_dir(cfg, stage)
    resume_path(cfg, stage)
    if not launched_as_rank_zero():
        yield folder
        return
    check_writable(folder, "--log_dir")  # read-only, full, a file in the way: one line, before any data is read
    lock = RunLock(folder / LOCK)
    try:
        note = lock.acquire()
    except OSError as err:  # what the check could not foresee (the disk filled since)
        raise OutputPathError(
            f"{shown(folder)}: cannot write the run's lock there ({err.strerror or err}); "
            f"choose another folder with --log_dir"
        ) from None
    try:
        if note:
            print(f"warning: {note}", file=sys.stderr, flush=True)
        check_fresh_start(cfg, stage)
        _remove_half_written(checkpoint_dir(cfg, stage))
        yield folder
    finally:
        lock.release()


# -- training checkpoints (main.py --checkpoint_path, --resume 1) --------------------------------
KINDS = {  # what main.py's stages write, told apart by their state-dict keys
    "pretrain": ("a pre-training checkpoint", "model.encoder.*, model.projector.*"),
    "supervised": ("a supervised-baseline checkpoint", "model.sequential.*, model.fc.*"),
    "linear": ("a probe-head checkpoint of linear_evaluation.py", "model.0.*"),
}
TRAINING_STATE = ("optimizer_states", "epoch", "global_step")  # what Lightning needs to continue training


def checkpoint_kind(state: dict[str, Any]) -> str | None:
    """Which stage wrote a Lightning state dict (a key of KINDS), or None for none of ours."""
    for kind, prefix in (("pretrain", "model.encoder."), ("supervised", "model.sequential."), ("linear", "model.0.")):
        if any(str(k).startswith(prefix) for k in state):
            return kind
    return None


def training_checkpoint(
    path: str | os.PathLike,
    expected: dict[str, torch.Tensor],
    stage: str,
    optimizer: str | None = None,
    flag: str = "--checkpoint_path",
) -> dict[str, Any]:
    """A checkpoint that main.py's `stage` can continue training from, checked before Lightning restores it.

    `expected` is the state dict of the module to be trained. Refused, each in one line: what is not a
    checkpoint (empty, truncated, code), a bare state dict or a weights-only file, another stage's checkpoint,
    another architecture or configuration (the first mismatched key), NaN or Inf weights, another optimiser.
    """
    obj = read_checkpoint(path, flag)
    what, keys = KINDS[stage]
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{flag} {path}: not a training checkpoint (a {type(obj).__name__}; expected {what} written by main.py)"
        )
    state = state_dict_in(obj, "state_dict")
    if state is None:
        bare = state_dict_in(obj, None) and all(isinstance(v, torch.Tensor) for v in obj.values())
        found = f"a bare state dict (keys {some_keys(obj)})" if bare else f"no state_dict (keys {some_keys(obj)})"
        raise CheckpointError(
            f"{flag} {path}: {found}, not a training checkpoint: main.py continues {what} "
            f"(keys {keys}) with its optimiser state and progress"
        )
    kind = checkpoint_kind(state)
    if kind != stage:
        found = KINDS[kind][0] if kind else f"not a checkpoint of main.py (keys {some_keys(state)})"
        raise CheckpointError(
            f"{flag} {path}: {found}; {'--supervised 1' if stage == 'supervised' else 'pre-training'}"
            f" continues {what} (keys {keys})"
        )
    mismatch = first_mismatch(expected, state, model="this run's model", strict=True)
    if mismatch:
        raise CheckpointError(f"{flag} {path}: another architecture or configuration than this run's: {mismatch}")
    missing = [k for k in TRAINING_STATE if k not in obj]
    if missing:
        raise CheckpointError(
            f"{flag} {path}: weights without {', '.join(missing)}: not a checkpoint to continue "
            f"training from (linear_evaluation.py, predict.py and export.py read it)"
        )
    require_finite(state, path, flag, "model")
    trained_with = hyper_parameters(obj).get("optimizer")
    if optimizer and trained_with and trained_with != optimizer:
        raise CheckpointError(
            f"{flag} {path}: trained with --optimizer {trained_with}; continue it with the same "
            f"optimiser (this run has --optimizer {optimizer})"
        )
    return obj
