"""Whole files through the encoder (clmr/inference.py): resampling, chunk scores, padding, batching."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from clmr.chunking import chunk_audio
from clmr.datasets.synthetic import TAGS
from clmr.export import music_like
from clmr.hear import get_scene_embeddings
from clmr.inference import encode_files, predict_files
from conftest import stereo_with_truth

L, SR = 59049, 22050


def test_predict_on_44k_stereo_equals_predict_on_the_same_audio_at_22k_mono(model, tmp_path):
    stereo, mono = stereo_with_truth(8.0, 44100, seed=0)
    sf.write(tmp_path / "song_44k_stereo.wav", stereo, 44100, subtype="FLOAT")
    sf.write(tmp_path / "song_22k_mono.wav", mono, 22050, subtype="FLOAT")
    a, b = predict_files([tmp_path / "song_44k_stereo.wav", tmp_path / "song_22k_mono.wav"], model)
    assert a.chunk_probs.shape == b.chunk_probs.shape == (2, len(TAGS))
    assert a.duration_s == pytest.approx(8.0, abs=1e-3) and b.duration_s == pytest.approx(8.0, abs=1e-3)
    assert np.abs(a.probs - b.probs).max() < 5e-4  # resampling error only (about 5e-5 here)
    assert [t for t, _ in a.top(3)] == [t for t, _ in b.top(3)]
    assert np.ptp(a.probs) > 0.05  # the tags really depend on the audio, so the comparison means something


def test_whole_track_score_is_the_mean_of_its_chunk_probabilities(model, tmp_path):
    sf.write(tmp_path / "long.wav", music_like(int(2.5 * L), SR, 7), SR, subtype="FLOAT")
    (pred,) = predict_files([tmp_path / "long.wav"], model)
    assert pred.chunk_probs.shape == (2, len(TAGS))  # the last half chunk is not scored, as in evaluation
    np.testing.assert_allclose(pred.probs, pred.chunk_probs.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(pred.times_ms, (np.arange(2) * L + L / 2) * 1000 / SR, rtol=1e-6)
    chunks = torch.from_numpy(music_like(int(2.5 * L), SR, 7)[: 2 * L].reshape(2, L))
    np.testing.assert_allclose(pred.chunk_probs, model.tag_probabilities(model.embed_chunks(chunks)), atol=1e-6)


def test_a_file_shorter_than_a_chunk_is_padded_and_one_under_half_a_chunk_is_too_short(model, tmp_path):
    sf.write(tmp_path / "two_seconds.wav", music_like(2 * SR, SR, 8), SR, subtype="FLOAT")
    sf.write(tmp_path / "one_second.wav", music_like(SR, SR, 9), SR, subtype="FLOAT")
    padded, short = predict_files([tmp_path / "two_seconds.wav", tmp_path / "one_second.wav"], model)
    assert padded.chunk_probs.shape == (1, len(TAGS))  # zero-padded to one chunk, as evaluation pads
    audio = torch.from_numpy(sf.read(tmp_path / "two_seconds.wav", dtype="float32")[0])[None]
    np.testing.assert_allclose(padded.probs, model.tag_probabilities(get_scene_embeddings(audio, model))[0], atol=1e-6)
    assert "one_second.wav: too short (1.00 s; at least 1.34 s" in short.error


def test_batching_chunks_across_files_changes_nothing(model, tmp_path):
    paths = []
    for k, n in enumerate((2 * L + 100, L, 2 * L)):
        paths.append(tmp_path / f"{k}.wav")
        sf.write(paths[-1], music_like(n, SR, 20 + k), SR, subtype="FLOAT")
    tracks = list(encode_files(paths, model))  # batch_size 4: the 2+1+2 chunks span two batches
    assert [t.n_chunks for t in tracks] == [2, 1, 2]
    for track in tracks:
        audio = torch.from_numpy(sf.read(track.path, dtype="float32")[0])
        alone = model.embed_chunks(chunk_audio(audio, L))
        torch.testing.assert_close(track.embeddings, alone, atol=1e-4, rtol=1e-4)  # float32 convolutions
