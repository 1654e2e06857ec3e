"""SampleCNN (Lee et al. 2017) as CLMR uses it: 3^9 strided raw-waveform blocks, 59,049 samples -> 512-d."""

from __future__ import annotations

import torch
from torch import nn

# (input channels, output channels) of the nine Conv-BN-ReLU-MaxPool blocks.
HIDDEN = [(128, 128), (128, 128), (128, 256), (256, 256), (256, 256), (256, 256), (256, 256), (256, 256), (256, 512)]
STRIDES = [3] * len(HIDDEN)
N_FEATURES = 512


def _block(
    c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 1, pool: int | None = None
) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv1d(c_in, c_out, kernel_size=kernel, stride=stride, padding=padding),
        nn.BatchNorm1d(c_out),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool1d(pool, stride=pool))
    return nn.Sequential(*layers)


class SampleCNN(nn.Module):
    """Raw-waveform encoder: (batch, 1, 59049) -> (batch, out_dim), or 512-d once `fc` is an Identity.

    Module names match the original CLMR (`sequential.N.M.*`, `fc.*`) so its checkpoints load.
    """

    def __init__(self, strides: list[int] = STRIDES, supervised: bool = False, out_dim: int = 50):
        super().__init__()
        if len(strides) != len(HIDDEN):
            raise ValueError(f"SampleCNN needs {len(HIDDEN)} strides, got {len(strides)}")
        self.strides = list(strides)
        self.supervised = bool(supervised)
        blocks = [_block(1, 128, kernel=3, stride=3, padding=0)]
        blocks += [_block(c_in, c_out, kernel=s, pool=s) for s, (c_in, c_out) in zip(strides, HIDDEN)]
        blocks.append(_block(N_FEATURES, N_FEATURES, kernel=3))
        self.sequential = nn.Sequential(*blocks)
        if self.supervised:
            self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(N_FEATURES, out_dim)

    @staticmethod
    def receptive_field(strides: list[int] = STRIDES) -> int:
        """Samples that map to one output frame: 3 * prod(strides) (59,049 for CLMR)."""
        n = 3
        for s in strides:
            n *= s
        return n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.sequential(x)
        if self.supervised:
            out = self.dropout(out)
        return self.fc(out.reshape(x.shape[0], -1))
