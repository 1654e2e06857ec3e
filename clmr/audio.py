"""Reading and writing audio files: window reads, whole-file reads with mono mixing and resampling."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from clmr.atomic import atomic_path

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class AudioFileError(ValueError):
    """An audio file that cannot be used: missing, unreadable, corrupt, empty or in the wrong format."""


@dataclass(frozen=True)
class AudioInfo:
    frames: int
    sample_rate: int
    channels: int


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Frames, sample rate and channels from the file's header (the audio is not decoded)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioFileError(f"{path}: cannot read audio ({_reason(err)})") from None
    return AudioInfo(int(info.frames), int(info.samplerate), int(info.channels))


def check_format(path: str | os.PathLike, info: AudioInfo, sample_rate: int) -> None:
    """Training reads mono files at the configured rate; anything else must be converted first."""
    if info.sample_rate != sample_rate or info.channels != 1:
        raise AudioFileError(
            f"{path}: {info.channels} channel(s) at {info.sample_rate} Hz, expected mono at {sample_rate} Hz; "
            f"convert the folder first: python preprocess.py --dataset audio --dataset_dir <folder> "
            f"--sample_rate {sample_rate}")


def read_window(path: str | os.PathLike, start: int, frames: int) -> np.ndarray:
    """`frames` mono float32 samples from `start`, read by seeking (not decoding the whole file).

    A window that runs past the end is zero-padded.
    """
    try:
        with sf.SoundFile(str(path)) as f:
            if start >= f.frames:  # wholly past the end: all padding (seeking there is an error)
                data = np.zeros((0, f.channels), np.float32)
            else:
                if start:
                    f.seek(start)
                data = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioFileError(f"{path}: cannot read audio ({_reason(err)})") from None
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if mono.shape[0] < frames:
        mono = np.pad(mono, (0, frames - mono.shape[0]))
    return np.ascontiguousarray(mono, dtype=np.float32)


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample (time along the last axis) with soxr's high-quality filter."""
    if source_rate == target_rate:
        return audio.astype(np.float32, copy=False)
    import soxr

    out = soxr.resample(np.ascontiguousarray(audio.T), source_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def load_mono(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decode a whole file of any rate and channel count to mono float32 at `sample_rate`."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioFileError(f"{path}: cannot read audio ({_reason(err)})") from None
    if data.shape[0] == 0:
        raise AudioFileError(f"{path}: the file holds no audio")
    return resample(data.mean(axis=1), rate, sample_rate)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write mono audio as wav, atomically (temporary name, then rename)."""
    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sample_rate, subtype=subtype, format="WAV")


def find_audio_files(root: str | os.PathLike) -> list[Path]:
    """Every audio file below `root` (recursive, sorted), by extension."""
    return sorted(p for p in Path(root).rglob("*")
                  if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file() and not p.name.startswith("."))


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text
