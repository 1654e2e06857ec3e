"""Scores of a probe, as pure functions on arrays: track-level averaging, tagging metrics, accuracy.

A test track is cut into consecutive non-overlapping chunks (`clmr.chunking.chunk_starts`); the head
scores every chunk, and the track's score is the mean of its chunks' sigmoid (multi-label) or softmax
(single-label) outputs.
"""

from __future__ import annotations

import warnings

import numpy as np


def probabilities(logits: np.ndarray, multilabel: bool) -> np.ndarray:
    """Sigmoid of each output (multi-label) or softmax over the outputs (single-label)."""
    logits = np.asarray(logits, dtype=np.float64)
    if multilabel:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def track_level_scores(chunk_scores: np.ndarray, track_index: np.ndarray, n_tracks: int | None = None) -> np.ndarray:
    """The mean of the chunk scores of each track: (chunks, C) and (chunks,) track ids -> (tracks, C)."""
    chunk_scores = np.asarray(chunk_scores, dtype=np.float64)
    track_index = np.asarray(track_index, dtype=np.int64)
    if chunk_scores.shape[0] != track_index.shape[0]:
        raise ValueError(f"{chunk_scores.shape[0]} chunk scores but {track_index.shape[0]} track ids")
    n_tracks = int(track_index.max()) + 1 if n_tracks is None else n_tracks
    counts = np.bincount(track_index, minlength=n_tracks)
    if (counts == 0).any():
        raise ValueError(f"track {int(np.argmin(counts))} has no chunk")
    sums = np.zeros((n_tracks, chunk_scores.shape[1]))
    np.add.at(sums, track_index, chunk_scores)
    return sums / counts[:, None]


def tagging_metrics(y_true: np.ndarray, y_score: np.ndarray, tag_names: list[str]) -> dict:
    """Macro ROC-AUC and PR-AUC (average precision) over tags, and both per tag.

    A tag without a positive (or without a negative) example in `y_true` has no ROC-AUC: it is
    left out of the macro averages and listed under `skipped_tags` with the reason.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score  # heavy: imported when metrics are asked for

    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape or y_true.ndim != 2 or y_true.shape[1] != len(tag_names):
        raise ValueError(
            f"expected labels and scores of shape (tracks, {len(tag_names)} tags), "
            f"got {y_true.shape} and {y_score.shape}"
        )
    per_tag: dict[str, dict] = {}
    skipped: list[dict] = []
    for k, tag in enumerate(tag_names):
        positives = int((y_true[:, k] > 0.5).sum())
        if positives == 0 or positives == len(y_true):
            reason = "no positive example in the test set" if positives == 0 else "no negative example in the test set"
            skipped.append({"tag": tag, "reason": reason})
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per_tag[tag] = {
                "roc_auc": float(roc_auc_score(y_true[:, k] > 0.5, y_score[:, k])),
                "pr_auc": float(average_precision_score(y_true[:, k] > 0.5, y_score[:, k])),
                "positives": positives,
            }
    scored = list(per_tag.values())
    return {
        "roc_auc": float(np.mean([t["roc_auc"] for t in scored])) if scored else float("nan"),
        "pr_auc": float(np.mean([t["pr_auc"] for t in scored])) if scored else float("nan"),
        "tags_scored": len(scored),
        "per_tag": per_tag,
        "skipped_tags": skipped,
    }


def accuracy(labels: np.ndarray, scores: np.ndarray) -> float:
    """The fraction of tracks whose highest-scoring class is their label."""
    labels = np.asarray(labels)
    return float((np.asarray(scores).argmax(axis=1) == labels).mean())


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(labels), n_classes), dtype=np.float32)
    out[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)] = 1
    return out


def track_metrics(labels: np.ndarray, scores: np.ndarray, tag_names: list[str], multilabel: bool) -> dict:
    """Tagging metrics; for single-label data also the accuracy (AUCs are then one class against the rest)."""
    if multilabel:
        return tagging_metrics(labels, scores, tag_names)
    metrics = tagging_metrics(one_hot(labels, len(tag_names)), scores, tag_names)
    return {"accuracy": accuracy(labels, scores), **metrics}


def label_fraction_tracks(n_tracks: int, fraction: float, seed: int) -> np.ndarray:
    """The (sorted) indices of a seeded random `fraction` of `n_tracks` training tracks; at least one."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction {fraction}: expected a fraction in (0, 1]")
    if fraction == 1:
        return np.arange(n_tracks)
    n = min(max(int(round(fraction * n_tracks)), 1), n_tracks)
    return np.sort(np.random.default_rng(seed).choice(n_tracks, size=n, replace=False))
