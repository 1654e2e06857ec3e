"""Optimisers of the original CLMR: Adam, or LARS with linear learning-rate scaling and cosine decay."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from clmr.config import ConfigError
from clmr.options import OPTIMIZERS

LARS_BASE_LR = 0.3  # SimCLR: learning rate = 0.3 x batch size / 256
LARS_BASE_BATCH = 256
LARS_MOMENTUM = 0.9  # SimCLR's and simclr.modules.LARS's defaults
LARS_EETA = 0.001

__all__ = ["LARS", "OPTIMIZERS", "build_optimizer", "effective_batch_size"]


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) as SimCLR trains with it, on any device.

    Each parameter's step is momentum SGD on grad + weight_decay * w with the learning rate scaled by
    the trust ratio eeta * |w| / |grad + weight_decay * w| (1 where either norm is 0). Biases and
    BatchNorm parameters (every parameter of one dimension) get neither weight decay nor the trust
    ratio, as SimCLR's `exclude_from_weight_decay=["batch_normalization", "bias"]` means; the `simclr`
    package's LARS takes that list but applies both to every parameter, and it cannot run on the CPU.
    With `exclude_bias_and_norm=False` this computes simclr's LARS step (for non-zero norms). The state
    (momentum buffers) is simclr's too, so a run trained with simclr's LARS resumes with this one.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict],
        lr: float,
        momentum: float = LARS_MOMENTUM,
        weight_decay: float = 0.0,
        eeta: float = LARS_EETA,
        nesterov: bool = False,
        exclude_bias_and_norm: bool = True,
    ):
        for name, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay), ("eeta", eeta)):
            if not value >= 0:
                raise ValueError(f"LARS: expected {name} >= 0, got {value}")
        super().__init__(
            params,
            dict(
                lr=lr,
                momentum=momentum,
                weight_decay=weight_decay,
                eeta=eeta,
                nesterov=nesterov,
                exclude_bias_and_norm=exclude_bias_and_norm,
            ),
        )

    def __setstate__(self, state: dict) -> None:
        """Also on load_state_dict: the param groups of simclr's LARS name nesterov `use_nesterov`."""
        super().__setstate__(state)
        for group in self.param_groups:
            group.setdefault("nesterov", bool(group.get("use_nesterov", False)))
            group.setdefault("exclude_bias_and_norm", True)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._update(p, group)
        return loss

    def _update(self, p: torch.nn.Parameter, group: dict) -> None:
        grad, lr = p.grad, group["lr"]
        if not (group["exclude_bias_and_norm"] and p.ndim <= 1):
            if group["weight_decay"]:
                grad = grad.add(p, alpha=group["weight_decay"])
            w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
            trust = torch.where((w_norm > 0) & (g_norm > 0), group["eeta"] * w_norm / g_norm, 1.0)
            lr = trust * lr
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(p)
        velocity = state["momentum_buffer"]
        velocity.mul_(group["momentum"]).add_(grad * lr)
        p.sub_(velocity * group["momentum"] + grad * lr if group["nesterov"] else velocity)


def effective_batch_size(batch_size: int, trainer: Any | None) -> int:
    """Examples per optimiser step over all processes: per device x devices x nodes."""
    return batch_size * (trainer.world_size if trainer is not None else 1)


def build_optimizer(params: Iterable[torch.nn.Parameter], hparams: Any, trainer: Any | None = None):
    """The optimiser (and LR schedule) named by `hparams.optimizer`, in Lightning's return format."""
    if hparams.optimizer == "Adam":
        return torch.optim.Adam(params, lr=hparams.learning_rate, weight_decay=hparams.weight_decay)
    if hparams.optimizer == "LARS":
        lr = LARS_BASE_LR * effective_batch_size(hparams.batch_size, trainer) / LARS_BASE_BATCH
        optimizer = LARS(params, lr=lr, weight_decay=hparams.weight_decay)
        # "decay the learning rate with the cosine decay schedule without restarts"
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(hparams.max_epochs, 1), eta_min=0)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
    raise ConfigError(f"--optimizer {hparams.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
