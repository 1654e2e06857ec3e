"""The probe head on the encoder's 512-d representations: linear, or an MLP with one hidden layer."""

from __future__ import annotations

from torch import nn

HIDDEN = 512  # the MLP head's hidden layer


def build_head(n_features: int, n_outputs: int, mlp: bool) -> nn.Sequential:
    """`Linear`, or `Linear-ReLU-Linear` with 512 hidden units: keys `0.*` (and `2.*`) as in the original."""
    if mlp:
        return nn.Sequential(nn.Linear(n_features, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, n_outputs))
    return nn.Sequential(nn.Linear(n_features, n_outputs))
