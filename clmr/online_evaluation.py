"""Online evaluation during pre-training: is the encoder getting better on a labelled task?

Every `online_eval_every_n_epochs` epochs (and once before the first step: the random-init point),
`OnlineEvaluation` embeds one fixed crop of every valid track and of a fixed subset of training tracks
with the current encoder (eval mode, no gradients), classifies the valid tracks from the training ones
with a cosine kNN (`knn`, as solo-learn's) or a logistic-regression probe (`linear`), scores them with
the linear evaluation's metric functions (clmr.evaluation) and logs `Online/ROC-AUC`, `Online/PR-AUC`
(and `Online/accuracy` for single-label data) to TensorBoard at the global step. Training is not
disturbed: every module's train/eval mode, the BatchNorm buffers and the torch (CPU and CUDA), numpy
and Python random streams are restored afterwards, so a run trains to the same weights with it or without.

    features = embed_crops(encoder, dataset, tracks, starts, batch_size=64)
    scores = knn_scores(train_features, train_targets, valid_features, k=20)
    metrics = online_metrics(valid_targets, scores, tags, multilabel)   # {"roc_auc": ..., "pr_auc": ...}
"""

from __future__ import annotations

import contextlib
import copy
import logging
import random
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from torch import nn

from clmr.datasets.dataset import AudioDataset
from clmr.evaluation import one_hot, track_metrics
from clmr.intervals import METRIC_NAMES
from clmr.representations import calibrate_batchnorm, crop_plan, encode

log = logging.getLogger(__name__)

METHODS = ("knn", "linear", "none")
KNN_TEMPERATURE = 0.07  # solo-learn's WeightedKNNClassifier: votes weighted by exp(cosine similarity / T)
LINEAR_C = 1.0  # inverse L2 strength of the logistic-regression probe (sklearn's default)
LINEAR_MAX_ITER = 200
SUBSET_SEED_OFFSET = 7919  # the fixed training subset is drawn from seed + this, apart from other seeded draws


