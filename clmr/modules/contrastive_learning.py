"""Contrastive pre-training (SimCLR): two augmented views, SampleCNN encoder, projector, NT-Xent."""

from __future__ import annotations

import torch
from pytorch_lightning import LightningModule
from simclr import SimCLR
from torch import nn

from clmr.losses import NTXentLoss
from clmr.modules.optimizers import build_optimizer, effective_batch_size

AUDIO_EXAMPLES = 4  # augmented pairs logged to TensorBoard at the start of training


class ContrastiveLearning(LightningModule):
    """Wires encoder, projector (simclr.SimCLR), NT-Xent and optimiser; state-dict keys `model.encoder.*`.

    `augment`, when given, is the batched augmentation chain; it runs on the training device on
    (batch * views, 1, time) after the batch is transferred. Otherwise the views arrive augmented
    from the DataLoader workers.
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        projection_dim: int,
        temperature: float,
        optimizer: str,
        learning_rate: float,
        weight_decay: float,
        batch_size: int,
        max_epochs: int,
        seed: int,
        sample_rate: int,
        audio_length: int,
        dataset: str,
        compile: bool = False,
        augment: nn.Module | None = None,
    ):
        """`batch_size` (per device) and `max_epochs` scale and shape LARS's schedule; `seed` gives each DDP
        process its stream; `sample_rate`, `audio_length` and `dataset` are saved for the checkpoint's readers."""
        super().__init__()
        self.save_hyperparameters(ignore=["encoder", "augment"])  # what a reader of the checkpoint needs
        self.model = SimCLR(encoder, projection_dim, n_features=encoder.fc.in_features)
        if compile:
            encoder.compile()  # in place, on first call: the state-dict keys stay `model.encoder.*`
        self.criterion = NTXentLoss(self.hparams.temperature)
        self.augment = augment

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        views, label = batch
        if self.augment is not None and (self.training or self.trainer.validating):
            b, n = views.shape[:2]
            with torch.no_grad():
                views = self.augment(views.flatten(0, 1)).unflatten(0, (b, n))
        return views, label

    def forward(self, x_i: torch.Tensor, x_j: torch.Tensor) -> torch.Tensor:
        _, _, z_i, z_j = self.model(x_i, x_j)
        return self.criterion(z_i, z_j)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        views, _ = batch
        if self.global_step == 0 and batch_idx == 0:
            self._log_audio(views)
        loss = self(views[:, 0], views[:, 1])
        self.log("Train/loss", loss, prog_bar=True, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        views, _ = batch
        loss = self(views[:, 0], views[:, 1])
        self.log("Valid/loss", loss, prog_bar=True, sync_dist=True)
        return loss

    def on_fit_start(self) -> None:
        """Under DDP, a random stream per process for the crops and augmentations it draws itself.

        seed_everything gives every process the same seed, so example k of every rank would otherwise be
        cropped and augmented alike (same offsets, gains, noise). PL_GLOBAL_SEED is left alone: the
        DistributedSampler needs the same seed on every rank, and DataLoader workers are already seeded by rank.
        """
        if self.trainer.world_size > 1:
            torch.manual_seed(self.hparams.seed + self.global_rank)

    def on_train_start(self) -> None:
        """Log the effective batch size (per device x devices x nodes): the NT-Xent batch, and LARS's lr scale."""
        size = effective_batch_size(self.hparams.batch_size, self.trainer)
        if self.logger is not None:
            self.logger.log_metrics({"effective_batch_size": size}, step=self.global_step)
        lr = self.trainer.optimizers[0].param_groups[0]["lr"]  # after a resume: the checkpoint's
        self.print(
            f"effective batch size: {size} = {self.hparams.batch_size} per device x "
            f"{self.trainer.num_devices} device(s) x {self.trainer.num_nodes} node(s); "
            f"{self.hparams.optimizer} learning rate {lr:g}"
        )  # on global rank 0, above the progress bar

    def configure_optimizers(self):
        return build_optimizer(self.model.parameters(), self.hparams, self.trainer)

    def _log_audio(self, views: torch.Tensor) -> None:
        """A few augmented pairs as audio in TensorBoard, so the chain can be listened to."""
        experiment = getattr(self.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_audio") or self.global_rank != 0:
            return
        for k in range(min(AUDIO_EXAMPLES, views.shape[0])):
            for v in range(views.shape[1]):
                clip = views[k, v].detach().float().cpu().clamp(-1, 1)
                experiment.add_audio(
                    f"Augmented views/example {k} view {v}", clip, 0, sample_rate=self.hparams.sample_rate
                )
