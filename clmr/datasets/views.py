"""What the training loops see of a dataset: random crops, or pairs of independently cropped views."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from clmr.audio import AudioFileError
from clmr.datasets.dataset import AudioDataset, DatasetError
from clmr.filenames import shown

log = logging.getLogger(__name__)

MAX_SUBSTITUTES = 10  # a run of unreadable tracks longer than this is an error, not a skip


class CropDataset(Dataset):
    """Tracks of at least `audio_length` samples, each item `n_views` independent random crops and the label.

    `transform` (the per-example augmentation chain, when it runs in DataLoader workers) is applied
    to each view. A track that fails to decode is skipped with one warning and the next one is used.
    Items are (views, label) with views of shape (n_views, 1, audio_length), or (1, audio_length)
    when `n_views` is None.
    """

    def __init__(
        self,
        dataset: AudioDataset,
        n_views: int | None = 2,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        self.dataset = dataset
        self.n_views = n_views
        self.transform = transform
        self.indices = dataset.long_enough()
        if not self.indices:
            raise DatasetError(
                f"{shown(dataset.root)}: no track of {dataset.name}/{dataset.subset} is at least "
                f"{dataset.audio_length} samples long"
            )
        self.failed: set[int] = set()

    def __len__(self) -> int:
        return len(self.indices)

    def _crops(self, track: int) -> torch.Tensor:
        views = [self.dataset.random_crop(track) for _ in range(self.n_views or 1)]
        if self.transform is not None:
            views = [self.transform(v) for v in views]
        if not self.n_views:
            return views[0]
        # numpy's stack is single-threaded: torch.stack of a few crops goes parallel, and with the
        # training process's threads sharing the cores it cost more than the reads themselves.
        return torch.from_numpy(np.stack([v.numpy(force=True) for v in views]))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        for attempt in range(MAX_SUBSTITUTES):
            track = self.indices[(i + attempt) % len(self.indices)]
            if track in self.failed:
                continue
            try:
                return self._crops(track), self.dataset.label(track)
            except AudioFileError as err:
                self.failed.add(track)
                log.warning("skipping %s (%d unusable so far in this process)", err, len(self.failed))
        raise DatasetError(
            f"{self.dataset.name}/{self.dataset.subset}: {MAX_SUBSTITUTES} unreadable tracks "
            f"in a row from item {i}; run preprocess.py on the dataset"
        )
