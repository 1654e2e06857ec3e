"""Uncertainty of track-level scores: a seeded bootstrap over test tracks, as pure functions on arrays.

    draws = bootstrap_indices(n_tracks=36, resamples=1000, seed=42)
    ci = metric_intervals(labels, scores, multilabel=True, draws=draws)       # {"roc_auc": (lo, hi), ...}
    diff = paired_difference(labels, scores_a, scores_b, multilabel=True, draws=draws)

Each resample draws as many test tracks as there are, with replacement, and recomputes the macro
metric on them; the 95 % interval is the 2.5th and 97.5th percentile of the resampled metric. A tag
whose resampled tracks are all positive (or all negative) has no ROC-AUC in that resample and is left
out of that resample's macro average, as the point estimate leaves out such a tag (a resample in which
no tag can be scored is dropped). The paired difference scores both encoders on the SAME resamples,
so what the two share (which tracks happen to be hard) cancels out of the difference.
"""

from __future__ import annotations

import warnings

import numpy as np

CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 1000  # config key bootstrap_resamples
CHUNK_ELEMENTS = 1 << 22  # (resample, tag, track) entries computed at once: about 32 MB per float64 array
METRIC_NAMES = {"roc_auc": "ROC-AUC", "pr_auc": "PR-AUC", "accuracy": "accuracy"}


def bootstrap_indices(n_tracks: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, n_tracks) track indices drawn with replacement from a generator seeded with `seed`."""
    if n_tracks < 1 or resamples < 1:
        raise ValueError(f"a bootstrap needs at least one track and one resample, got {n_tracks} and {resamples}")
    return np.random.default_rng(seed).integers(0, n_tracks, size=(resamples, n_tracks))


def resample_counts(draws: np.ndarray, n_tracks: int) -> np.ndarray:
    """How often each track is drawn in each resample: (resamples, n_tracks) indices -> (resamples, n_tracks) counts."""
    draws = np.asarray(draws, dtype=np.int64)
    offsets = draws + n_tracks * np.arange(draws.shape[0])[:, None]
    return np.bincount(offsets.ravel(), minlength=draws.shape[0] * n_tracks).reshape(draws.shape[0], n_tracks)


def _sorted_by_score(y_true: np.ndarray, y_score: np.ndarray, counts: np.ndarray, descending: bool):
    """Per tag, the tracks in score order: labels (K, T), weights (R, K, T), and where each run of tied scores
    starts and ends (K, T)."""
    y = (np.asarray(y_true) > 0.5).T  # (K, T)
    s = np.asarray(y_score, dtype=np.float64).T
    order = np.argsort(-s if descending else s, axis=1, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=1)
    y_sorted = np.take_along_axis(y, order, axis=1)
    w = counts[:, order].astype(np.float64)  # (R, K, T)
    first = np.ones(s_sorted.shape, dtype=bool)
    first[:, 1:] = s_sorted[:, 1:] != s_sorted[:, :-1]
    last = np.ones(s_sorted.shape, dtype=bool)
    last[:, :-1] = first[:, 1:]
    return y_sorted, w, first, last


def _run_totals(values: np.ndarray, first: np.ndarray, last: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative sums of `values` (..., T) along T before each position's run of ties, and within its run."""
    cum = np.cumsum(values, axis=-1)
    before = cum - values
    if first.all():  # no tied scores (the usual case of a probe's probabilities): every run is one track
        return before, values
    T = values.shape[-1]
    start = np.maximum.accumulate(np.where(first, np.arange(T), 0), axis=-1)  # (K, T)
    end = np.minimum.accumulate(np.where(last, np.arange(T), T - 1)[..., ::-1], axis=-1)[..., ::-1]
    start = np.broadcast_to(start, values.shape)
    end = np.broadcast_to(end, values.shape)
    run_before = np.take_along_axis(before, start, axis=-1)
    run_total = np.take_along_axis(cum, end, axis=-1) - run_before
    return run_before, run_total


