"""Linear evaluation of a frozen encoder, end to end: representations, head, track-level test scores, outputs.

    probe = run_probe(cfg, encoder_from_config(cfg))
    print(format_results(probe))                 # clmr.probe_outputs: what a person reads

Training protocols (`--finetuner_protocol`):

    clmr     the head trains on one random crop of every training track (and is validated on one
             random crop of every valid track), drawn once and kept: the original CLMR.
    chunks   the head trains (and is validated) on every non-overlapping chunk of every track, each
             with its track's labels: more data per track, the same test.

The test is the same for both: every chunk of every test track, scores averaged per track.
Outputs, under `<log_dir>/<run_name>/` (run name `linear_<dataset>` unless --run_name):
`results.json`, `per_tag.png`, `checkpoints/{best,last}.ckpt` (the head) and `version_N/`
(TensorBoard: head curves, test scores, the per-tag figure, and the test tracks' embeddings in
the projector with their tags).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import logging
import time
from argparse import Namespace
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pytorch_lightning import seed_everything
from pytorch_lightning.loggers import TensorBoardLogger
from torch.utils.data import DataLoader, TensorDataset

from clmr.atomic import check_writable, write_json
from clmr.checkpoints import RANDOM, CheckpointError, file_sha256, head_state_dict, load_encoder, load_head
from clmr.config import ConfigError
from clmr.datasets import dataset_from_config, layout_lines
from clmr.datasets.dataset import AudioDataset, DatasetError
from clmr.evaluation import label_fraction_tracks, probabilities, track_level_scores, track_metrics
from clmr.filenames import shown
from clmr.hardware import device_of
from clmr.models import SampleCNN
from clmr.modules.linear_evaluation import LinearEvaluation
from clmr.probe_outputs import format_comparison, format_results, padded_tracks, write_outputs  # noqa: F401 (format_*: re-exported)
from clmr.representations import Representations, calibrate_batchnorm, crop_plan, dataset_fingerprint, representations
from clmr.stages import linear_module
from clmr.trainer import build_trainer, checkpoint_callbacks, checkpoint_dir, early_stopping, run_name
from clmr.uncertainty import TEST_SCORES, bootstrap_info, metric_cis, save_track_scores

log = logging.getLogger(__name__)

STAGE = "linear"
CALIBRATION_CROPS = 128  # training crops that give a random encoder its BatchNorm statistics
PROTOCOLS = {"clmr": "crop", "chunks": "chunks"}  # protocol -> how train and valid tracks are cut


@dataclass
class Encoder:
    """A frozen encoder and what identifies it: `id` keys the representation cache.

    `model` may be a function that builds the encoder, called only if something is to be encoded.
    """

    model: SampleCNN | Callable[[], SampleCNN]
    id: str
    label: str
    info: dict = field(default_factory=dict)


def encoder_from_config(cfg: Namespace) -> Encoder:
    """The encoder of --checkpoint_path: a checkpoint file, or `random` (initialised from --seed)."""
    if not cfg.checkpoint_path:
        raise ConfigError(
            "--checkpoint_path is required: a pre-training checkpoint (e.g. "
            "runs/pretrain_synthetic/checkpoints/last.ckpt), or `random` for a randomly "
            "initialised encoder (the baseline)"
        )
    return probe_encoder(
        cfg.checkpoint_path, cfg.seed, {"sample_rate": cfg.sample_rate, "audio_length": cfg.audio_length}
    )


def probe_encoder(path: str, seed: int = 0, probe_audio: dict | None = None) -> Encoder:
    """The encoder of a checkpoint file, or for `random` a randomly initialised SampleCNN (from `seed`; see
    `clmr.checkpoints.random_encoder`), which `run_probe` gives BatchNorm statistics of the training audio.
    A checkpoint pre-trained on other `probe_audio` settings (sample_rate, audio_length) is warned about."""
    model = load_encoder(path, seed=seed)
    if str(path) == RANDOM:
        # The initialisation is torch's: another torch version may draw other weights from the same seed.
        return Encoder(
            model,
            f"random-seed{seed}-torch{torch.__version__}",
            f"random init (seed {seed})",
            {"checkpoint_path": RANDOM, "seed": seed, "format": RANDOM},
        )
    sha = file_sha256(path)
    for key, value in (probe_audio or {}).items():
        trained = model.checkpoint_hparams.get(key)
        if trained is not None and trained != value:
            log.warning("the encoder was pre-trained with %s %s, the probe uses --%s %s", key, trained, key, value)
    return Encoder(
        model,
        f"sha256:{sha}",
        str(path),
        {"checkpoint_path": str(path), "sha256": sha, "format": model.checkpoint_format},
    )


def with_batchnorm_from(encoder: Encoder, train: AudioDataset, cfg: Namespace, device: torch.device) -> Encoder:
    """The random encoder with BatchNorm statistics re-estimated on up to CALIBRATION_CROPS training crops.

    At its initial statistics (mean 0, variance 1) BatchNorm passes on a signal that shrinks layer by
    layer: a random SampleCNN's 512 outputs then vary by about 1e-6 from one input to another, a
    constant rather than a baseline. Pre-trained encoders carry statistics of their training audio;
    this gives the random one the same, from unlabelled crops, without changing a weight. The
    statistics are estimated only when something is to be encoded (not when the cache has it all).
    """
    tracks, starts = crop_plan(train, "crop", cfg.seed)
    if len(tracks) < 2:
        raise DatasetError(
            f"{train.describe()}: a random encoder needs at least 2 training tracks for its BatchNorm statistics"
        )
    pick = np.sort(np.random.default_rng(cfg.seed).permutation(len(tracks))[:CALIBRATION_CROPS])
    data = hashlib.sha256(json.dumps(dataset_fingerprint(train), sort_keys=True).encode()).hexdigest()[:16]
    model = encoder.model

    @functools.cache
    def calibrated() -> SampleCNN:
        print(f"estimating the random encoder's BatchNorm statistics on {len(pick)} training crops", flush=True)
        return calibrate_batchnorm(model, train, tracks[pick], starts[pick], cfg.finetuner_batch_size, device)

    note = f"BatchNorm statistics from {len(pick)} training crops"
    return Encoder(
        calibrated,
        f"{encoder.id}-bn{len(pick)}-{data}",
        f"{encoder.label[:-1]}, {note})",
        {**encoder.info, "batchnorm": note},
    )


def check_config(cfg: Namespace) -> None:
    if cfg.finetuner_protocol not in PROTOCOLS:
        raise ConfigError(f"--finetuner_protocol {cfg.finetuner_protocol!r}: expected clmr or chunks")
    if cfg.audio_length != SampleCNN.receptive_field():
        raise ConfigError(
            f"--audio_length {cfg.audio_length}: SampleCNN encodes crops of exactly "
            f"{SampleCNN.receptive_field()} samples"
        )
    if cfg.finetuner_batch_size < 1:
        raise ConfigError(f"--finetuner_batch_size {cfg.finetuner_batch_size}: expected a positive number")
    if cfg.checkpoint_path and cfg.checkpoint_path != RANDOM:
        if Path(cfg.checkpoint_path).resolve().parent == checkpoint_dir(cfg, STAGE).resolve():
            raise ConfigError(
                f"--run_name {run_name(cfg, STAGE)!r}: the probe's head checkpoints would overwrite "
                f"the encoder's in {checkpoint_dir(cfg, STAGE)}; pass another --run_name "
                f"(e.g. {run_name(cfg, STAGE)}_linear)"
            )


def check_outputs(cfg: Namespace) -> None:
    """The run folder and the representation cache take files: a read-only or full --log_dir is refused
    before any representation is extracted, not when results.json is written."""
    check_writable(Path(cfg.log_dir) / run_name(cfg, STAGE), "--log_dir")
    check_writable(cache_dir(cfg), "--log_dir")


def check_finite_representations(reps: Representations, encoder: Encoder, where: str) -> None:
    """The audio is finite (the readers refuse NaN), so NaN or infinite representations come from the
    encoder's weights: stop before a head is trained on them and a NaN score is written."""
    bad = int((~torch.isfinite(reps.features)).any(dim=1).sum())
    if bad:
        source = shown(encoder.info.get("checkpoint_path", encoder.label))
        raise CheckpointError(
            f"--checkpoint_path {source}: the encoder gave NaN or infinite representations for "
            f"{bad} of {len(reps)} crops of {where}; its weights are damaged (a run whose loss "
            f"became NaN?)"
        )


