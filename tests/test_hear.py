"""The HEAR API (clmr/hear.py, re-exported by clmr): shapes, timestamps, and a light `import clmr`."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from clmr.export import music_like
from clmr.hear import get_scene_embeddings, get_timestamp_embeddings, load_model

L, SR = 59049, 22050


def test_hear_api_returns_the_documented_shapes(checkpoints):
    model = load_model(checkpoints[0])
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (22050, 512, 512)
    audio = torch.from_numpy(np.stack([music_like(int(2.5 * L), SR, s) for s in range(2)]))
    embeddings, timestamps = get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (2, 2, 512) and timestamps.shape == (2, 2)  # the last half chunk is not embedded
    np.testing.assert_allclose(timestamps[1].numpy(), [L / 2 / SR * 1000, 1.5 * L / SR * 1000], rtol=1e-6)
    scene = get_scene_embeddings(audio, model)
    assert scene.shape == (2, 512) and scene.dtype == torch.float32
    torch.testing.assert_close(scene, embeddings.mean(dim=1))
    short = get_timestamp_embeddings(torch.zeros(2, SR), model)  # 1 s: one zero-padded chunk
    assert short[0].shape == (2, 1, 512) and short[1].shape == (2, 1)
    with pytest.raises(ValueError, match="n_sounds, n_samples"):
        get_scene_embeddings(torch.zeros(SR), model)


def test_import_clmr_stays_light_and_exports_the_api():
    code = "import sys, clmr; assert 'torch' not in sys.modules and 'get_timestamp_embeddings' in dir(clmr)"
    subprocess.run([sys.executable, "-c", code], check=True)
    import clmr

    assert (clmr.load_model, clmr.get_scene_embeddings, clmr.get_timestamp_embeddings) == (
        load_model,
        get_scene_embeddings,
        get_timestamp_embeddings,
    )
