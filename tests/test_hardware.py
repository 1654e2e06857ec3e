"""The hardware a config means (clmr/hardware.py): --gpus, devices, pinned batches, automatic workers."""

from __future__ import annotations

import os

import torch

from clmr.config import load_config
from clmr.hardware import hardware, num_workers, parse_devices, pin_memory
from conftest import config


def test_original_gpus_flag_maps_to_accelerator_and_devices(visible_gpus):
    visible_gpus(2)
    assert hardware(load_config(["--gpus", "2"]))["accelerator"] == "gpu"
    assert hardware(load_config(["--gpus", "2"]))["devices"] == 2
    assert hardware(load_config(["--gpus", "0"]))["accelerator"] == "cpu"
    assert hardware(load_config([]))["devices"] == "auto"
    assert parse_devices("0,1") == [0, 1]


# -- every value checked by its key's rule -----------------------------------------------------------------


def test_batches_are_pinned_only_for_training_on_a_gpu(monkeypatch, visible_gpus):
    visible_gpus(1)
    asked_for_a_gpu = config(gpus=1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not pin_memory(config())
    assert not pin_memory(asked_for_a_gpu)  # asked for a GPU, but there is none: nothing to pin for
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pin_memory(config())  # accelerator auto picks the GPU
    assert pin_memory(config(gpus=1))
    assert pin_memory(config(accelerator="gpu"))
    assert not pin_memory(config(accelerator="cpu"))
    assert not pin_memory(config(gpus=0))


def test_auto_workers_are_none_on_the_cpu_and_the_free_cores_per_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert num_workers(config(workers=3)) == 3
    assert num_workers(config(workers=-1)) == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert num_workers(config(workers=-1)) == 7  # 16 cores over 2 GPUs, one left for each main process
    assert num_workers(config(workers=-1, devices=1)) == 8  # at most 8
    assert num_workers(config(workers=-1, accelerator="cpu")) == 0
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert num_workers(config(workers=-1, devices=1)) == 1


# -- the training step's precision (config/config.yaml: precision auto) -----------------------
