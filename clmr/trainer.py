"""The Lightning Trainer from the config: hardware flags, TensorBoard logger, atomic checkpoints, resume."""
from __future__ import annotations

import os
from argparse import Namespace
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback, Trainer
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO

from clmr.atomic import atomic_path
from clmr.config import ConfigError


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints are written to a temporary name and renamed into place: never half-written."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def run_name(cfg: Namespace, stage: str) -> str:
    return cfg.run_name or f"{stage}_{cfg.dataset}"


def checkpoint_dir(cfg: Namespace, stage: str) -> Path:
    """`<log_dir>/<run_name>/checkpoints`: shared by every version of a run, so that --resume finds it."""
    return Path(cfg.log_dir) / run_name(cfg, stage) / "checkpoints"


def resume_path(cfg: Namespace, stage: str) -> str | None:
    """The checkpoint to resume from: --checkpoint_path, or with --resume 1 the run's last.ckpt."""
    if cfg.checkpoint_path:
        if not Path(cfg.checkpoint_path).is_file():
            raise FileNotFoundError(f"--checkpoint_path {cfg.checkpoint_path}: file not found")
        return cfg.checkpoint_path
    last = checkpoint_dir(cfg, stage) / "last.ckpt"
    if cfg.resume and last.is_file():
        return str(last)
    return None


def parse_devices(devices: str | int) -> str | int | list[int]:
    """`auto`, a count (`2`), or a list of device ids (`0,1`)."""
    text = str(devices).strip()
    if text == "auto":
        return text
    try:
        if "," in text:
            return [int(d) for d in text.split(",") if d.strip()]
        return int(text)
    except ValueError:
        raise ConfigError(f"--devices {devices!r}: expected auto, a number, or a list like 0,1") from None


def hardware(cfg: Namespace) -> dict[str, Any]:
    """Accelerator, devices and nodes; the original `--gpus N` means accelerator gpu on N devices."""
    accelerator, devices = cfg.accelerator, parse_devices(cfg.devices)
    if cfg.gpus > 0:
        accelerator, devices = "gpu", cfg.gpus
    elif cfg.gpus == 0:
        accelerator = "cpu"
    return {"accelerator": accelerator, "devices": devices, "num_nodes": cfg.num_nodes}


def use_sync_batchnorm(cfg: Namespace, hw: dict[str, Any]) -> bool:
    """SyncBatchNorm (BatchNorm statistics over every process's batch, as SimCLR and CLMR) unless
    `--sync_batchnorm 0`, on GPUs that may be more than one process.

    PyTorch's SyncBatchNorm runs only on GPUs: on CPU processes BatchNorm statistics stay per process.
    Lightning converts the layers only under a parallel strategy (DDP, FSDP), so `devices auto` on a
    one-GPU machine stays plain BatchNorm.
    """
    accelerator, devices = hw["accelerator"], hw["devices"]
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    one_process = hw["num_nodes"] == 1 and (devices == 1 or (isinstance(devices, list) and len(devices) == 1))
    return bool(cfg.sync_batchnorm) and on_gpu and not one_process


def training_on_gpu(cfg: Namespace) -> bool:
    """Whether the Trainer built from `cfg` trains on CUDA GPUs (accelerator auto picks them when there are any)."""
    accelerator = hardware(cfg)["accelerator"]
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


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
    """last.ckpt after every epoch and best.ckpt by the monitored (validation) loss."""
    return [ModelCheckpoint(dirpath=checkpoint_dir(cfg, stage), filename="best", monitor=monitor, mode="min",
                            save_top_k=1, save_last=True, enable_version_counter=False)]


def early_stopping(cfg: Namespace, monitor: str = "Valid/loss") -> Callback:
    return EarlyStopping(monitor=monitor, mode="min", patience=cfg.early_stopping_patience)


def build_trainer(cfg: Namespace, stage: str, callbacks: list[Callback] = (), max_epochs: int | None = None,
                  **overrides: Any) -> Trainer:
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
        callbacks=[LearningRateMonitor(logging_interval="step"), *callbacks],
        plugins=[AtomicCheckpointIO()],
        enable_model_summary=False,
    )
    options.update(overrides)
    return Trainer(**options)


def tensorboard_hint(cfg: Namespace) -> str:
    return f"tensorboard --logdir {os.path.normpath(cfg.log_dir)}"
