"""Pre-train a SampleCNN encoder with CLMR (contrastive, SimCLR), or train the supervised baseline.

python main.py --dataset synthetic --max_epochs 10
python main.py --dataset magnatagatune --gpus 1 --workers 8
python main.py --dataset magnatagatune --gpus 1 --workers 8 --resume 1    # continue its last.ckpt
"""

from __future__ import annotations

from pytorch_lightning import seed_everything

from clmr import cli
from clmr.config import ConfigError, load_config
from clmr.datasets import dataset_from_config, layout_lines
from clmr.models import SampleCNN
from clmr.runs import describe_checkpoints, open_run, resume_path, training_checkpoint
from clmr.stages import (
    augmentation_chain,
    contrastive_module,
    online_evaluation_from_config,
    supervised_module,
    training_loader,
)
from clmr.stopping import no_silent_sigterm
from clmr.trainer import build_trainer, checkpoint_callbacks, early_stopping, tensorboard_hint


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(argv, prog="main.py")
    if cfg.augment_on not in ("device", "workers"):
        raise ConfigError(f"--augment_on {cfg.augment_on!r}: expected device or workers")
    stage = "supervised" if cfg.supervised else "pretrain"
    with open_run(cfg, stage):  # locked, writable, nothing overwritten: checked before any data is read
        seed_everything(cfg.seed, workers=True)
        train, valid = dataset_from_config(cfg, "train"), dataset_from_config(cfg, "valid")
        for line in layout_lines(train, valid):
            print(line)
        print(f"{train.describe()}; {valid.describe()}")

        if cfg.supervised:
            views, transform = None, None
            encoder = SampleCNN(supervised=True, out_dim=train.n_classes)
            module = supervised_module(cfg, encoder, train.multilabel, train.tag_names)
            callbacks = checkpoint_callbacks(cfg, stage) + [early_stopping(cfg)]
        else:
            views = 2
            chain = augmentation_chain(cfg)
            transform = chain if cfg.augment_on == "workers" else None
            module = contrastive_module(
                cfg, SampleCNN(out_dim=max(train.n_classes, 1)), augment=chain if cfg.augment_on == "device" else None
            )
            callbacks = checkpoint_callbacks(cfg, stage)
            online = online_evaluation_from_config(cfg, train, valid)
            callbacks += [online] if online else []
        ckpt_path = resume_path(cfg, stage)
        if ckpt_path:  # checked here, read weights-only again by the Trainer's checkpoint IO
            training_checkpoint(
                ckpt_path,
                module.state_dict(),
                stage,
                cfg.optimizer,
                flag="--checkpoint_path" if cfg.checkpoint_path else "--resume 1 from",
            )
        trainer = build_trainer(cfg, stage, callbacks)
        with no_silent_sigterm():
            trainer.fit(
                module,
                training_loader(train, cfg, train=True, n_views=views, transform=transform),
                training_loader(valid, cfg, train=False, n_views=views, transform=transform),
                ckpt_path=ckpt_path,
            )
        if trainer.is_global_zero:
            print(describe_checkpoints(cfg, stage))
            print(f"TensorBoard logs: {trainer.logger.log_dir}  (view: {tensorboard_hint(cfg)})")


if __name__ == "__main__":
    cli.run(main)
