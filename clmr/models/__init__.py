"""Encoders and heads."""

from __future__ import annotations

from clmr.models.head import build_head
from clmr.models.sample_cnn import N_FEATURES, SampleCNN

__all__ = ["SampleCNN", "N_FEATURES", "build_head"]
