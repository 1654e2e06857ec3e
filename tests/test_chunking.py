"""Chunking a track (clmr/chunking.py): the chunks linear evaluation scores, hops, padding."""

from __future__ import annotations

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
