"""The Trainer's checkpoint IO (clmr/trainer.py): atomic writes that fail as a named OSError, weights-only reads."""

from __future__ import annotations

import errno

import pytest
import torch

from clmr.trainer import AtomicCheckpointIO, resolve_precision
from conftest import config, half_written


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


# -- the training step's precision (config/config.yaml: precision auto) -----------------------
@pytest.mark.parametrize(
    "capabilities, expected",
    [({"avx512_bf16": True}, "bf16-mixed"), ({"amx_bf16": True}, "bf16-mixed"), ({"avx2": True}, "32-true")],
)
def test_auto_precision_is_bf16_on_cpus_that_compute_it_natively(monkeypatch, capabilities, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert resolve_precision(config(precision="auto"), "pretrain") == expected
    assert resolve_precision(config(precision="auto"), "supervised") == expected
    assert resolve_precision(config(precision="auto"), "linear") == "32-true"  # the probe's head is tiny
    assert resolve_precision(config(precision="32-true"), "pretrain") == "32-true"  # fp32 stays an option


def test_auto_precision_on_gpus_follows_native_bf16_support(monkeypatch, visible_gpus):
    visible_gpus(1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert resolve_precision(config(precision="auto", gpus=1)) == "32-true"  # emulated only: slower than fp32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_precision(config(precision="auto", gpus=1)) == "bf16-mixed"
    assert resolve_precision(config(precision="16-mixed", gpus=1)) == "16-mixed"
