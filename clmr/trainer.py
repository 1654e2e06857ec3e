"""The Lightning Trainer from the config: hardware flags, TensorBoard logger, checkpoints (written atomically,
read weights-only), last.ckpt and best.ckpt, and the stops on SIGTERM and on a non-finite loss."""

from __future__ import annotations

import io
import os
from argparse import Namespace
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import Checkpoint, EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO

from clmr.atomic import write_bytes
from clmr.checkpoints import read_checkpoint
from clmr.config import ConfigError
from clmr.datasets.loading import EpochLength
from clmr.hardware import device_of, hardware, on_gpu, parse_devices, training_on_gpu  # noqa: F401 - and here
from clmr.stopping import StopOnNonFiniteLoss, StopOnSignal

LAST, BEST = "last.ckpt", "best.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary name and renamed into place (never half-written), and read through
    `clmr.checkpoints.read_checkpoint`: weights only, whatever the caller or TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD says."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        # Serialised in memory, then written through os.write: a full disk is an OSError naming the
        # checkpoint (torch.save to a file would raise a RuntimeError of its own, a traceback for the user).
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        write_bytes(path, buffer.getbuffer())

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        return read_checkpoint(path)


class LastCheckpoint(Checkpoint):
    """`last.ckpt`: the state at the end of every epoch, and every `every_n_steps` training steps when that is not 0,
    whatever the valid loss did.

    Lightning's `ModelCheckpoint(monitor=..., save_last=True)` writes last.ckpt only in a step where it also writes a
    top-k checkpoint, so once the valid loss stops improving it stays at the best epoch; this callback looks at no
    metric. Lightning runs checkpoint callbacks after the others, so the epoch's best.ckpt, early stopping and the
    stops of `clmr.stopping` have been decided when it writes.
    """

    def __init__(self, path: str | os.PathLike, every_n_steps: int = 0):
        if every_n_steps < 0:
            raise ConfigError(
                f"--save_every_n_steps {every_n_steps}: expected 0 (only at the end of each epoch) "
                f"or a positive number of training steps"
            )
        self.path = Path(path)
        self.every_n_steps = every_n_steps
        self.saved_step: int | None = None

    def _save(self, trainer: Trainer) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        trainer.save_checkpoint(self.path)
        self.saved_step = trainer.global_step

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._save(trainer)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Training that ends inside an epoch (`--max_steps`) still leaves its final state."""
        if trainer.global_step and self.saved_step != trainer.global_step:
            self._save(trainer)


def run_name(cfg: Namespace, stage: str) -> str:
    return cfg.run_name or f"{stage}_{cfg.dataset}"


def checkpoint_dir(cfg: Namespace, stage: str) -> Path:
    """`<log_dir>/<run_name>/checkpoints`: shared by every version of a run, so that --resume finds it."""
    return Path(cfg.log_dir) / run_name(cfg, stage) / "checkpoints"


def use_sync_batchnorm(cfg: Namespace, hw: dict[str, Any]) -> bool:
    """SyncBatchNorm (BatchNorm statistics over every process's batch, as SimCLR and CLMR) unless
    `--sync_batchnorm 0`, on GPUs that may be more than one process.

    PyTorch's SyncBatchNorm runs only on GPUs: on CPU processes BatchNorm statistics stay per process.
    Lightning converts the layers only under a parallel strategy (DDP, FSDP), so `devices auto` on a
    one-GPU machine stays plain BatchNorm.
    """
    devices = hw["devices"]
    one_process = hw["num_nodes"] == 1 and (devices == 1 or (isinstance(devices, list) and len(devices) == 1))
    return bool(cfg.sync_batchnorm) and on_gpu(hw) and not one_process


def native_bf16(cfg: Namespace) -> bool:
    """Whether the training device computes in bfloat16 natively: an Ampere or newer GPU, or a CPU with
    AVX512-BF16 or AMX-BF16. Elsewhere bf16 is emulated and slower than fp32."""
    if training_on_gpu(cfg):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    accelerator = hardware(cfg)["accelerator"]
    if accelerator == "cpu" or (accelerator == "auto" and not torch.backends.mps.is_available()):
        capabilities = torch.cpu.get_capabilities()
        return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))
    return False


ENCODER_STAGES = ("pretrain", "supervised")  # stages that train SampleCNN, where bf16 pays


def resolve_precision(cfg: Namespace, stage: str = "pretrain") -> str:
    """`--precision auto`: bf16-mixed to train the encoder where the device computes bf16 natively (about
    twice as fast as fp32 on an AVX512-BF16 CPU; see docs/PERFORMANCE.md), else 32-true, and 32-true
    for the linear head, which is too small to gain. Any other value is used as given."""
    if cfg.precision != "auto":
        return cfg.precision
    return "bf16-mixed" if stage in ENCODER_STAGES and native_bf16(cfg) else "32-true"


def checkpoint_callbacks(cfg: Namespace, stage: str, monitor: str = "Valid/loss") -> list[Callback]:
    """best.ckpt by the monitored (validation) loss, first (it is the Trainer's `checkpoint_callback`), and
    last.ckpt after every epoch (and every --save_every_n_steps steps of an encoder stage)."""
    every = cfg.save_every_n_steps if stage in ENCODER_STAGES else 0
    folder = checkpoint_dir(cfg, stage)
    return [
        ModelCheckpoint(
            dirpath=folder,
            filename=Path(BEST).stem,
            monitor=monitor,
            mode="min",
            save_top_k=1,
            enable_version_counter=False,
        ),
        LastCheckpoint(folder / LAST, every_n_steps=every),
    ]


RESUME_HINTS = {"linear": "run the command again (the cached representations are kept; the head is retrained)"}


def training_guards(cfg: Namespace, stage: str) -> list[Callback]:
    """The stops of `clmr.stopping` (on SIGTERM after a checkpoint of the step, on a non-finite loss), and what
    keeps the training loader's position right in every checkpoint."""
    last = checkpoint_dir(cfg, stage) / LAST
    return [
        StopOnNonFiniteLoss(stage, last),
        StopOnSignal(last, RESUME_HINTS.get(stage, "continue with the same command and --resume 1")),
        EpochLength(),
    ]


def early_stopping(cfg: Namespace, monitor: str = "Valid/loss") -> Callback:
    return EarlyStopping(monitor=monitor, mode="min", patience=cfg.early_stopping_patience)


def build_trainer(
    cfg: Namespace, stage: str, callbacks: list[Callback] = (), max_epochs: int | None = None, **overrides: Any
) -> Trainer:
    """A Trainer that logs to TensorBoard under `<log_dir>/<run_name>` and writes checkpoints atomically."""
    hw = hardware(cfg)
    options = dict(
        **hw,
        strategy=cfg.strategy,
        precision=resolve_precision(cfg, stage),
        max_epochs=cfg.max_epochs if max_epochs is None else max_epochs,
        max_steps=cfg.max_steps,
        limit_train_batches=cfg.limit_train_batches,
        limit_val_batches=cfg.limit_val_batches,
        check_val_every_n_epoch=cfg.check_val_every_n_epoch,
        log_every_n_steps=cfg.log_every_n_steps,
        deterministic=bool(cfg.deterministic),
        sync_batchnorm=use_sync_batchnorm(cfg, hw),
        logger=TensorBoardLogger(save_dir=cfg.log_dir, name=run_name(cfg, stage), default_hp_metric=False),
        default_root_dir=Path(cfg.log_dir) / run_name(cfg, stage),  # where Lightning would look for hpc_ckpt_*.ckpt
        callbacks=[LearningRateMonitor(logging_interval="step"), *training_guards(cfg, stage), *callbacks],
        plugins=[AtomicCheckpointIO()],
        enable_model_summary=False,
    )
    options.update(overrides)
    return Trainer(**options)


def tensorboard_hint(cfg: Namespace) -> str:
    return f"tensorboard --logdir {os.path.normpath(cfg.log_dir)}"
