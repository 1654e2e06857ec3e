"""The frozen encoder's 512-d representations of a dataset's crops, extracted in batches and cached on disk.

Two ways to cut a subset into crops of `audio_length` samples:

    chunks   every consecutive non-overlapping chunk of every track (a short track: one padded chunk)
    crop     one crop per track at a random offset, seeded per track (the original CLMR protocol)

Every (track, crop) pair of the subset is flattened into one list and encoded in batches across
tracks. The result is cached under `<cache_dir>/<key>.pt`, the key hashing the encoder (checkpoint
SHA-256, or `random` and its seed), the dataset's files (names, sizes, modification times), the
crop plan and the audio settings: re-running the probe with another head skips extraction, and
a changed file or checkpoint is extracted again.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from clmr.atomic import write_bytes
from clmr.audio import AudioFileError
from clmr.chunking import chunk_starts
from clmr.datasets.dataset import AudioDataset

log = logging.getLogger(__name__)

CACHE_VERSION = 1
MODES = ("chunks", "crop")


@dataclass
class Representations:
    """Encoder outputs of a subset's crops: `features[i]` is crop i, of track `track[i]` from sample `start[i]`."""

    features: torch.Tensor  # (crops, 512) float32
    track: torch.Tensor  # (crops,) int64
    start: torch.Tensor  # (crops,) int64
    n_tracks: int
    cache_path: Path | None = None
    cached: bool = False  # read from the cache rather than extracted
    seconds: float = 0.0  # time spent extracting (0 when cached)

    def __len__(self) -> int:
        return self.features.shape[0]

    def of_tracks(self, tracks: np.ndarray) -> Representations:
        """Only the crops of `tracks` (track ids keep their meaning)."""
        keep = torch.from_numpy(np.isin(self.track.numpy(), tracks))
        return Representations(
            self.features[keep], self.track[keep], self.start[keep], self.n_tracks, self.cache_path, self.cached
        )

    def track_means(self) -> torch.Tensor:
        """One vector per track: the mean of its crops' representations (tracks, 512)."""
        sums = torch.zeros(self.n_tracks, self.features.shape[1]).index_add_(0, self.track, self.features)
        counts = torch.bincount(self.track, minlength=self.n_tracks).clamp(min=1)
        return sums / counts[:, None]