# -- pure functions ---------------------------------------------------------------------------------
def fixed_crops(dataset: AudioDataset, n_tracks: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One seeded crop of each of `n_tracks` tracks (a seeded subset, sorted; all tracks if n_tracks covers them)."""
    tracks, starts = crop_plan(dataset, "crop", seed)  # one crop per track, in track order
    if n_tracks < len(tracks):
        pick = np.sort(np.random.default_rng(seed + SUBSET_SEED_OFFSET).permutation(len(tracks))[:n_tracks])
        tracks, starts = tracks[pick], starts[pick]
    return tracks, starts


def embed_crops(
    encoder: nn.Module,
    dataset: AudioDataset,
    tracks: np.ndarray,
    starts: np.ndarray,
    batch_size: int,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """The encoder's (n, 512) features of the crops (tracks[i], starts[i]): eval mode, no gradients.

    The encoder is left in eval mode; `OnlineEvaluation` restores the mode it had."""
    return encode(encoder, dataset, tracks, starts, batch_size, device=device)


def targets_of(dataset: AudioDataset, tracks: np.ndarray) -> np.ndarray:
    """Labels of `tracks`: (n, tags) multi-hot, or (n,) class ids for single-label data."""
    return np.asarray(dataset.targets)[tracks]


def _multi_hot(targets: np.ndarray, n_classes: int, multilabel: bool) -> np.ndarray:
    return np.asarray(targets, dtype=np.float64) if multilabel else one_hot(targets, n_classes).astype(np.float64)


def knn_scores(
    train_features: torch.Tensor,
    train_targets: np.ndarray,
    query_features: torch.Tensor,
    k: int,
    n_classes: int,
    multilabel: bool,
    temperature: float = KNN_TEMPERATURE,
) -> np.ndarray:
    """Cosine kNN: each query's (n_classes,) scores are its k nearest training examples' labels, weighted by
    exp(similarity / temperature) and normalised to sum to one over the neighbours (per tag: the weighted
    fraction of neighbours that have it; single-label: the weighted vote of each class)."""
    train = nn.functional.normalize(train_features.double(), dim=1)
    query = nn.functional.normalize(query_features.double(), dim=1)
    k = min(k, train.shape[0])
    similarity, neighbours = (query @ train.T).topk(k, dim=1)
    weights = (similarity / temperature).exp()
    labels = torch.from_numpy(_multi_hot(train_targets, n_classes, multilabel))[neighbours]  # (queries, k, C)
    scores = (weights[:, :, None] * labels).sum(dim=1) / weights.sum(dim=1, keepdim=True)
    return scores.numpy()


def linear_scores(
    train_features: torch.Tensor,
    train_targets: np.ndarray,
    query_features: torch.Tensor,
    n_classes: int,
    multilabel: bool,
) -> np.ndarray:
    """A logistic-regression probe (sklearn, standardised features) fitted on the training features: per-tag
    probabilities (multi-label: one binary probe per tag) or class probabilities. A tag or class absent from
    the training subset scores its training frequency (0 or 1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train_x, query_x = train_features.double().numpy(), query_features.double().numpy()
    scaler = StandardScaler().fit(train_x)
    x_train, x_query = scaler.transform(train_x), scaler.transform(query_x)
    targets = _multi_hot(train_targets, n_classes, multilabel)
    scores = np.zeros((len(x_query), n_classes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of a probe refitted every few epochs
        if multilabel:
            for c in range(n_classes):
                y = targets[:, c] > 0.5
                if y.all() or not y.any():
                    scores[:, c] = float(y.mean())
                    continue
                clf = LogisticRegression(C=LINEAR_C, max_iter=LINEAR_MAX_ITER).fit(x_train, y)
                scores[:, c] = clf.predict_proba(x_query)[:, 1]
        else:
            labels = np.asarray(train_targets, dtype=np.int64)
            if len(np.unique(labels)) == 1:
                scores[:, labels[0]] = 1.0
            else:
                clf = LogisticRegression(C=LINEAR_C, max_iter=LINEAR_MAX_ITER).fit(x_train, labels)
                scores[:, clf.classes_] = clf.predict_proba(x_query)
    return scores


def online_metrics(targets: np.ndarray, scores: np.ndarray, tag_names: list[str], multilabel: bool) -> dict[str, float]:
    """The linear evaluation's macro metrics of the scores (ROC-AUC, PR-AUC; accuracy for single-label data),
    leaving out any that cannot be computed (no tag with both classes among the tracks): never NaN."""
    metrics = track_metrics(targets, scores, tag_names, multilabel)
    return {k: float(metrics[k]) for k in ("accuracy", "roc_auc", "pr_auc") if k in metrics and np.isfinite(metrics[k])}


# -- not disturbing training --------------------------------------------------------------------------
@dataclass
class RandomState:
    """Every random stream training draws from: torch (CPU, and CUDA when initialised), numpy, Python."""

    torch_cpu: torch.Tensor
    torch_cuda: list[torch.Tensor] | None
    numpy: tuple
    python: tuple

    @classmethod
    def capture(cls) -> RandomState:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        return cls(torch.get_rng_state(), cuda, np.random.get_state(), random.getstate())

    def restore(self) -> None:
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda is not None:
            torch.cuda.set_rng_state_all(self.torch_cuda)
        np.random.set_state(self.numpy)
        random.setstate(self.python)


@contextlib.contextmanager
def undisturbed(module: nn.Module) -> Iterator[None]:
    """Whatever runs inside leaves `module` as it was: each submodule's train/eval mode, its buffers (BatchNorm
    statistics) and every random stream; and computes no gradients."""
    state = RandomState.capture()
    modes = [(m, m.training) for m in module.modules()]
    buffers = {name: b.detach().clone() for name, b in module.named_buffers()}
    try:
        with torch.no_grad():
            yield
    finally:
        for name, b in module.named_buffers():
            b.copy_(buffers[name])
        for m, mode in modes:
            m.training = mode
        state.restore()


# -- the callback -------------------------------------------------------------------------------------
@dataclass
class OnlineSplit:
    """A dataset's fixed crops for the online evaluation: one per track of a (sub)set of its tracks."""

    dataset: AudioDataset
    tracks: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, dataset: AudioDataset, n_tracks: int, seed: int) -> OnlineSplit:
        return cls(dataset, *fixed_crops(dataset, n_tracks, seed))

    @property
    def targets(self) -> np.ndarray:
        return targets_of(self.dataset, self.tracks)


def evaluate_encoder(
    encoder: nn.Module,
    train: OnlineSplit,
    valid: OnlineSplit,
    method: str = "knn",
    k: int = 10,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    calibrate: bool = False,
) -> dict[str, float]:
    """The online metrics of `encoder`: its valid crops classified from its training crops (kNN or linear).

    `calibrate`: first give a copy of the encoder BatchNorm statistics of the training crops (a random
    encoder). The encoder is left in eval mode; wrap the call in `undisturbed` to leave training as it was."""
    if calibrate:
        encoder = calibrate_batchnorm(
            copy.deepcopy(encoder), train.dataset, train.tracks, train.starts, batch_size, device
        )
    with torch.no_grad():
        feats = [embed_crops(encoder, s.dataset, s.tracks, s.starts, batch_size, device) for s in (train, valid)]
    if not all(torch.isfinite(f).all() for f in feats):  # NaN weights: the training guards stop the run, not us
        log.warning("online evaluation skipped: the encoder's features are NaN or infinite")
        return {}
    dataset = valid.dataset
    n_classes, multilabel = len(dataset.tag_names), dataset.multilabel
    if method == "knn":
        scores = knn_scores(feats[0], train.targets, feats[1], k, n_classes, multilabel)
    elif method == "linear":
        scores = linear_scores(feats[0], train.targets, feats[1], n_classes, multilabel)
    else:
        raise ValueError(f"online evaluation method {method!r}: expected knn or linear")
    return online_metrics(valid.targets, scores, list(dataset.tag_names), multilabel)


class OnlineEvaluation(Callback):
    """Logs `Online/<metric>` every `every_n_epochs` epochs and before the first step; see the module docstring.

    `encoder_of(pl_module)` is the encoder to evaluate (ContrastiveLearning's: `pl_module.model.encoder`).
    At step 0 a copy of the random encoder gets BatchNorm statistics of the training crops first (as the
    linear evaluation's random baseline: at its initial statistics its output hardly depends on its input).
    """

    def __init__(
        self,
        train: OnlineSplit,
        valid: OnlineSplit,
        method: str = "knn",
        every_n_epochs: int = 1,
        k: int = 10,
        batch_size: int = 64,
        encoder_of: Callable[[LightningModule], nn.Module] = lambda m: m.model.encoder,
    ):
        if method not in METHODS[:-1]:
            raise ValueError(f"online evaluation method {method!r}: expected knn or linear")
        self.train, self.valid, self.method = train, valid, method
        self.every_n_epochs, self.k, self.batch_size, self.encoder_of = every_n_epochs, k, batch_size, encoder_of
        self.history: list[tuple[int, dict[str, float]]] = []  # (global step, metrics) of every evaluation
        self.seconds: list[float] = []
        self.epoch_seconds: list[float] = []
        self._epoch_began: float | None = None
        self._at_step_zero = 0  # 1 once the random-init point was evaluated

    def describe(self) -> str:
        return (
            f"online evaluation: {self.method} on {self.valid.dataset.name}/valid ({len(self.valid.tracks)} "
            f"tracks) against {len(self.train.tracks)} training tracks, one crop each"
        )

    def evaluate(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """Embed, classify, score and log now; returns the metrics."""
        began = time.perf_counter()
        with undisturbed(pl_module), trainer.precision_plugin.forward_context():
            metrics = evaluate_encoder(
                self.encoder_of(pl_module),
                self.train,
                self.valid,
                self.method,
                self.k,
                self.batch_size,
                pl_module.device,
                calibrate=trainer.global_step == 0,
            )
        self.history.append((trainer.global_step, metrics))
        if trainer.logger is not None and metrics:
            trainer.logger.log_metrics(
                {f"Online/{METRIC_NAMES[k]}": v for k, v in metrics.items()}, step=trainer.global_step
            )
        self.seconds.append(time.perf_counter() - began)
        return metrics

    # -- when --------------------------------------------------------------------------------------
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero:
            print(self.describe(), flush=True)
            if trainer.global_step == 0:  # not after a resume: the random-init point
                self.evaluate(trainer, pl_module)
                self._at_step_zero = 1

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._epoch_began = time.perf_counter()

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        if self._epoch_began is not None:
            self.epoch_seconds.append(time.perf_counter() - self._epoch_began)  # training and validation
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.evaluate(trainer, pl_module)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero and self.epoch_seconds and len(self.seconds) > self._at_step_zero:
            print(cost_line(self.seconds[self._at_step_zero :], self.epoch_seconds), flush=True)


def cost_line(eval_seconds: list[float], epoch_seconds: list[float]) -> str:
    """The cost of an online evaluation (the median, not counting the random-init point) in seconds and as a
    share of the median training epoch (training and validation steps)."""
    each, epoch = float(np.median(eval_seconds)), float(np.median(epoch_seconds))
    return (
        f"online evaluation: {each:.1f} s per evaluation (median of {len(eval_seconds)}), "
        f"{100 * each / epoch:.1f} % of a pre-training epoch ({epoch:.1f} s, median of {len(epoch_seconds)})"
    )
