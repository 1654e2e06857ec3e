"""The frozen encoder's representations of a dataset (clmr/representations.py): crop plans, batching across
tracks, the cache, BatchNorm calibration."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from clmr.audio import AudioFileError
from clmr.datasets.dataset import AudioDataset
from clmr.representations import Representations, crop_plan, representations

L = 59049


class Tiny(AudioDataset):
    """Wav files in a folder, tagged by hand."""

    name = "tiny"

    def __init__(self, root, subset="test", lengths=(2 * L + 100, L // 2, 3 * L)):
        super().__init__(root, subset)
        self.root.mkdir(parents=True, exist_ok=True)
        for k, n in enumerate(lengths):
            path = self.root / f"{k}.wav"
            if not path.exists():
                t = np.arange(n) / self.sample_rate
                sf.write(
                    path,
                    (0.1 * (k + 1) * np.sin(2 * np.pi * 110 * (k + 1) * t)).astype(np.float32),
                    self.sample_rate,
                    subtype="FLOAT",
                )
            self.files.append(path)
        self.tag_names = ["a", "b"]
        self.targets = np.eye(2, dtype=np.float32)[np.arange(len(lengths)) % 2]


class Probe(torch.nn.Module):
    """A cheap stand-in encoder: (batch, 1, time) -> (batch, 512), recording the batch sizes it saw."""

    def __init__(self):
        super().__init__()
        self.batches: list[int] = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        return torch.stack([x.mean(-1), x.abs().amax(-1)], -1).flatten(1).repeat(1, 256)


def test_every_chunk_of_every_track_with_short_tracks_padded(tmp_path):
    tracks, starts = crop_plan(Tiny(tmp_path), "chunks")
    assert tracks.tolist() == [0, 0, 1, 2, 2, 2]
    assert starts.tolist() == [0, L, 0, 0, L, 2 * L]


def test_clmr_crops_are_one_per_track_seeded_and_inside_the_track(tmp_path):
    ds = Tiny(tmp_path)
    tracks, starts = crop_plan(ds, "crop", seed=3)
    assert tracks.tolist() == [0, 1, 2]
    assert np.array_equal(starts, crop_plan(ds, "crop", seed=3)[1])
    assert all(0 <= s <= max(ds.num_frames(i) - L, 0) for i, s in zip(tracks, starts))


def test_extraction_batches_chunks_across_tracks_and_matches_one_by_one(tmp_path):
    ds, encoder = Tiny(tmp_path), Probe()
    reps = representations(encoder, "probe", ds, "chunks", batch_size=4, cache_dir=None)
    assert encoder.batches == [4, 2]  # 6 chunks of 3 tracks in two batches
    assert reps.track.tolist() == [0, 0, 1, 2, 2, 2] and reps.n_tracks == 3
    one = torch.cat([encoder(ds.read(int(t), int(s), L)[None]) for t, s in zip(reps.track, reps.start)])
    assert torch.allclose(reps.features, one)
    assert torch.allclose(reps.track_means()[2], one[3:].mean(0))


def test_representations_are_cached_by_encoder_and_dataset_contents(tmp_path):
    ds, encoder = Tiny(tmp_path / "data"), Probe()
    cache = tmp_path / "cache"
    first = representations(encoder, "sha256:abc", ds, "chunks", batch_size=8, cache_dir=cache)
    assert not first.cached and len(list(cache.glob("*.pt"))) == 1
    again = representations(encoder, "sha256:abc", ds, "chunks", batch_size=8, cache_dir=cache)
    assert again.cached and encoder.batches == [6] and torch.equal(again.features, first.features)
    representations(encoder, "sha256:def", ds, "chunks", batch_size=8, cache_dir=cache)  # another checkpoint
    assert encoder.batches == [6, 6]
    # A changed audio file is extracted again.
    path = ds.files[1]
    sf.write(path, np.zeros(L // 3, dtype=np.float32), ds.sample_rate, subtype="FLOAT")
    os.utime(path, ns=(1, 1))
    changed = representations(encoder, "sha256:abc", Tiny(tmp_path / "data"), "chunks", batch_size=8, cache_dir=cache)
    assert not changed.cached and encoder.batches == [6, 6, 6]
    assert not list(cache.glob(".*tmp*"))  # written atomically: no temporary files left


def test_a_damaged_cache_file_is_extracted_again(tmp_path):
    ds, encoder = Tiny(tmp_path / "data"), Probe()
    first = representations(encoder, "x", ds, "crop", batch_size=8, cache_dir=tmp_path / "cache")
    first.cache_path.write_bytes(b"truncated")
    again = representations(encoder, "x", ds, "crop", batch_size=8, cache_dir=tmp_path / "cache")
    assert not again.cached and torch.equal(again.features, first.features)


@pytest.mark.parametrize("workers", [0, 1])
def test_a_track_holding_nan_stops_extraction_with_one_line_naming_it(tmp_path, workers):
    ds = Tiny(tmp_path / "data")
    x = sf.read(ds.files[2], dtype="float32")[0]
    x[L + 5] = np.nan
    sf.write(ds.files[2], x, ds.sample_rate, subtype="FLOAT")
    with pytest.raises(AudioFileError) as stopped:
        representations(Probe(), "x", ds, "chunks", batch_size=4, cache_dir=tmp_path / "cache", workers=workers)
    message = str(stopped.value)
    assert message.startswith(f"{ds.files[2]}: holds NaN or infinite samples (the first at frame {L + 5})")
    assert "replace or remove the file" in message and "Traceback" not in message and "\n" not in message
    assert not list((tmp_path / "cache").glob("*"))  # nothing cached


def test_of_tracks_keeps_every_chunk_of_the_chosen_tracks():
    reps = Representations(
        torch.arange(12.0).reshape(6, 2), torch.tensor([0, 0, 1, 2, 2, 2]), torch.zeros(6, dtype=torch.long), 3
    )
    chosen = reps.of_tracks(np.array([0, 2]))
    assert chosen.track.tolist() == [0, 0, 2, 2, 2] and chosen.n_tracks == 3


def test_batchnorm_statistics_make_a_random_encoder_depend_on_its_input(tmp_path):
    from clmr.checkpoints import random_encoder
    from clmr.representations import calibrate_batchnorm

    ds = Tiny(tmp_path)
    tracks, starts = crop_plan(ds, "chunks")
    encoder = random_encoder(0)
    weights = {k: v.clone() for k, v in encoder.state_dict().items() if "running" not in k and "tracked" not in k}
    before = representations(encoder, "r", ds, "chunks", batch_size=8, cache_dir=None).features
    assert before.std(0).median() < 1e-4  # at the initial statistics: nearly a constant
    calibrate_batchnorm(encoder, ds, tracks, starts, batch_size=4)
    after = representations(encoder, "r", ds, "chunks", batch_size=8, cache_dir=None).features
    assert after.std(0).median() > 1e-2
    assert not encoder.training and all(
        m.momentum == 0.1 for m in encoder.modules() if isinstance(m, torch.nn.BatchNorm1d)
    )
    assert all(torch.equal(v, encoder.state_dict()[k]) for k, v in weights.items())  # weights untouched
