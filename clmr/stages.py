"""What each stage trains, from the config: the one place the flat config is unpacked into the typed arguments of
the LightningModules (clmr/modules) and the training loaders (clmr/datasets/loading.py).

Scripts and `run_*` functions read `cfg`; below this module nothing does.
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from clmr.augmentations import FILTERS_MIN_RATE, LOWPASS_HZ, STEPS, build_augmentation_chain
from clmr.config import ConfigError
from clmr.datasets import dataset_from_config
from clmr.datasets.dataset import AudioDataset
from clmr.datasets.loading import crop_loader
from clmr.hardware import num_workers, pin_memory
from clmr.models import N_FEATURES
from clmr.modules import ContrastiveLearning, SupervisedLearning
from clmr.modules.linear_evaluation import LinearEvaluation
from clmr.online_evaluation import OnlineEvaluation, OnlineSplit


def _optimizer(cfg: Namespace) -> dict:
    return dict(
        optimizer=cfg.optimizer,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        batch_size=cfg.batch_size,
        max_epochs=cfg.max_epochs,
    )


def _audio(cfg: Namespace) -> dict:
    return dict(sample_rate=cfg.sample_rate, audio_length=cfg.audio_length, dataset=cfg.dataset)


def contrastive_module(cfg: Namespace, encoder: nn.Module, augment: nn.Module | None = None) -> ContrastiveLearning:
    """CLMR pre-training of `encoder`; `augment`, when given, runs on the training device."""
    return ContrastiveLearning(
        encoder,
        projection_dim=cfg.projection_dim,
        temperature=cfg.temperature,
        seed=cfg.seed,
        compile=bool(cfg.compile),
        augment=augment,
        **_optimizer(cfg),
        **_audio(cfg),
    )


def supervised_module(
    cfg: Namespace, encoder: nn.Module, multilabel: bool, tag_names: list[str] | None = None
) -> SupervisedLearning:
    """The supervised baseline: `encoder` trained end to end on the labels."""
    return SupervisedLearning(encoder, multilabel=multilabel, tag_names=tag_names, **_optimizer(cfg), **_audio(cfg))


def linear_module(cfg: Namespace, n_outputs: int, multilabel: bool, tag_names: list[str]) -> LinearEvaluation:
    """The probe's head on the encoder's 512-d representations."""
    return LinearEvaluation(
        N_FEATURES,
        n_outputs,
        multilabel,
        tag_names,
        mlp=bool(cfg.finetuner_mlp),
        learning_rate=cfg.finetuner_learning_rate,
        weight_decay=cfg.weight_decay,
        **_audio(cfg),
    )


def training_loader(
    dataset: AudioDataset,
    cfg: Namespace,
    train: bool,
    n_views: int | None = 2,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int | None = None,
) -> DataLoader:
    """`clmr.datasets.loading.crop_loader` with the batch size, workers, pinning and seed of the config."""
    return crop_loader(
        dataset,
        batch_size=batch_size or cfg.batch_size,
        train=train,
        seed=cfg.seed,
        workers=num_workers(cfg),
        pin_memory=pin_memory(cfg),
        n_views=n_views,
        transform=transform,
    )


def augmentation_chain(cfg: Namespace, crop: bool = False) -> nn.Module:
    """CLMR's augmentation chain with the probabilities `transforms_*` of the config."""
    sr = cfg.sample_rate
    if cfg.transforms_filters > 0 and sr < FILTERS_MIN_RATE:
        raise ConfigError(
            f"--sample_rate {sr}: the filters augmentation (--transforms_filters "
            f"{cfg.transforms_filters:g}) cuts off up to {LOWPASS_HZ[1]} Hz and needs at least "
            f"{FILTERS_MIN_RATE} Hz; pass --transforms_filters 0 to pre-train at {sr} Hz"
        )
    probabilities = {step: getattr(cfg, f"transforms_{step}") for step in STEPS}
    return build_augmentation_chain(sr, cfg.audio_length, crop=crop, **probabilities)


def online_evaluation_from_config(cfg: Namespace, train: AudioDataset, valid: AudioDataset) -> OnlineEvaluation | None:
    """The callback for main.py's pre-training: on --dataset's own train/valid splits when they are labelled,
    else on --online_eval_dataset's (from --online_eval_dataset_dir, default --dataset_dir); None when off."""
    if cfg.online_eval == "none":
        return None
    if cfg.online_eval_dataset and cfg.online_eval_dataset != cfg.dataset:
        other = Namespace(
            **{
                **vars(cfg),
                "dataset": cfg.online_eval_dataset,
                "dataset_dir": cfg.online_eval_dataset_dir or cfg.dataset_dir,
            }
        )
        train, valid = dataset_from_config(other, "train"), dataset_from_config(other, "valid")
        if not train.labelled:
            raise ConfigError(
                f"--online_eval_dataset {cfg.online_eval_dataset}: has no labels; expected a labelled "
                f"dataset (synthetic, magnatagatune, msd, gtzan, librispeech)"
            )
    elif not train.labelled:
        print(
            f"online evaluation off: --dataset {cfg.dataset} has no labels (watch a labelled one with "
            f"--online_eval_dataset, e.g. gtzan)",
            flush=True,
        )
        return None
    return OnlineEvaluation(
        OnlineSplit.of(train, cfg.online_eval_train_tracks, cfg.seed),
        OnlineSplit.of(valid, len(valid), cfg.seed),
        cfg.online_eval,
        cfg.online_eval_every_n_epochs,
        cfg.online_eval_k,
        cfg.finetuner_batch_size,
    )
