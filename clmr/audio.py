"""Reading and writing audio files: window reads, whole-file reads with mono mixing and resampling."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from clmr.atomic import write_bytes
from clmr.filenames import os_name, shown

SAMPLE_RATE = 22050  # the defaults of config/config.yaml (sample_rate, audio_length; tests/test_config.py checks)
AUDIO_LENGTH = 59049  # samples per crop: 3^10, what SampleCNN encodes (2.7 s at 22,050 Hz)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
# libsndfile subtypes whose samples are integers (FLAC reports PCM_*): they cannot hold NaN or infinity.
INTEGER_SUBTYPES = ("PCM_", "ULAW", "ALAW", "ALAC_", "DPCM_", "DWVW_")


class AudioFileError(ValueError):
    """An audio file that cannot be used: missing, unreadable, corrupt, empty, non-finite or in the wrong format.

    `path` and `reason` hold the file and what is wrong with it; str() is `<path as shown>: <reason>`.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None, reason: str = ""):
        super().__init__(message)
        self.path = path
        self.reason = reason or message


class AudioAccessError(AudioFileError):
    """The OS refused to open the file (permission denied, not found, a folder): not a fault of its audio."""


def audio_error(path: str | os.PathLike, reason: str) -> AudioFileError:
    """The error for file `path`, its name shown printably whatever bytes it holds."""
    return AudioFileError(f"{shown(path)}: {reason}", path, reason)


@dataclass(frozen=True)
class AudioInfo:
    frames: int
    sample_rate: int
    channels: int


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Frames, sample rate and channels from the file's header (the audio is not decoded)."""
    try:
        info = sf.info(os_name(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise _unreadable(path, err) from None
    return AudioInfo(int(info.frames), int(info.samplerate), int(info.channels))


def check_format(path: str | os.PathLike, info: AudioInfo, sample_rate: int) -> None:
    """Training reads mono files at the configured rate; anything else must be converted first."""
    if info.sample_rate != sample_rate or info.channels != 1:
        raise audio_error(
            path,
            f"{info.channels} channel(s) at {info.sample_rate} Hz, expected mono at "
            f"{sample_rate} Hz; convert the folder first: python preprocess.py --dataset audio "
            f"--dataset_dir <folder> --sample_rate {sample_rate}",
        )


def read_window(path: str | os.PathLike, start: int, frames: int) -> np.ndarray:
    """`frames` mono float32 samples from `start`, read by seeking (not decoding the whole file).

    A window that runs past the end is zero-padded. A window holding NaN or infinity is an AudioFileError
    (checked only for float and lossy encodings: integer samples cannot hold them).
    """
    try:
        with sf.SoundFile(os_name(path)) as f:
            if start >= f.frames:  # wholly past the end: all padding (seeking there is an error)
                data = np.zeros((0, f.channels), np.float32)
            else:
                if start:
                    f.seek(start)
                data = f.read(frames, dtype="float32", always_2d=True)
                if not f.subtype.startswith(INTEGER_SUBTYPES):
                    check_finite(path, data, start)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise _unreadable(path, err) from None
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if mono.shape[0] < frames:
        mono = np.pad(mono, (0, frames - mono.shape[0]))
    return np.ascontiguousarray(mono, dtype=np.float32)


def check_finite(path: str | os.PathLike, samples: np.ndarray, offset: int = 0) -> None:
    """Refuse samples holding NaN or infinity (a damaged float file): they would turn every loss, embedding
    and tag probability computed from them into NaN."""
    finite = np.isfinite(samples)  # plain numpy: a BLAS dot product measured no faster beside torch's threads
    if finite.all():
        return
    frame = offset + int(np.argmax(~finite.reshape(samples.shape[0], -1).all(axis=1)))  # rows are frames
    raise audio_error(path, f"holds NaN or infinite samples (the first at frame {frame}); the file is damaged")


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Resample (time along the last axis) with soxr's high-quality filter."""
    if source_rate == target_rate:
        return audio.astype(np.float32, copy=False)
    import soxr

    out = soxr.resample(np.ascontiguousarray(audio.T), source_rate, target_rate, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def load_mono(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Decode a whole file of any rate and channel count to mono float32 at `sample_rate`.

    A file holding NaN or infinite samples is an AudioFileError (resampling would spread them).
    """
    try:
        data, rate = sf.read(os_name(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise _unreadable(path, err) from None
    if data.shape[0] == 0:
        raise audio_error(path, "the file holds no audio")
    check_finite(path, data)
    return resample(data.mean(axis=1), rate, sample_rate)


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write mono audio as wav, atomically (temporary name, then rename).

    The wav is encoded in memory and written with os.write, so a full disk or a read-only folder is an
    OSError naming `path` (libsndfile would only say "System error").
    """
    if not np.isfinite(audio).all():
        raise ValueError(f"{shown(path)}: refusing to write NaN or infinite samples")
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0), sample_rate, subtype=subtype, format="WAV")
    write_bytes(path, buffer.getbuffer())


def find_audio_files(root: str | os.PathLike) -> list[Path]:
    """Every audio file below `root` (recursive, sorted), by extension."""
    return sorted(
        p
        for p in Path(root).rglob("*")
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file() and not p.name.startswith(".")
    )


def _unreadable(path: str | os.PathLike, err: Exception) -> AudioFileError:
    """Why a file could not be read. libsndfile says only "System error." when the OS refused to open the
    file; opening it with Python gives the OS's reason (permission denied, no such file, a folder)."""
    if not isinstance(err, OSError):
        try:
            with open(os_name(path), "rb"):
                pass
        except OSError as os_err:
            err = os_err
    if isinstance(err, OSError):
        reason = f"cannot read audio ({(err.strerror or str(err)).lower()})"
        return AudioAccessError(f"{shown(path)}: {reason}", path, reason)
    if isinstance(err, sf.LibsndfileError):
        return audio_error(path, f"cannot read audio ({err.error_string})")
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return audio_error(path, f"cannot read audio ({text})")
