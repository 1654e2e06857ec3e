"""DataLoaders for training: crops read as windows, batched, with workers, pinning and prefetch.

The training loader is resumable: its order is drawn from (seed, epoch) alone and its position in the epoch is
saved in every checkpoint (Lightning's `state_dict` protocol for loaders), so a run resumed from a checkpoint
written mid-epoch trains on the batches the interrupted run had not reached, in the order it would have.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler

from clmr.datasets.dataset import AudioDataset, DatasetError
from clmr.datasets.views import CropDataset

PREFETCH_FACTOR = 4  # batches each worker prepares ahead


class EpochShuffle(RandomSampler):
    """A random order of the dataset drawn from (seed, epoch) alone, as DistributedSampler draws it.

    A RandomSampler (so Lightning puts a DistributedSampler in its place under DDP); Lightning calls `set_epoch`.
    """

    def __init__(self, data_source: Any, seed: int):
        super().__init__(data_source)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(len(self.data_source), generator=generator).tolist())


class ResumableBatches(BatchSampler):
    """Batches of a sampler; the next pass may start `skip` batches in (indices only: no audio is read for them)."""

    def __init__(self, sampler: Sampler[int], batch_size: int, drop_last: bool):
        super().__init__(sampler, batch_size, drop_last)
        self.skip = 0

    def __iter__(self) -> Iterator[list[int]]:
        skip, self.skip = self.skip, 0  # taken when the pass starts: workers draw their indices at once
        return itertools.islice(super().__iter__(), skip, None)


class ResumableLoader(DataLoader):
    """A training DataLoader over `ResumableBatches` whose position is part of Lightning's checkpoints.

    `state_dict()` is the epoch and the batches handed out in it; after `load_state_dict`, the next pass over
    that epoch skips those batches. Lightning 2.6 restores the step counters of a mid-epoch checkpoint but
    restarts a plain loader from its first batch; with this one the resumed run sees what the interrupted
    run would have seen.
    """

    _position = 0
    _resume: tuple[int, int] | None = None
    epoch_length: int | None = None  # batches Lightning takes an epoch (after its limit); set by `EpochLength`

    def _samplers(self) -> list[Any]:
        return [s for s in (self.batch_sampler, getattr(self.batch_sampler, "sampler", None)) if s is not None]

    def _epoch(self) -> int:
        return int(getattr(getattr(self.batch_sampler, "sampler", None), "epoch", 0))

    def __iter__(self) -> Iterator[Any]:
        start = 0
        if self._resume and self._resume[0] == self._epoch() and self._resume[1] < len(self.batch_sampler):
            start = self._resume[1]
        self._resume = None
        self.batch_sampler.skip = start
        self._position = start
        return self._counted(super().__iter__())

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self._position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """The position: where the next batch comes from. After an epoch's last batch that is the next epoch's
        start, as Lightning restores a checkpoint written there (as the end of the epoch)."""
        if self.epoch_length is not None and self._position >= self.epoch_length:
            return {"epoch": self._epoch() + 1, "batches": 0}
        return {"epoch": self._epoch(), "batches": self._position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch = int(state.get("epoch", 0))
        for sampler in self._samplers():  # before the epoch's iterator is made, which Lightning does first
            if callable(getattr(sampler, "set_epoch", None)):
                sampler.set_epoch(epoch)
        self._resume = (epoch, int(state.get("batches", 0)))


class EpochLength(Callback):
    """Tells the training's ResumableLoaders how many batches Lightning takes from them an epoch (after
    --limit_train_batches), which only the Trainer knows, so that their position after an epoch's last batch is
    the next epoch's start."""

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        loaders = trainer.train_dataloader
        if isinstance(loaders, dict):
            loaders = list(loaders.values())
        elif not isinstance(loaders, (list, tuple)):
            loaders = [loaders]
        batches = trainer.num_training_batches
        for loader in loaders:
            if isinstance(loader, ResumableLoader):
                loader.epoch_length = int(batches) if batches != float("inf") else None


def crop_loader(
    dataset: AudioDataset,
    *,
    batch_size: int,
    train: bool,
    seed: int,
    workers: int = 0,
    pin_memory: bool = False,
    n_views: int | None = 2,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> DataLoader:
    """Batches of random crops (n_views per track, or one when None) of `dataset`; the training order is drawn
    from (`seed`, epoch) and resumable."""
    crops = CropDataset(dataset, n_views=n_views, transform=transform)
    if train and len(crops) < batch_size:
        raise DatasetError(f"{dataset.describe()}: fewer usable tracks ({len(crops)}) than --batch_size {batch_size}")
    options = dict(
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
    )
    if train:  # drop_last: equal batch sizes on every step (and every DDP rank)
        return ResumableLoader(
            crops, batch_sampler=ResumableBatches(EpochShuffle(crops, seed), batch_size, drop_last=True), **options
        )
    return DataLoader(crops, batch_size=batch_size, shuffle=False, **options)
