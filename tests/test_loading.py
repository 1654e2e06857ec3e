"""Training data path and step settings: batch shapes, random window crops per item, view and worker, worker
seeding, pinning, auto workers, and the auto precision."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from clmr.datasets.dataset import AudioDataset
from clmr.datasets.views import CropDataset
from clmr.stages import training_loader
from conftest import config

SR = 22050
FRAMES = 20000  # below 2**15, so that a sample's 16-bit value is its position in the track
CROP = 1000


class Ramps(AudioDataset):
    """Tracks whose sample i is i / 32768: a crop's first sample says where it was cut."""

    def __init__(self, folder: Path, n: int):
        super().__init__(folder, "train", SR, CROP)
        self.files = []
        for k in range(n):
            path = folder / f"ramp{k:02d}.wav"
            if not path.exists():
                sf.write(str(path), np.arange(FRAMES, dtype=np.int16), SR, subtype="PCM_16")
            self.files.append(path)


def offsets(views: torch.Tensor) -> list[int]:
    """The start offset of every crop in a (..., 1, CROP) tensor."""
    first = views.reshape(-1, CROP)[:, 0]
    return [int(v) for v in torch.round(first * 32768)]


@pytest.fixture
def ramps(tmp_path) -> Ramps:
    return Ramps(tmp_path, 10)


def test_crop_loader_yields_pairs_of_float32_crops_and_drops_the_last_partial_batch(ramps):
    loader = training_loader(ramps, config(batch_size=4, workers=0), train=True, n_views=2)
    batches = [views for views, _ in loader]
    assert len(batches) == 2  # 10 tracks, batch 4: the last 2 are dropped
    for views in batches:
        assert views.shape == (4, 2, 1, CROP) and views.dtype == torch.float32 and views.is_contiguous()
        for crop in views.reshape(-1, CROP):  # each crop is a contiguous window of the ramp
            np.testing.assert_array_equal(
                torch.round(crop * 32768).numpy(), np.arange(CROP) + round(float(crop[0]) * 32768)
            )


def test_evaluation_loader_keeps_every_track_in_order(ramps):
    loader = training_loader(ramps, config(batch_size=4, workers=0), train=False, n_views=None)
    sizes = [views.shape for views, _ in loader]
    assert sizes == [(4, 1, CROP), (4, 1, CROP), (2, 1, CROP)]


def test_views_and_items_are_cut_at_independent_random_offsets(ramps):
    torch.manual_seed(0)
    starts = [offsets(views) for views, _ in training_loader(ramps, config(batch_size=2, workers=0), True, n_views=2)]
    flat = [s for batch in starts for s in batch]
    assert len(set(flat)) == len(flat)  # 20 crops from 18,001 possible offsets: no repeats
    assert all(0 <= s <= FRAMES - CROP for s in flat)


def test_crop_dataset_stacks_transformed_views(ramps):
    crops = CropDataset(ramps, n_views=3, transform=lambda v: -v)
    views, label = crops[0]
    assert views.shape == (3, 1, CROP) and views.dtype == torch.float32
    assert (views <= 0).all() and label.numel() == 0


def test_workers_cut_different_crops_and_the_seed_repeats_them(ramps):
    cfg = config(batch_size=2, workers=2)

    def epoch(seed: int) -> list[int]:
        torch.manual_seed(seed)
        loader = training_loader(ramps, cfg, train=True, n_views=2)
        return [s for views, _ in loader for s in offsets(views)]

    first, again, other = epoch(1), epoch(1), epoch(2)
    assert len(set(first)) == len(first), "the two workers repeated each other's crops"
    assert first == again  # workers are seeded from the main process's generator
    assert first != other


def test_a_persistent_loader_cuts_new_crops_every_epoch(ramps):
    loader = training_loader(ramps, config(batch_size=5, workers=1), train=True, n_views=1)
    one = sorted(s for views, _ in loader for s in offsets(views))
    two = sorted(s for views, _ in loader for s in offsets(views))
    assert one != two


def test_training_batches_stay_finite_when_a_track_holds_nan_with_worker_processes(tmp_path):
    from clmr.datasets.audio_folder import AudioFolder

    for k in range(6):
        x = np.full(FRAMES, 0.1 * (k + 1), np.float32)
        x[::997] = np.nan if k == 2 else x[::997]  # NaN all along track 2: every crop of it holds some
        sf.write(str(tmp_path / f"t{k}.wav"), x, SR, subtype="FLOAT")
    dataset = AudioFolder(tmp_path, "train", SR, CROP)  # t5 is held out
    loader = training_loader(dataset, config(batch_size=5, workers=2), train=True, n_views=2)
    ((views, _),) = list(loader)
    assert torch.isfinite(views).all()
    assert sorted(round(float(v.mean()), 1) for v in views) == [0.1, 0.2, 0.4, 0.4, 0.5]  # t3 stood in for t2


class Indices(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor([float(i)])


@pytest.mark.parametrize("stop,limit", [("sigterm at step 8", None), ("sigterm at step 4", 4), ("end of epoch 0", 4)])
def test_a_resumed_run_trains_on_the_batches_the_stopped_run_had_not_reached(tmp_path, stop, limit):
    """Lightning restores a checkpoint's step counters; the loader's position in the epoch comes back with them.

    6 batches an epoch (4 with the limit), 3 epochs; stopped by SIGTERM inside an epoch, at the last batch of one
    (before the epoch ends), or after an epoch's last.ckpt.
    """
    import signal

    from pytorch_lightning import Callback, LightningModule, Trainer

    from clmr.datasets.loading import EpochLength, EpochShuffle, ResumableBatches, ResumableLoader
    from clmr.stopping import StopOnSignal
    from clmr.trainer import AtomicCheckpointIO, LastCheckpoint

    class Seen(LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.batches: list[list[int]] = []

        def training_step(self, batch, batch_idx):
            self.batches.append(batch.view(-1).long().tolist())
            return (self.w * batch).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    class SigtermAt(Callback):
        def __init__(self, step: int):
            self.step = step

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if trainer.global_step == self.step:
                os.kill(os.getpid(), signal.SIGTERM)

    def loader() -> ResumableLoader:
        data = Indices()
        return ResumableLoader(data, batch_sampler=ResumableBatches(EpochShuffle(data, seed=3), 2, drop_last=True))

    last = tmp_path / "last.ckpt"

    def fit(module, callbacks=(), ckpt_path=None, max_epochs=3) -> None:
        Trainer(
            max_epochs=max_epochs,
            limit_train_batches=limit or 1.0,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=any(isinstance(c, LastCheckpoint) for c in callbacks),
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[*callbacks, EpochLength()],
            plugins=[AtomicCheckpointIO()],
            default_root_dir=tmp_path,
        ).fit(module, loader(), ckpt_path=ckpt_path)

    whole, first, second = Seen(), Seen(), Seen()
    fit(whole)
    if stop.startswith("sigterm"):
        step = int(stop.split()[-1])
        with pytest.raises(SystemExit) as stopped:
            fit(first, [SigtermAt(step), StopOnSignal(last, "resume")])
        assert stopped.value.code == 128 + signal.SIGTERM
    else:
        step = limit
        fit(first, [LastCheckpoint(last)], max_epochs=1)
    fit(second, ckpt_path=last)
    assert len(whole.batches) == 3 * (limit or 6) and first.batches == whole.batches[:step]
    assert second.batches == whole.batches[step:]
