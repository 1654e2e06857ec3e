"""Pre-train a SampleCNN encoder with CLMR (contrastive, SimCLR), or train the supervised baseline.

    python main.py --dataset synthetic --max_epochs 10
    python main.py --dataset magnatagatune --gpus 1 --workers 8
"""
from __future__ import annotations

from pytorch_lightning import seed_everything

from clmr import cli
from clmr.augmentations import build_augmentation_chain
from clmr.config import ConfigError, load_config
from clmr.datasets import dataset_from_config
from clmr.datasets.loading import crop_loader
from clmr.models import SampleCNN
from clmr.modules import ContrastiveLearning, SupervisedLearning
from clmr.trainer import (build_trainer, checkpoint_callbacks, checkpoint_dir, early_stopping, resume_path,
                          tensorboard_hint)


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv, prog="main.py")
    if cfg.augment_on not in ("device", "workers"):
        raise ConfigError(f"--augment_on {cfg.augment_on!r}: expected device or workers")
    seed_everything(cfg.seed, workers=True)
    train, valid = dataset_from_config(cfg, "train"), dataset_from_config(cfg, "valid")
    print(f"{train.describe()}; {valid.describe()}")

    if cfg.supervised:
        stage, views, transform = "supervised", None, None
        encoder = SampleCNN(supervised=True, out_dim=train.n_classes)
        module = SupervisedLearning(cfg, encoder, multilabel=train.multilabel)
        callbacks = checkpoint_callbacks(cfg, stage) + [early_stopping(cfg)]
    else:
        stage, views = "pretrain", 2
        chain = build_augmentation_chain(cfg)
        transform = chain if cfg.augment_on == "workers" else None
        module = ContrastiveLearning(cfg, SampleCNN(out_dim=max(train.n_classes, 1)),
                                     augment=chain if cfg.augment_on == "device" else None)
        callbacks = checkpoint_callbacks(cfg, stage)
    trainer = build_trainer(cfg, stage, callbacks)
    trainer.fit(module, crop_loader(train, cfg, train=True, n_views=views, transform=transform),
                crop_loader(valid, cfg, train=False, n_views=views, transform=transform),
                ckpt_path=resume_path(cfg, stage))
    if trainer.is_global_zero:
        print(f"checkpoints: {checkpoint_dir(cfg, stage)}/{{last,best}}.ckpt")
        print(f"TensorBoard logs: {trainer.logger.log_dir}  (view: {tensorboard_hint(cfg)})")


if __name__ == "__main__":
    cli.run(main)