def labelled_subsets(cfg: Namespace) -> dict[str, AudioDataset]:
    subsets = {s: dataset_from_config(cfg, s) for s in ("train", "valid", "test")}
    for line in layout_lines(*subsets.values()):
        print(line)
    if not subsets["train"].labelled:
        raise DatasetError(
            f"--dataset {cfg.dataset} has no labels: linear evaluation needs a labelled dataset "
            f"(synthetic, magnatagatune, msd, gtzan, librispeech)"
        )
    return subsets


def cache_dir(cfg: Namespace) -> Path:
    return Path(cfg.log_dir) / ".cache" / "representations"


def _labels(dataset: AudioDataset, reps: Representations) -> torch.Tensor:
    return torch.as_tensor(dataset.targets)[reps.track]


def _loader(dataset: AudioDataset, reps: Representations, batch_size: int, shuffle: bool) -> DataLoader:
    return DataLoader(TensorDataset(reps.features, _labels(dataset, reps)), batch_size=batch_size, shuffle=shuffle)


def train_head(
    cfg: Namespace, module: LinearEvaluation, subsets: dict, train: Representations, valid: Representations
) -> tuple[TensorBoardLogger, dict]:
    """Fit the head with early stopping on the valid loss, then keep its best (lowest valid loss) weights."""
    callbacks = checkpoint_callbacks(cfg, STAGE) + [early_stopping(cfg)]
    # The head is small: one process on one device, whatever --devices says for pre-training.
    trainer = build_trainer(
        cfg,
        STAGE,
        callbacks,
        max_epochs=cfg.finetuner_max_epochs,
        devices=1,
        num_nodes=1,
        strategy="auto",
        sync_batchnorm=False,
        enable_progress_bar=False,
    )
    print(
        f"training the {'MLP' if cfg.finetuner_mlp else 'linear'} head on {len(train)} crops, validating on "
        f"{len(valid)}: at most {cfg.finetuner_max_epochs} epochs, early stopping after "
        f"{cfg.early_stopping_patience} without a lower valid loss",
        flush=True,
    )
    trainer.fit(
        module,
        _loader(subsets["train"], train, cfg.finetuner_batch_size, shuffle=True),
        _loader(subsets["valid"], valid, cfg.finetuner_batch_size, shuffle=False),
    )
    best = callbacks[0].best_model_path
    if best and Path(best).is_file():
        module.model.load_state_dict(head_state_dict(best))
    score = callbacks[0].best_model_score
    return trainer.logger, {
        "trained": True,
        "epochs": trainer.current_epoch,
        "checkpoint": best or None,
        "best_valid_loss": float(score) if score is not None else None,
    }


