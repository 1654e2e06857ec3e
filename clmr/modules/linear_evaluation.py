"""The probe: a linear (or one-hidden-layer MLP) head trained on a frozen encoder's cached representations."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_lightning import LightningModule
from torch import nn

from clmr.evaluation import probabilities, track_metrics
from clmr.models.head import build_head

PLATEAU_FACTOR = 0.1  # the original CLMR's finetuner schedule
PLATEAU_PATIENCE = 5


class LinearEvaluation(LightningModule):
    """The head as `self.model` (checkpoint keys `model.*`); BCE for multi-label data, cross-entropy otherwise.

    Batches are (representations, labels). Besides the losses, each validation epoch logs the
    crop-level macro ROC-AUC and PR-AUC (and accuracy for single-label data) to TensorBoard.
    """

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        multilabel: bool,
        tag_names: list[str] | None = None,
        *,
        mlp: bool,
        learning_rate: float,
        weight_decay: float,
        dataset: str,
        sample_rate: int,
        audio_length: int,
    ):
        super().__init__()
        self.tag_names = list(tag_names) if tag_names else [str(k) for k in range(n_outputs)]
        # What a reader of the checkpoint needs: predict.py and export.py name the head's outputs by tag_names.
        self.save_hyperparameters(ignore=["tag_names"])
        self.hparams["tag_names"] = self.tag_names
        self.model = build_head(n_features, n_outputs, bool(mlp))
        self.criterion = nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()
        self._valid: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.model(h)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        h, y = batch
        loss = self.criterion(self(h), y)
        self.log("Train/loss", loss, on_step=False, on_epoch=True)  # per epoch: a head may take one step per epoch
        return loss

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        h, y = batch
        logits = self(h)
        loss = self.criterion(logits, y)
        self.log("Valid/loss", loss)
        self._valid.append((logits.detach().float().cpu(), y.detach().cpu()))
        return loss

    def on_validation_epoch_end(self) -> None:
        outputs, self._valid = self._valid, []
        if self.trainer.sanity_checking or not outputs:
            return
        logits = torch.cat([o for o, _ in outputs]).numpy()
        labels = torch.cat([y for _, y in outputs]).numpy()
        metrics = track_metrics(
            labels, probabilities(logits, self.hparams.multilabel), self.tag_names, self.hparams.multilabel
        )
        for name in ("roc_auc", "pr_auc", "accuracy"):
            if name in metrics and np.isfinite(metrics[name]):
                self.log(f"Valid/{name}", float(metrics[name]))

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(
            self.model.parameters(), lr=self.hparams.learning_rate, weight_decay=self.hparams.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=PLATEAU_FACTOR, patience=PLATEAU_PATIENCE
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "Valid/loss"}}
