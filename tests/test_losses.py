"""NT-Xent equals simclr's reference implementation on the same inputs, for any batch size."""

from __future__ import annotations

import pytest
import torch
from simclr.modules import NT_Xent

from clmr.losses import NTXentLoss, nt_xent


@pytest.mark.parametrize("batch_size", [1, 2, 7, 48])
@pytest.mark.parametrize("temperature", [0.5, 0.1])
def test_nt_xent_equals_simclr_reference(batch_size, temperature):
    generator = torch.Generator().manual_seed(batch_size)
    z_i = torch.randn(batch_size, 64, generator=generator, dtype=torch.float64)
    z_j = torch.randn(batch_size, 64, generator=generator, dtype=torch.float64)
    reference = NT_Xent(batch_size, temperature, world_size=1)(z_i, z_j)
    assert torch.allclose(nt_xent(z_i, z_j, temperature), reference, rtol=1e-10)


def test_nt_xent_gradients_equal_simclr_reference():
    z_i = torch.randn(5, 16, dtype=torch.float64, requires_grad=True)
    z_j = torch.randn(5, 16, dtype=torch.float64, requires_grad=True)
    ours = torch.autograd.grad(NTXentLoss(0.5)(z_i, z_j), (z_i, z_j))
    theirs = torch.autograd.grad(NT_Xent(5, 0.5, 1)(z_i, z_j), (z_i, z_j))
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, rtol=1e-10)


def test_identical_views_far_from_others_give_a_low_loss():
    z = torch.eye(8, dtype=torch.float64) * 10
    assert nt_xent(z, z, 0.1) < 1e-3 < nt_xent(z, z.roll(1, 0), 0.1)


def test_mismatched_views_are_an_error():
    with pytest.raises(ValueError, match="equal shape"):
        nt_xent(torch.randn(3, 4), torch.randn(2, 4))


@pytest.mark.parametrize("temperature", [0.0, -0.5, float("nan")])
def test_nt_xent_refuses_a_temperature_that_is_not_positive(temperature):
    with pytest.raises(ValueError, match="temperature must be > 0"):
        NTXentLoss(temperature)