def weighted_roc_auc(y_true: np.ndarray, y_score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC-AUC of each tag in each resample, the resample given as a count per track: (T, K), (T, K), (R, T) ->
    (R, K); ties count one half; NaN where a resample holds one class of a tag. With every count 1 it is
    sklearn's roc_auc_score."""
    y, w, first, last = _sorted_by_score(y_true, y_score, counts, descending=False)
    neg = w * ~y
    pos = w * y
    neg_before, neg_tied = _run_totals(neg, first, last)
    n_pos, n_neg = pos.sum(axis=-1), neg.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos * (neg_before + 0.5 * neg_tied)).sum(axis=-1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def weighted_average_precision(y_true: np.ndarray, y_score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average precision (sklearn's: one threshold per distinct score) of each tag in each resample, as
    `weighted_roc_auc`: (T, K), (T, K), (R, T) -> (R, K)."""
    y, w, first, last = _sorted_by_score(y_true, y_score, counts, descending=True)
    pos = w * y
    tp, seen = np.cumsum(pos, axis=-1), np.cumsum(w, axis=-1)
    _, gained = _run_totals(pos, first, last)  # the positives of the run of ties that ends at each threshold
    n_pos, n_neg = pos.sum(axis=-1), (w * ~y).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(seen > 0, tp / seen, 0.0)
        ap = np.where(last, gained * precision, 0.0).sum(axis=-1) / n_pos
    return np.where((n_pos > 0) & (n_neg > 0), ap, np.nan)


def one_hot_labels(labels: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(labels), n_classes), dtype=np.float64)
    out[np.arange(len(labels)), np.asarray(labels, dtype=np.int64)] = 1
    return out


def resampled_metrics(
    labels: np.ndarray, scores: np.ndarray, multilabel: bool, draws: np.ndarray
) -> dict[str, np.ndarray]:
    """Each macro metric on each resample `draws[r]` (track indices): {"roc_auc": (resamples,), ...}.

    A tag with one class in a resample is left out of that resample's macro average; a resample with no
    scorable tag is NaN (dropped by `percentile_interval`). Single-label data also gets `accuracy`.
    Resamples are processed in chunks of about CHUNK_ELEMENTS (resample, tag, track) entries, so that
    MagnaTagATune's 5,329 test tracks x 50 tags stay within a few hundred MB.
    """
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    draws = np.asarray(draws, dtype=np.int64)
    targets = labels.astype(np.float64) if multilabel else one_hot_labels(labels, scores.shape[1])
    out: dict[str, list[np.ndarray]] = {"roc_auc": [], "pr_auc": []}
    if not multilabel:
        out["accuracy"] = [(scores.argmax(axis=1) == labels)[draws].mean(axis=1)]
    step = max(1, CHUNK_ELEMENTS // max(targets.size, 1))
    for first in range(0, len(draws), step):
        counts = resample_counts(draws[first : first + step], len(labels))
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # nanmean of a resample with no scorable tag: NaN
            out["roc_auc"].append(np.nanmean(weighted_roc_auc(targets, scores, counts), axis=1))
            out["pr_auc"].append(np.nanmean(weighted_average_precision(targets, scores, counts), axis=1))
    return {k: np.concatenate(v) for k, v in out.items()}


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The central `confidence` percentile interval of the finite values; None if none is finite."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return None
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(values, [tail, 100 - tail])
    return float(lo), float(hi)


def metric_intervals(
    labels: np.ndarray, scores: np.ndarray, multilabel: bool, draws: np.ndarray, confidence: float = CONFIDENCE
) -> dict[str, tuple[float, float]]:
    """The bootstrap percentile interval of each macro metric (ROC-AUC, PR-AUC; accuracy for single-label data).

    A metric that no resample could score is left out (never NaN)."""
    out = {}
    for key, values in resampled_metrics(labels, scores, multilabel, draws).items():
        interval = percentile_interval(values, confidence)
        if interval is not None:
            out[key] = interval
    return out


def paired_difference(
    labels: np.ndarray,
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    multilabel: bool,
    draws: np.ndarray,
    confidence: float = CONFIDENCE,
) -> dict[str, dict]:
    """Metric of encoder A minus encoder B on the same test tracks, with a bootstrap interval from the SAME
    resamples for both: {"roc_auc": {"difference": d, "ci": [lo, hi], "excludes_zero": bool}, ...}.

    `difference` is the point estimate from all tracks (the tags scored as in `clmr.evaluation`).
    """
    everything = np.arange(len(labels))[None, :]
    point_a = resampled_metrics(labels, scores_a, multilabel, everything)
    point_b = resampled_metrics(labels, scores_b, multilabel, everything)
    boot_a = resampled_metrics(labels, scores_a, multilabel, draws)
    boot_b = resampled_metrics(labels, scores_b, multilabel, draws)
    out = {}
    for key in boot_a:
        point = float(point_a[key][0] - point_b[key][0])
        interval = percentile_interval(boot_a[key] - boot_b[key], confidence)
        if interval is None or not np.isfinite(point):
            continue
        out[key] = {
            "difference": point,
            "ci": [interval[0], interval[1]],
            "excludes_zero": bool(interval[0] > 0 or interval[1] < 0),
        }
    return out


def verdict(
    name: str,
    entry: dict,
    confidence: float = CONFIDENCE,
    a: str = "the pre-trained encoder",
    b: str = "the random encoder",
) -> str:
    """One sentence: the difference, its interval, and whether the interval excludes zero."""
    lo, hi = entry["ci"]
    span = f"{100 * entry['difference']:+.1f} points, {confidence:.0%} interval [{100 * lo:+.1f}, {100 * hi:+.1f}]"
    if lo > 0:
        return f"{name} {span}: the interval excludes zero; {a} is better on these tracks."
    if hi < 0:
        return f"{name} {span}: the interval excludes zero; {b} is better on these tracks."
    return f"{name} {span}: the interval includes zero; these test tracks cannot tell {a} from {b}."
