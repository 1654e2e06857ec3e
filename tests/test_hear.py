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


@pytest.fixture(scope="module")
def default_model():
    return load_model()


def validate_like_hear(model, lengths_s=(1.07, 1.98, 4.0), n_sounds=2) -> None:
    """The checks of HEAR's validator (hearvalidator), written from its source: the model's attributes, then
    timestamp embeddings of white noise at three lengths and scene embeddings of four 2.74 s sounds."""
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate in (16000, 22050, 44100, 48000)
    assert isinstance(model.scene_embedding_size, int) and isinstance(model.timestamp_embedding_size, int)
    generator = torch.Generator().manual_seed(0)
    for length in lengths_s:
        audio = torch.rand((n_sounds, int(length * model.sample_rate)), generator=generator) * 2 - 1
        embeddings, timestamps = get_timestamp_embeddings(audio, model)
        assert embeddings.dtype == torch.float32
        embeddings, timestamps = embeddings.numpy(), timestamps.numpy()
        assert embeddings.ndim == 3 and timestamps.ndim == 2 and embeddings.shape[0] == n_sounds
        assert embeddings.shape[:2] == timestamps.shape
        assert embeddings.shape[2] == model.timestamp_embedding_size
        if timestamps.shape[1] > 1:
            diff = np.diff(timestamps)
            assert np.max(np.abs(diff - diff.mean())) <= 1, "timestamps at regular intervals"
            assert timestamps.max() >= 1000 * length - 2 * diff.mean(), "embeddings up to the end of the audio"
            assert timestamps.max() <= 1000 * length
    audio = torch.rand((4, int(2.74 * model.sample_rate)), generator=generator) * 2 - 1
    scene = get_scene_embeddings(audio, model)
    assert scene.dtype == torch.float32 and scene.shape == (4, model.scene_embedding_size)


def test_bare_load_model_is_a_random_encoder_with_batchnorm_of_the_embedded_dataset(default_model):
    assert default_model.source == "default" and default_model.fingerprint.startswith("default-random-0-bn64")
    audio = torch.from_numpy(np.stack([music_like(L, SR, s) for s in range(3)]))
    scene = get_scene_embeddings(audio, default_model)
    assert torch.isfinite(scene).all()
    # calibrated BatchNorm: the output depends on the input (at initial statistics it hardly does)
    spread = (scene.std(dim=0) / scene.abs().mean(dim=0).clamp_min(1e-12)).mean()
    uncalibrated = get_scene_embeddings(audio, load_model("random"))
    raw_spread = (uncalibrated.std(dim=0) / uncalibrated.abs().mean(dim=0).clamp_min(1e-12)).mean()
    assert spread > 0.05 and spread > 100 * raw_spread
    torch.testing.assert_close(get_scene_embeddings(audio, load_model()), scene)  # the same default every time


def test_the_hear_validators_checks_pass_bare_and_with_a_checkpoint_at_a_50_ms_hop(default_model, checkpoints):
    validate_like_hear(default_model)
    validate_like_hear(load_model(hop_ms=50), lengths_s=(1.07, 1.98))
    validate_like_hear(load_model(checkpoints[0], hop_ms=50), lengths_s=(1.07,))


def test_with_a_hop_each_timestamp_embeds_the_chunk_centred_on_it(default_model):
    model = load_model(hop_ms=500)
    audio = torch.from_numpy(music_like(2 * SR, SR, 1))[None, :]
    embeddings, timestamps = get_timestamp_embeddings(audio, model)
    np.testing.assert_array_equal(timestamps[0].numpy(), [0, 500, 1000, 1500, 2000])
    centre = SR  # 1000 ms
    chunk = torch.nn.functional.pad(audio, (L // 2, L))[:, centre : centre + L]
    torch.testing.assert_close(embeddings[0, 2], model.embed_chunks(chunk)[0])
    with pytest.raises(ValueError, match="hop_ms"):
        load_model(hop_ms=0)
