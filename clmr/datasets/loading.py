"""DataLoaders for training: crops read as windows, batched, with workers, pinning and prefetch from the config."""
from __future__ import annotations

from argparse import Namespace
from typing import Callable

import torch
from torch.utils.data import DataLoader

from clmr.datasets.dataset import AudioDataset, DatasetError
from clmr.datasets.views import CropDataset

PREFETCH_FACTOR = 4  # batches each worker prepares ahead


def pin_memory(cfg: Namespace) -> bool:
    """Page-locked batches make host-to-GPU copies asynchronous: worth it only when training runs on a GPU."""
    if not torch.cuda.is_available():
        return False
    from clmr.trainer import hardware

    accelerator = hardware(cfg)["accelerator"]
    return accelerator in ("gpu", "cuda", "auto")


def crop_loader(dataset: AudioDataset, cfg: Namespace, train: bool, n_views: int | None = 2,
                transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                batch_size: int | None = None) -> DataLoader:
    """Batches of random crops (n_views per track, or one when None) of `dataset`."""
    crops = CropDataset(dataset, n_views=n_views, transform=transform)
    batch_size = batch_size or cfg.batch_size
    if train and len(crops) < batch_size:
        raise DatasetError(f"{dataset.describe()}: fewer usable tracks ({len(crops)}) than --batch_size {batch_size}")
    workers = max(cfg.workers, 0)
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
