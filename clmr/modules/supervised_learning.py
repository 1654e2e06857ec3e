"""The supervised baseline: SampleCNN trained end to end on the labels."""

from __future__ import annotations

import torch
from pytorch_lightning import LightningModule
from torch import nn

from clmr.modules.optimizers import build_optimizer

PLATEAU_FACTOR = 0.2  # the original CLMR's supervised schedule
PLATEAU_PATIENCE = 5


class SupervisedLearning(LightningModule):
    """SampleCNN with dropout and an `fc` of n_classes; BCE for multi-label data, cross-entropy otherwise."""

    def __init__(
        self,
        encoder: nn.Module,
        *,
        multilabel: bool,
        optimizer: str,
        learning_rate: float,
        weight_decay: float,
        batch_size: int,
        max_epochs: int,
        sample_rate: int,
        audio_length: int,
        dataset: str,
        tag_names: list[str] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])  # what a reader of the checkpoint needs
        self.model = encoder
        self.criterion = nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _loss(self, batch) -> torch.Tensor:
        x, y = batch
        return self.criterion(self(x), y)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("Train/loss", loss, prog_bar=True, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("Valid/loss", loss, prog_bar=True, sync_dist=True)
        return loss

    def configure_optimizers(self):
        optimizer = build_optimizer(self.model.parameters(), self.hparams, self.trainer)
        if isinstance(optimizer, dict):
            return optimizer
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "Valid/loss"}}
