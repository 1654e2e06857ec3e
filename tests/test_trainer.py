"""The Trainer's checkpoint IO (clmr/trainer.py): atomic writes that fail as a named OSError, weights-only reads."""
from __future__ import annotations

import errno

import pytest
import torch

from clmr.trainer import AtomicCheckpointIO
from conftest import half_written


def test_a_checkpoint_is_written_and_read_back_weights_only(tmp_path):
    io = AtomicCheckpointIO()
    state = {"state_dict": {"w": torch.arange(6.0)}, "global_step": 3}
    io.save_checkpoint(state, tmp_path / "last.ckpt")
    back = io.load_checkpoint(tmp_path / "last.ckpt")
    assert back["global_step"] == 3 and torch.equal(back["state_dict"]["w"], torch.arange(6.0))
    assert half_written(tmp_path) == []


def test_a_checkpoint_that_fills_the_disk_is_an_os_error_naming_it_and_leaves_nothing(conditions):
    folder = conditions.small(64 * 1024, "full")
    with pytest.raises(OSError) as failed:
        AtomicCheckpointIO().save_checkpoint({"w": torch.zeros(64 * 1024)}, folder / "last.ckpt")  # 256 kB
    assert failed.value.errno == errno.ENOSPC and failed.value.filename == str(folder / "last.ckpt")
    assert not (folder / "last.ckpt").exists() and half_written(folder) == []
