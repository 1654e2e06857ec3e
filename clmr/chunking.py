"""Cutting a track into the chunks the encoder sees: one definition for evaluation, representations and inference.

A track is cut into chunks of `audio_length` samples every `hop_length` samples (by default
`audio_length`: consecutive, non-overlapping) while a whole chunk fits; a remainder shorter than a
chunk at the end is left out, and a track shorter than one chunk is one zero-padded chunk at 0.

HEAR's timestamp embeddings use centred frames instead (`centred_frames`): one every `hop_ms` from 0 to the
end of the sound, each chunk centred on its timestamp and zero-padded beyond the sound's ends.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from clmr.audio import AUDIO_LENGTH, SAMPLE_RATE


def chunk_starts(n_samples: int, audio_length: int = AUDIO_LENGTH, hop_length: int | None = None) -> np.ndarray:
    """First sample of each chunk (int64): every `hop_length` (default `audio_length`) while a whole chunk fits;
    a sound shorter than one chunk is one (zero-padded) chunk at 0."""
    hop = hop_length or audio_length
    if hop <= 0 or audio_length <= 0:
        raise ValueError(f"audio_length {audio_length} and hop_length {hop} must be positive")
    return np.arange(0, max(n_samples - audio_length, 0) + 1, hop, dtype=np.int64)


def chunk_audio(audio: Tensor, audio_length: int = AUDIO_LENGTH, hop_length: int | None = None) -> Tensor:
    """(..., n_samples) -> (..., n_chunks, audio_length), the chunks of `chunk_starts` (a view where possible)."""
    audio = torch.as_tensor(audio)
    if audio.shape[-1] < audio_length:
        audio = nn.functional.pad(audio, (0, audio_length - audio.shape[-1]))
    return audio.unfold(-1, audio_length, hop_length or audio_length)


def chunk_centres_ms(
    n_samples: int, sample_rate: int = SAMPLE_RATE, audio_length: int = AUDIO_LENGTH, hop_length: int | None = None
) -> np.ndarray:
    """The centre of each chunk in milliseconds (HEAR's timestamps)."""
    starts = chunk_starts(n_samples, audio_length, hop_length)
    return ((starts + audio_length / 2) * 1000.0 / sample_rate).astype(np.float32)


def centred_frames(n_samples: int, sample_rate: int, hop_ms: float) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps 0, hop, 2 hop, ... up to the end of the sound (ms, float32) and the sample at each (int64).

    Each centre is rounded on its own from its timestamp, so a hop that is not a whole number of samples
    (25 ms at 44,100 Hz) does not drift over long audio."""
    if hop_ms <= 0 or sample_rate <= 0:
        raise ValueError(f"hop_ms {hop_ms} and sample_rate {sample_rate} must be positive")
    duration_ms = 1000.0 * n_samples / sample_rate
    times = np.arange(int(np.floor(duration_ms / hop_ms + 1e-9)) + 1, dtype=np.float64) * hop_ms
    centres = np.minimum(np.round(times * sample_rate / 1000.0).astype(np.int64), max(n_samples - 1, 0))
    return times.astype(np.float32), centres


def centred_chunks(audio: Tensor, centres: np.ndarray, audio_length: int = AUDIO_LENGTH) -> Tensor:
    """(n_sounds, n_samples) -> (n_sounds, len(centres), audio_length): the chunk around each centre sample
    (from centre - audio_length // 2), zeros beyond the sound's ends."""
    left = audio_length // 2
    padded = nn.functional.pad(torch.as_tensor(audio), (left, audio_length - left))
    index = torch.as_tensor(centres, dtype=torch.long)[:, None] + torch.arange(audio_length)[None, :]
    return padded[:, index]