def crop_plan(dataset: AudioDataset, mode: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(track, start) of every crop to encode: all chunks of each track, or one seeded random crop per track."""
    if mode not in MODES:
        raise ValueError(f"unknown crop mode {mode!r}; expected one of {', '.join(MODES)}")
    tracks, starts = [], []
    for idx in range(len(dataset)):
        frames = dataset.num_frames(idx)
        if mode == "chunks":
            chunk = chunk_starts(frames, dataset.audio_length).tolist()
        else:
            slack = max(frames - dataset.audio_length, 0)
            generator = torch.Generator().manual_seed(seed * 1_000_003 + idx)
            chunk = [int(torch.randint(slack + 1, (1,), generator=generator))]
        tracks += [idx] * len(chunk)
        starts += chunk
    return np.asarray(tracks, dtype=np.int64), np.asarray(starts, dtype=np.int64)


class _Windows(Dataset):
    def __init__(self, dataset: AudioDataset, tracks: np.ndarray, starts: np.ndarray):
        self.dataset, self.tracks, self.starts = dataset, tracks, starts

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        """The crop and "", or silence and why the crop could not be read (raised by `_batches`, in the main
        process: raised in a DataLoader worker, the error would reach the user wrapped in its traceback)."""
        try:
            return self.dataset.read(int(self.tracks[i]), int(self.starts[i]), self.dataset.audio_length), ""
        except AudioFileError as err:
            return torch.zeros(1, self.dataset.audio_length), str(err)


def _batches(loader: DataLoader, dataset: AudioDataset) -> Iterator[torch.Tensor]:
    for batch, errors in loader:
        for error in errors:
            if error:
                raise AudioFileError(
                    f"{error}; linear evaluation reads every crop of {dataset.name}/"
                    f"{dataset.subset}: replace or remove the file"
                )
        yield batch


@torch.inference_mode()
def encode(
    encoder: nn.Module,
    dataset: AudioDataset,
    tracks: np.ndarray,
    starts: np.ndarray,
    batch_size: int,
    workers: int = 0,
    device: str | torch.device = "cpu",
    desc: str | None = None,
) -> torch.Tensor:
    """Encoder outputs of the crops (tracks[i], starts[i]), in batches of `batch_size` across tracks."""
    loader = DataLoader(
        _Windows(dataset, tracks, starts),
        batch_size=batch_size,
        shuffle=False,
        num_workers=max(workers, 0),
        pin_memory=torch.device(device).type == "cuda",
    )
    encoder = encoder.to(device).eval()
    out = []
    for batch in tqdm(
        _batches(loader, dataset), desc=desc, unit="batch", leave=False, disable=desc is None, total=len(loader)
    ):
        out.append(encoder(batch.to(device, non_blocking=True)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


@torch.no_grad()
def calibrate_batchnorm(
    encoder: nn.Module,
    dataset: AudioDataset,
    tracks: np.ndarray,
    starts: np.ndarray,
    batch_size: int,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Re-estimate every BatchNorm's running mean and variance on the crops (tracks[i], starts[i]); eval mode after.

    The weights do not change. A randomly initialised SampleCNN needs this before it is a baseline:
    with BatchNorm at its initial statistics its output hardly depends on its input.
    """
    batch_size = min(batch_size, len(tracks))
    loader = DataLoader(
        _Windows(dataset, tracks, starts), batch_size=batch_size, shuffle=False, drop_last=len(tracks) % batch_size == 1
    )  # BatchNorm needs two examples per batch
    return _calibrated(encoder, _batches(loader, dataset), device)


@torch.no_grad()
def calibrate_batchnorm_on_crops(
    encoder: nn.Module, crops: torch.Tensor, batch_size: int, device: str | torch.device = "cpu"
) -> nn.Module:
    """`calibrate_batchnorm` on crops in memory, (n, audio_length) or (n, 1, audio_length)."""
    crops = crops.reshape(len(crops), 1, -1)
    batch_size = min(batch_size, len(crops))
    usable = len(crops) - (len(crops) % batch_size == 1)  # BatchNorm needs two examples per batch
    return _calibrated(encoder, crops[:usable].split(batch_size), device)


def _calibrated(encoder: nn.Module, batches: Iterable[torch.Tensor], device: str | torch.device) -> nn.Module:
    norms = [m for m in encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    encoder = encoder.to(device).train()
    for batch in batches:
        encoder(batch.to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return encoder.eval()


def dataset_fingerprint(dataset: AudioDataset) -> dict:
    """What the representations of a dataset depend on: its name, subset, and each file's name, size and mtime."""
    files = []
    for path in dataset.files:
        stat = os.stat(path)
        files.append([os.path.relpath(path, dataset.root), stat.st_size, stat.st_mtime_ns])
    return {
        "dataset": dataset.name,
        "subset": dataset.subset,
        "sample_rate": dataset.sample_rate,
        "audio_length": dataset.audio_length,
        "files": files,
    }


def cache_key(encoder_id: str, dataset: AudioDataset, mode: str, seed: int) -> str:
    spec = {
        "version": CACHE_VERSION,
        "encoder": encoder_id,
        "mode": mode,
        "seed": seed if mode == "crop" else None,
        **dataset_fingerprint(dataset),
    }
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]
    return f"{dataset.name}-{dataset.subset}-{mode}-{digest}"


def representations(
    encoder: nn.Module | Callable[[], nn.Module],
    encoder_id: str,
    dataset: AudioDataset,
    mode: str,
    *,
    batch_size: int,
    cache_dir: str | os.PathLike | None,
    seed: int = 0,
    workers: int = 0,
    device: str | torch.device = "cpu",
) -> Representations:
    """The representations of `dataset` cut by `mode`, from the cache when the same ones were extracted before.

    `encoder` may be a function that returns it, called only when something is to be encoded;
    `encoder_id` names the encoder's weights (a checkpoint's SHA-256, or `random-seed<N>...`);
    `cache_dir=None` disables the cache.
    """
    dataset.infos  # noqa: B018 - read the headers first: unreadable files are dropped before the fingerprint
    path = Path(cache_dir) / f"{cache_key(encoder_id, dataset, mode, seed)}.pt" if cache_dir else None
    if path is not None and path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True)
            return Representations(
                saved["features"], saved["track"], saved["start"], int(saved["n_tracks"]), path, cached=True
            )
        except Exception as err:  # a damaged cache file is extracted again, not an error
            log.warning("ignoring unreadable cache %s (%s)", path, err)
    tracks, starts = crop_plan(dataset, mode, seed)
    if not isinstance(encoder, nn.Module):
        encoder = encoder()
    began = time.perf_counter()
    features = encode(
        encoder,
        dataset,
        tracks,
        starts,
        batch_size,
        workers,
        device,
        desc=f"encoding {dataset.name}/{dataset.subset} ({len(tracks)} crops)",
    )
    reps = Representations(
        features,
        torch.from_numpy(tracks),
        torch.from_numpy(starts),
        len(dataset),
        path,
        seconds=time.perf_counter() - began,
    )
    if path is not None:  # through memory, so that a full disk is an OSError naming the cache, not torch's error
        buffer = io.BytesIO()
        torch.save(
            {
                "features": reps.features,
                "track": reps.track,
                "start": reps.start,
                "n_tracks": reps.n_tracks,
                "encoder": encoder_id,
                "mode": mode,
            },
            buffer,
        )
        write_bytes(path, buffer.getbuffer())
    return reps
