"""The dataset base: a list of tracks with optional labels, read as fixed-length windows from disk."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from clmr.audio import AUDIO_LENGTH, SAMPLE_RATE, AudioFileError, AudioInfo, audio_info, check_format, read_window
from clmr.filenames import shown

log = logging.getLogger(__name__)

SUBSETS = ("train", "valid", "test")


class DatasetError(ValueError):
    """A dataset that cannot be used: missing folder, missing metadata, no usable tracks."""


class AudioDataset(Dataset):
    """Tracks on disk, each read as a window of `audio_length` samples at a random offset.

    Subclasses fill `files`, and for labelled datasets `targets` and `tag_names`:
    `targets` is (tracks, tags) float32 for multi-label datasets and (tracks,) int64 class indices
    for single-label ones. Files are mono at `sample_rate`; their headers are read once, lazily.
    """

    name = "dataset"
    multilabel = True
    CONFIG_KEYS: dict[str, str] = {}  # constructor argument -> the config key it is read from (dataset_from_config)
    TAG_NAMES: tuple[str, ...] = ()  # tag names fixed in code (the same for every copy of the dataset), if any

    def __init__(
        self, root: str | os.PathLike, subset: str, sample_rate: int = SAMPLE_RATE, audio_length: int = AUDIO_LENGTH
    ):
        if subset not in SUBSETS:
            raise DatasetError(f"unknown subset {subset!r}; expected one of {', '.join(SUBSETS)}")
        self.root = Path(root)
        self.subset = subset
        self.sample_rate = sample_rate
        self.audio_length = audio_length
        self.files: list[Path] = []
        self.targets: np.ndarray | None = None
        self.tag_names: list[str] = []
        self.layout = ""  # one line saying which on-disk layout was read, for datasets that have two
        self._infos: list[AudioInfo] | None = None

    # -- what a track is -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.files)

    @property
    def labelled(self) -> bool:
        return self.targets is not None

    @property
    def n_classes(self) -> int:
        return len(self.tag_names)

    def label(self, idx: int) -> torch.Tensor:
        """The track's label: a multi-hot float vector, or a class index; an empty tensor if unlabelled."""
        if self.targets is None:
            return torch.zeros(0)
        return torch.as_tensor(self.targets[idx])

    def num_frames(self, idx: int) -> int:
        return self.infos[idx].frames

    @property
    def infos(self) -> list[AudioInfo]:
        """Headers of every file, checked for format; unreadable files are dropped with a warning each."""
        if self._infos is None:
            self._scan()
        return self._infos  # type: ignore[return-value]

    def _scan(self) -> None:
        keep, infos, bad = [], [], []
        for i, path in enumerate(self.files):
            try:
                info = audio_info(path)
            except AudioFileError as err:
                log.warning("skipping %s", err)
                bad.append(path)
                continue
            check_format(path, info, self.sample_rate)
            keep.append(i)
            infos.append(info)
        if bad:
            log.warning("%s/%s: skipped %d unreadable file(s) of %d", self.name, self.subset, len(bad), len(self.files))
            self.files = [self.files[i] for i in keep]
            if self.targets is not None:
                self.targets = self.targets[keep]
        if not self.files:
            raise DatasetError(f"{shown(self.root)}: no readable audio files for {self.name}/{self.subset}")
        self._infos = infos

    # -- reading ---------------------------------------------------------------------------
    def read(self, idx: int, start: int, frames: int) -> torch.Tensor:
        """Samples [start, start + frames) of track `idx` as a (1, frames) float32 tensor."""
        return torch.from_numpy(read_window(self.files[idx], start, frames)).unsqueeze(0)

    def random_crop(self, idx: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """One `audio_length` window at a uniformly random offset (zero-padded if the track is short)."""
        slack = max(self.num_frames(idx) - self.audio_length, 0)
        start = int(torch.randint(slack + 1, (1,), generator=generator))
        return self.read(idx, start, self.audio_length)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.random_crop(idx), self.label(idx)

    def long_enough(self, min_frames: int | None = None) -> list[int]:
        """Indices of tracks with at least `min_frames` (default: audio_length) samples; warns about the rest."""
        min_frames = self.audio_length if min_frames is None else min_frames
        keep = [i for i, info in enumerate(self.infos) if info.frames >= min_frames]
        short = [self.files[i] for i in range(len(self.files)) if self.infos[i].frames < min_frames]
        for path in short[:5]:
            log.warning("skipping %s: shorter than %d samples", shown(path), min_frames)
        if short:
            log.warning(
                "%s/%s: skipped %d track(s) shorter than %d samples", self.name, self.subset, len(short), min_frames
            )
        return keep

    def describe(self) -> str:
        labels = f"{self.n_classes} {'tags' if self.multilabel else 'classes'}" if self.labelled else "unlabelled"
        return f"{self.name}/{self.subset}: {len(self)} tracks, {labels}"
