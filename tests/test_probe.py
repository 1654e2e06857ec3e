"""The probe's orchestration (clmr/probe.py) below the script: which encoder it probes and how it is identified."""

from __future__ import annotations

import pytest
import torch

from clmr.checkpoints import RANDOM
from clmr.config import ConfigError, load_config
from clmr.probe import encoder_from_config, probe_encoder
from conftest import random_encoder_checkpoint


def test_the_random_baseline_is_identified_by_its_seed_and_built_once_per_seed():
    a, b, c = probe_encoder(RANDOM, 1), probe_encoder(RANDOM, 1), probe_encoder(RANDOM, 2)
    assert a.id == b.id != c.id and a.info == {"checkpoint_path": RANDOM, "seed": 1, "format": RANDOM}
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))


def test_a_checkpoint_is_identified_by_its_sha256(tmp_path):
    path = random_encoder_checkpoint(tmp_path / "last.ckpt")
    encoder = encoder_from_config(load_config(["--checkpoint_path", str(path)]))
    assert encoder.id == f"sha256:{encoder.info['sha256']}" and encoder.info["format"] == "lightning"


def test_no_checkpoint_path_is_a_config_error_naming_the_flag():
    with pytest.raises(ConfigError, match="--checkpoint_path is required"):
        encoder_from_config(load_config([]))
