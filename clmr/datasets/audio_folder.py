"""`audio`: any folder of audio files, searched recursively, unlabelled, for pre-training on one's own music."""

from __future__ import annotations

import os

from clmr.audio import AUDIO_LENGTH, SAMPLE_RATE, find_audio_files
from clmr.datasets.dataset import AudioDataset, DatasetError
from clmr.filenames import shown

VALID_EVERY = 20  # every 20th file (sorted by path) is held out as the valid/test subset


class AudioFolder(AudioDataset):
    """All audio files below `root`. Every 20th file is the valid (and test) subset, the rest train."""

    name = "audio"

    def __init__(
        self,
        root: str | os.PathLike,
        subset: str = "train",
        sample_rate: int = SAMPLE_RATE,
        audio_length: int = AUDIO_LENGTH,
    ):
        super().__init__(root, subset, sample_rate, audio_length)
        if not self.root.is_dir():
            raise DatasetError(f"{shown(self.root)}: dataset folder not found (--dataset_dir)")
        files = find_audio_files(self.root)
        if not files:
            raise DatasetError(f"{shown(self.root)}: no audio files (wav, flac, ogg, mp3) in this folder")
        held_out = files[VALID_EVERY - 1 :: VALID_EVERY] if len(files) >= VALID_EVERY else files[-1:]
        if subset == "train":
            held = set(held_out)
            self.files = [f for f in files if f not in held] or files
        else:
            self.files = held_out
