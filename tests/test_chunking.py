"""Chunking a track (clmr/chunking.py): the chunks linear evaluation scores, hops, padding."""

from __future__ import annotations

import numpy as np
import torch

from clmr.chunking import chunk_audio, chunk_starts

L = 59049


def test_chunks_are_consecutive_and_non_overlapping_and_a_short_track_is_one_chunk():
    assert chunk_starts(3 * L + 5, L).tolist() == [0, L, 2 * L]  # the 5-sample remainder is not scored
    assert chunk_starts(L, L).tolist() == [0]
    assert chunk_starts(100, L).tolist() == [0]  # shorter than a chunk: one (zero-padded) chunk


def test_chunks_are_the_ones_linear_evaluation_scores():
    for n in (1, L - 1, L, L + 1, 2 * L, 5 * L + 17):
        assert chunk_starts(n, L).tolist() == [k * L for k in range(max(n // L, 1))]  # what the original scores
    audio = torch.arange(2 * L + 5, dtype=torch.float32)
    chunks = chunk_audio(audio, L)
    assert chunks.shape == (2, L) and torch.equal(chunks[1], audio[L : 2 * L])
    assert chunk_audio(torch.ones(10), L).shape == (1, L)  # shorter than a chunk: zero-padded


def test_a_hop_shorter_than_a_chunk_gives_overlapping_chunks_while_a_whole_one_fits():
    assert chunk_starts(2 * L, L, hop_length=L // 3).tolist() == [0, L // 3, 2 * (L // 3), L]
    assert chunk_audio(torch.zeros(2 * L), L, L // 3).shape == (4, L)


def test_centred_frames_run_from_zero_to_the_end_and_a_fractional_hop_does_not_drift():
    from clmr.chunking import centred_frames

    times, centres = centred_frames(int(4.0 * 22050), 22050, 50)
    assert times[0] == 0 and times[-1] == 4000 and len(times) == 81
    np.testing.assert_array_equal(centres[:-1], np.round(np.arange(80) * 1102.5))
    assert centres[-1] == int(4.0 * 22050) - 1  # the frame at the very end is centred on the last sample
    hour = 3600 * 44100  # 25 ms at 44.1 kHz is 1102.5 samples: rounding the hop once would drift 25 ms in 37 minutes
    times, centres = centred_frames(hour, 44100, 25)
    assert times[-1] == 3600 * 1000 and abs(centres[-2] - float(times[-2]) * 44.1) <= 0.5


def test_a_centred_chunk_holds_the_audio_around_its_centre_and_zeros_beyond_the_ends():
    from clmr.chunking import centred_chunks

    audio = torch.arange(1.0, 11.0)[None, :]  # 10 samples
    chunks = centred_chunks(audio, np.array([0, 5, 9]), audio_length=4)
    np.testing.assert_array_equal(chunks[0].numpy(), [[0, 0, 1, 2], [4, 5, 6, 7], [8, 9, 10, 0]])
