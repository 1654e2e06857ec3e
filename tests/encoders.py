"""Test encoders shared by the export and predict tests."""
import torch
from torch import nn

from clmr.export import music_like
from clmr.models import SampleCNN

SR, L = 22050, 59049


def calibrated_encoder(seed: int = 0) -> SampleCNN:
    """A SampleCNN with known random weights whose output depends on its input, as a trained one's does:
    He-initialised convolutions and BatchNorm statistics measured on music-like audio and noise.

    (PyTorch's default initialisation with unit BatchNorm statistics maps every input to nearly the
    same vector, which would make any parity or equality test pass.)"""
    torch.manual_seed(seed)
    encoder = SampleCNN(out_dim=50)
    for m in encoder.modules():
        if isinstance(m, nn.Conv1d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        if isinstance(m, nn.BatchNorm1d):
            m.momentum = None  # cumulative average over the calibration batch
    music = [torch.from_numpy(music_like(L, SR, seed + k)) for k in range(4)]
    audio = torch.stack(music + [0.1 * torch.randn(L) for _ in range(4)])[:, None]
    with torch.no_grad():
        encoder.train()(audio)
    return encoder.eval()
