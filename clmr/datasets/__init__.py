"""Datasets by name: `get_dataset(name, dataset_dir, subset)`.

Each dataset is an `AudioDataset`: tracks on disk, optional labels and tag names, read as windows.
"""

from __future__ import annotations

import importlib
import os

from clmr.datasets.dataset import SUBSETS, AudioDataset, DatasetError
from clmr.datasets.layouts import layout_lines
from clmr.datasets.views import CropDataset

# name -> "module:Class", imported on first use so that one dataset's dependencies never burden another.
REGISTRY = {
    "audio": "clmr.datasets.audio_folder:AudioFolder",
    "synthetic": "clmr.datasets.synthetic:SyntheticDataset",
    "magnatagatune": "clmr.datasets.magnatagatune:MagnaTagATune",
    "msd": "clmr.datasets.msd:MillionSongDataset",
    "gtzan": "clmr.datasets.gtzan:GTZAN",
    "librispeech": "clmr.datasets.librispeech:LibriSpeech",
}


def dataset_class(name: str) -> type[AudioDataset]:
    if name not in REGISTRY:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(REGISTRY)} (--dataset)")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_dataset(name: str, dataset_dir: str | os.PathLike, subset: str, **options) -> AudioDataset:
    """The `subset` (train, valid or test) of dataset `name` found under `dataset_dir`."""
    return dataset_class(name)(dataset_dir, subset, **options)


def dataset_from_config(cfg, subset: str) -> AudioDataset:
    """`get_dataset` with the options the config holds: dataset, dataset_dir, sample_rate, audio_length, and the
    dataset's own (its `CONFIG_KEYS`). The one place a dataset's arguments are read from the config."""
    cls = dataset_class(cfg.dataset)
    options = {argument: getattr(cfg, key) for argument, key in cls.CONFIG_KEYS.items()}
    return cls(cfg.dataset_dir, subset, sample_rate=cfg.sample_rate, audio_length=cfg.audio_length, **options)


__all__ = [
    "AudioDataset",
    "CropDataset",
    "DatasetError",
    "REGISTRY",
    "SUBSETS",
    "dataset_class",
    "dataset_from_config",
    "get_dataset",
    "layout_lines",
]
