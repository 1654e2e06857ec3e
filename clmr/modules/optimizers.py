"""Optimisers of the original CLMR: Adam, or LARS with linear learning-rate scaling and cosine decay."""
from __future__ import annotations

from typing import Any, Iterable

import torch

from clmr.config import ConfigError

LARS_BASE_LR = 0.3        # SimCLR: learning rate = 0.3 x batch size / 256
LARS_BASE_BATCH = 256
OPTIMIZERS = ("Adam", "LARS")


def effective_batch_size(batch_size: int, trainer: Any | None) -> int:
    """Examples per optimiser step over all processes: per device x devices x nodes."""
    return batch_size * (trainer.world_size if trainer is not None else 1)


def build_optimizer(params: Iterable[torch.nn.Parameter], hparams: Any, trainer: Any | None = None):
    """The optimiser (and LR schedule) named by `hparams.optimizer`, in Lightning's return format."""
    if hparams.optimizer == "Adam":
        return torch.optim.Adam(params, lr=hparams.learning_rate, weight_decay=hparams.weight_decay)
    if hparams.optimizer == "LARS":
        from simclr.modules import LARS

        lr = LARS_BASE_LR * effective_batch_size(hparams.batch_size, trainer) / LARS_BASE_BATCH
        optimizer = LARS(params, lr=lr, weight_decay=hparams.weight_decay,
                         exclude_from_weight_decay=["batch_normalization", "bias"])
        # "decay the learning rate with the cosine decay schedule without restarts"
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(hparams.max_epochs, 1), eta_min=0)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
    raise ConfigError(f"--optimizer {hparams.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
