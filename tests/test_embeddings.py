"""The resumable embeddings folder (clmr/embeddings.py): a killed run resumed, NaN rows of old versions redone."""

from __future__ import annotations

import numpy as np
import pytest

from clmr.embeddings import embed_files
from clmr.hear import load_model
from conftest import float_wav, folder_with_one_corrupt_file


def test_embeddings_resume_where_a_killed_run_stopped(checkpoints, tmp_path, monkeypatch):
    folder = folder_with_one_corrupt_file(tmp_path / "music")
    model = load_model(checkpoints[0], batch_size=2)
    real, calls = model.embed_chunks, []

    def dies_on_second_batch(chunks):
        calls.append(len(chunks))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(chunks)

    monkeypatch.setattr(model, "embed_chunks", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        embed_files([folder], model, tmp_path / "emb", progress=False, on_error=lambda *a: None)
    assert len(list((tmp_path / "emb" / "parts").glob("*.npz"))) == 1  # a.wav's two chunks were the first batch
    assert not (tmp_path / "emb" / "embeddings.npy").exists()
    monkeypatch.setattr(model, "embed_chunks", real)
    summary = embed_files([folder], model, tmp_path / "emb", progress=False, on_error=lambda *a: None)
    assert (summary.embedded, summary.computed, len(summary.failed)) == (3, 2, 1)
    again = embed_files([folder], model, tmp_path / "emb", progress=False, on_error=lambda *a: None)
    assert (again.embedded, again.computed) == (3, 0)
    embed_files([folder], model, tmp_path / "fresh", progress=False, on_error=lambda *a: None)
    np.testing.assert_allclose(
        np.load(tmp_path / "emb" / "embeddings.npy"),
        np.load(tmp_path / "fresh" / "embeddings.npy"),
        rtol=1e-5,
        atol=1e-6,
    )
    other = load_model("random")
    with pytest.raises(Exception, match="another model"):
        embed_files([folder], other, tmp_path / "emb", progress=False, on_error=lambda *a: None)


def test_a_nan_embedding_saved_by_an_earlier_version_is_computed_again(checkpoints, tmp_path):
    from clmr.embeddings import _part_path

    folder = tmp_path / "music"
    folder.mkdir()
    float_wav(folder / "a.wav", seed=1)
    model = load_model(checkpoints[0], batch_size=4)
    embed_files([folder], model, tmp_path / "emb", progress=False)
    part = _part_path(tmp_path / "emb", folder / "a.wav")
    with np.load(part) as saved:
        arrays = {k: saved[k] for k in saved.files}
    arrays["embedding"] = np.full(512, np.nan, np.float32)  # as today's main saved a file holding NaN
    np.savez(part, **arrays)
    summary = embed_files([folder], model, tmp_path / "emb", progress=False)
    assert summary.computed == 1 and np.isfinite(np.load(tmp_path / "emb" / "embeddings.npy")).all()
