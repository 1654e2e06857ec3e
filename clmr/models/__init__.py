"""Encoders and heads."""
from clmr.models.sample_cnn import N_FEATURES, SampleCNN

__all__ = ["SampleCNN", "N_FEATURES"]
