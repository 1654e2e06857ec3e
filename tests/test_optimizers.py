"""Optimisers (clmr/modules/optimizers.py): our LARS computes simclr's LARS step on the CPU, without its faults."""

from __future__ import annotations

import copy

import pytest
import torch
from simclr.modules import LARS as SimclrLARS
from test_main import tiny_run
from torch import nn

import main
from clmr.modules.optimizers import LARS

LR, WEIGHT_DECAY, STEPS = 0.3, 1e-4, 5


@pytest.fixture
def simclr_on_the_cpu(monkeypatch):
    """simclr's LARS moves a constant to `grad.get_device()`, which is -1 (an error) for a CPU tensor."""
    monkeypatch.setattr(torch.Tensor, "get_device", lambda self: "cpu" if self.device.type == "cpu" else self.device)


def encoder_like() -> nn.Module:
    """Conv, BatchNorm and Linear layers (with biases) as in SampleCNN and the projector; no parameter is zero."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
    return model


def step_both(ours: LARS, reference: SimclrLARS, a: nn.Module, b: nn.Module, seed: int) -> list[tuple]:
    """One step of each optimiser on the same random gradients: (name, our update, simclr's update, gradient)."""
    generator = torch.Generator().manual_seed(seed)
    before = [(p.detach().clone(), q.detach().clone()) for p, q in zip(a.parameters(), b.parameters())]
    grads = []
    for p, q in zip(a.parameters(), b.parameters()):
        grad = torch.randn(p.shape, generator=generator)
        p.grad, q.grad = grad.clone(), grad.clone()
        grads.append(grad)
    ours.step()
    reference.step()
    return [
        (name, p.detach() - p0, q.detach() - q0, grad)
        for (name, p), q, (p0, q0), grad in zip(a.named_parameters(), b.parameters(), before, grads)
    ]


def test_lars_without_exclusions_equals_simclrs_lars_step_for_step(simclr_on_the_cpu):
    a = encoder_like()
    b = copy.deepcopy(a)
    ours = LARS(a.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, exclude_bias_and_norm=False)
    reference = SimclrLARS(b.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    for step in range(STEPS):
        for name, ours_update, simclr_update, _ in step_both(ours, reference, a, b, seed=step):
            torch.testing.assert_close(ours_update, simclr_update, rtol=1e-5, atol=1e-9, msg=f"{name}, step {step}")
        for p, q in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-8)


def test_lars_excludes_biases_and_batchnorm_from_weight_decay_and_adaptation(simclr_on_the_cpu):
    a = encoder_like()
    b = copy.deepcopy(a)
    ours = LARS(a.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    reference = SimclrLARS(b.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    excluded = []
    for name, ours_update, simclr_update, grad in step_both(ours, reference, a, b, seed=0):
        if ours_update.ndim > 1:  # conv and linear weights: simclr's step
            torch.testing.assert_close(ours_update, simclr_update, rtol=1e-5, atol=1e-9, msg=name)
        else:  # biases, BatchNorm weight and bias: momentum SGD on the gradient alone, no decay, no trust ratio
            torch.testing.assert_close(ours_update, -LR * grad, rtol=1e-5, atol=1e-9, msg=name)
            excluded.append(name)
    assert excluded == ["0.bias", "1.weight", "1.bias", "4.bias"]


def test_lars_leaves_the_gradients_as_they_were():
    model = encoder_like()
    grads = [torch.randn_like(p) for p in model.parameters()]
    for p, g in zip(model.parameters(), grads):
        p.grad = g.clone()
    LARS(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY).step()
    for p, g in zip(model.parameters(), grads):
        assert torch.equal(p.grad, g)


def test_lars_keeps_a_parameter_finite_when_its_gradient_or_weights_are_zero():
    zero_grad, zero_weights = nn.Parameter(torch.ones(3, 3)), nn.Parameter(torch.zeros(3, 3))
    zero_grad.grad, zero_weights.grad = torch.zeros(3, 3), torch.ones(3, 3)
    LARS([zero_grad, zero_weights], lr=LR).step()
    assert torch.equal(zero_grad, torch.ones(3, 3))  # simclr's trust ratio is |w| / 0 = inf here: NaN weights
    assert torch.equal(zero_weights, torch.full((3, 3), -LR))  # and 0 / |g| = 0 here: the weights never move


def test_lars_resumes_from_the_state_of_simclrs_lars(simclr_on_the_cpu):
    a = encoder_like()
    b = copy.deepcopy(a)
    reference = SimclrLARS(b.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    step_both(
        LARS(a.parameters(), lr=LR, weight_decay=WEIGHT_DECAY, exclude_bias_and_norm=False), reference, a, b, seed=0
    )  # simclr's LARS now holds momentum buffers
    resumed = LARS(a.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    resumed.load_state_dict(reference.state_dict())
    assert resumed.param_groups[0]["nesterov"] is False and resumed.param_groups[0]["exclude_bias_and_norm"]
    first = next(iter(a.parameters()))
    assert torch.equal(
        resumed.state[first]["momentum_buffer"], reference.state[next(iter(b.parameters()))]["momentum_buffer"]
    )


def test_lars_refuses_a_negative_learning_rate():
    with pytest.raises(ValueError, match="lr >= 0"):
        LARS([nn.Parameter(torch.ones(2))], lr=-0.1)


def test_pretraining_with_lars_runs_on_the_cpu(tmp_path):
    main.main(tiny_run(tmp_path, "--optimizer", "LARS"))
    checkpoint = torch.load(
        tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )
    assert checkpoint["global_step"] == 2
    buffers = [s["momentum_buffer"] for s in checkpoint["optimizer_states"][0]["state"].values()]
    assert buffers and all(torch.isfinite(b).all() for b in buffers)
    assert all(torch.isfinite(w).all() for w in checkpoint["state_dict"].values() if w.is_floating_point())
