"""DataLoaders for training: crops read as windows, batched, with workers, pinning and prefetch from the config."""
from __future__ import annotations

import os
from argparse import Namespace
from typing import Callable

import torch
from torch.utils.data import DataLoader

from clmr.datasets.dataset import AudioDataset, DatasetError
from clmr.datasets.views import CropDataset

PREFETCH_FACTOR = 4  # batches each worker prepares ahead


MAX_AUTO_WORKERS = 8


def pin_memory(cfg: Namespace) -> bool:
    """Page-locked batches make host-to-GPU copies asynchronous: worth it only when training runs on a GPU."""
    from clmr.trainer import training_on_gpu

    return torch.cuda.is_available() and training_on_gpu(cfg)


def num_workers(cfg: Namespace) -> int:
    """`--workers N`, or for -1 (auto): none when training on the CPU, where workers would take cores
    from the model (reading the crops by seeking costs about 1% of a step there); on GPUs the cores
    this process may use, shared among this node's GPUs, less one for the main process, at most 8."""
    if cfg.workers >= 0:
        return cfg.workers
    from clmr.trainer import hardware, training_on_gpu

    if not training_on_gpu(cfg):
        return 0
    devices = hardware(cfg)["devices"]
    if isinstance(devices, list):
        per_node = len(devices)
    elif isinstance(devices, int) and devices > 0:
        per_node = devices
    else:
        per_node = max(torch.cuda.device_count(), 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(MAX_AUTO_WORKERS, cores // per_node - 1))


def crop_loader(dataset: AudioDataset, cfg: Namespace, train: bool, n_views: int | None = 2,
                transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                batch_size: int | None = None) -> DataLoader:
    """Batches of random crops (n_views per track, or one when None) of `dataset`."""
    crops = CropDataset(dataset, n_views=n_views, transform=transform)
    batch_size = batch_size or cfg.batch_size
    if train and len(crops) < batch_size:
        raise DatasetError(f"{dataset.describe()}: fewer usable tracks ({len(crops)}) than --batch_size {batch_size}")
    workers = num_workers(cfg)
    return DataLoader(
        crops,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train,  # equal batch sizes on every step (and every DDP rank)
        num_workers=workers,
        pin_memory=pin_memory(cfg),
        persistent_workers=workers > 0,
        prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
    )
