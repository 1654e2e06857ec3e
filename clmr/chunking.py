"""Cutting a track into the chunks the encoder sees: one definition for evaluation, representations and inference.

A track is cut into chunks of `audio_length` samples every `hop_length` samples (by default
`audio_length`: consecutive, non-overlapping) while a whole chunk fits; a remainder shorter than a
chunk at the end is left out, and a track shorter than one chunk is one zero-padded chunk at 0.
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