def head_from_checkpoint(cfg: Namespace, module: LinearEvaluation) -> tuple[TensorBoardLogger, dict]:
    """The head of --finetuner_checkpoint_path instead of training one."""
    path = cfg.finetuner_checkpoint_path
    head = load_head(
        path, mlp=bool(cfg.finetuner_mlp), n_outputs=module.hparams.n_outputs, outputs_of=f" of --dataset {cfg.dataset}"
    )
    module.model.load_state_dict(head.state_dict())
    logger = TensorBoardLogger(save_dir=cfg.log_dir, name=run_name(cfg, STAGE), default_hp_metric=False)
    return logger, {"trained": False, "checkpoint": str(path), "sha256": file_sha256(path)}


@torch.no_grad()
def test_scores(module: LinearEvaluation, test: Representations, multilabel: bool) -> np.ndarray:
    """Track-level scores: the head's sigmoid/softmax outputs on every chunk, averaged per track."""
    module.eval()
    logits = torch.cat([module(h) for h in test.features.split(4096)]).cpu().numpy()
    return track_level_scores(probabilities(logits, multilabel), test.track.numpy(), test.n_tracks)


def run_probe(cfg: Namespace, encoder: Encoder) -> dict[str, Any]:
    """Linear evaluation of `encoder` on --dataset; writes the run's outputs and returns results.json's content."""
    check_config(cfg)
    check_outputs(cfg)
    began = time.perf_counter()
    subsets = labelled_subsets(cfg)
    train_set, test_set = subsets["train"], subsets["test"]
    multilabel, tags = train_set.multilabel, list(train_set.tag_names)
    device, mode = device_of(cfg), PROTOCOLS[cfg.finetuner_protocol]
    if encoder.info.get("format") == RANDOM:
        encoder = with_batchnorm_from(encoder, train_set, cfg, device)

    def reps(subset: str, how: str) -> Representations:
        extracted = representations(
            encoder.model,
            encoder.id,
            subsets[subset],
            how,
            seed=cfg.seed,
            batch_size=cfg.finetuner_batch_size,
            cache_dir=cache_dir(cfg),
            workers=cfg.workers,
            device=device,
        )
        check_finite_representations(extracted, encoder, f"{cfg.dataset}/{subset}")
        return extracted

    train, valid, test = reps("train", mode), reps("valid", mode), reps("test", "chunks")
    used = label_fraction_tracks(len(train_set), cfg.finetuner_label_fraction, cfg.seed)
    train = train.of_tracks(used)

    seed_everything(cfg.seed, workers=True)
    module = linear_module(cfg, len(tags), multilabel, tags)
    logger, head = (
        head_from_checkpoint(cfg, module)
        if cfg.finetuner_checkpoint_path
        else train_head(cfg, module, subsets, train, valid)
    )
    module.cpu()
    scores = test_scores(module, test, multilabel)
    labels = np.asarray(test_set.targets)
    metrics = track_metrics(labels, scores, tags, multilabel)

    run_dir = Path(cfg.log_dir) / run_name(cfg, STAGE)
    results = {
        "stage": "linear_evaluation",
        "created": datetime.datetime.now().isoformat(timespec="seconds"),
        "metrics": {k: metrics[k] for k in ("accuracy", "roc_auc", "pr_auc") if k in metrics},
        "metrics_ci": metric_cis(labels, scores, multilabel, cfg.bootstrap_resamples, cfg.seed),
        "bootstrap": bootstrap_info(cfg.bootstrap_resamples, cfg.seed),
        "tags_scored": metrics["tags_scored"],
        "per_tag": metrics["per_tag"],
        "skipped_tags": metrics["skipped_tags"],
        "encoder": {**encoder.info, "label": encoder.label},
        "head": {"type": "mlp" if cfg.finetuner_mlp else "linear", **head},
        "protocol": cfg.finetuner_protocol,
        "label_fraction": cfg.finetuner_label_fraction,
        "dataset": {
            "name": cfg.dataset,
            "dataset_dir": str(cfg.dataset_dir),
            "multilabel": multilabel,
            "tags": tags,
            "splits": {
                "train": {"tracks": len(train_set), "tracks_used": len(used), "crops": len(train)},
                "valid": {"tracks": len(subsets["valid"]), "crops": len(valid)},
                "test": {"tracks": len(test_set), "chunks": len(test), "padded_tracks": padded_tracks(test_set)},
            },
        },
        "representations": {
            s: {"cached": r.cached, "seconds": round(r.seconds, 2), "file": str(r.cache_path) if r.cache_path else None}
            for s, r in (("train", train), ("valid", valid), ("test", test))
        },
        "outputs": {
            "run_dir": str(run_dir),
            "results": str(run_dir / "results.json"),
            "per_tag_png": str(run_dir / "per_tag.png"),
            "test_scores": str(run_dir / TEST_SCORES),
            "tensorboard": logger.log_dir,
        },
        "seconds": 0.0,
        "config": vars(cfg),
    }
    write_outputs(results, logger, test, test_set, scores)
    save_track_scores(run_dir / TEST_SCORES, labels, scores)
    results["seconds"] = round(time.perf_counter() - began, 1)
    write_json(run_dir / "results.json", results)
    return results
