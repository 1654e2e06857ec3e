"""Hostile inputs, stage by stage: each gives a non-zero exit and one line naming the file or flag and what
was expected; no traceback, nothing half-written, no NaN written.

Scripts run in this process (`conftest.run_script_in_process`), so a case costs what the script does
before it refuses, not a Python start-up.
"""
from __future__ import annotations

import pytest

from conftest import assert_refused, half_written  # noqa: F401


# -- options (config.yaml keys, flags, YAML values) ---------------------------------------------------
CONFIG_CASES = [
]


# -- checkpoints entering the program ----------------------------------------------------------------
CHECKPOINT_CASES = [
]


# -- audio files, file names, output folders ----------------------------------------------------------
FILE_CASES = [
]
