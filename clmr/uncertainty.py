"""The intervals of a linear evaluation's results (`clmr.intervals` on a probe's track scores), and the paired
comparison of two probes on the same test tracks (`linear_evaluation.py --compare_random 1`).

    results["metrics_ci"] = metric_cis(labels, scores, multilabel, resamples=1000, seed=42)
    results["comparison"] = compare_probes(pretrained, baseline)   # reads both runs' test_scores.npz
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from clmr.atomic import write_bytes
from clmr.intervals import CONFIDENCE, METRIC_NAMES, bootstrap_indices, metric_intervals, paired_difference, verdict

TEST_SCORES = "test_scores.npz"  # per run: the test tracks' labels and the probe's track-level scores


def bootstrap_info(resamples: int, seed: int) -> dict:
    """What results.json records of the bootstrap, enough to draw the same resamples again."""
    return {
        "resamples": int(resamples),
        "seed": int(seed),
        "confidence": CONFIDENCE,
        "method": "percentile interval of the macro metric over test tracks resampled with replacement",
    }


def metric_cis(labels: np.ndarray, scores: np.ndarray, multilabel: bool, resamples: int, seed: int) -> dict:
    """{"roc_auc": [lo, hi], ...}: the 95 % bootstrap interval of each macro metric (finite, or left out)."""
    draws = bootstrap_indices(len(labels), resamples, seed)
    return {k: [lo, hi] for k, (lo, hi) in metric_intervals(labels, scores, multilabel, draws).items()}


def save_track_scores(path: str | Path, labels: np.ndarray, scores: np.ndarray) -> None:
    """The test tracks' labels and scores, atomically, so that another run can be compared on the same tracks."""
    buffer = io.BytesIO()
    np.savez(buffer, labels=np.asarray(labels), scores=np.asarray(scores, dtype=np.float64))
    write_bytes(path, buffer.getbuffer())


def load_track_scores(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return data["labels"], data["scores"]


def compare_probes(pretrained: dict, baseline: dict) -> dict:
    """The paired difference pretrained - baseline of each macro metric on the same test tracks, with the interval
    from the same bootstrap resamples for both (those of `pretrained["bootstrap"]`), and a sentence for each."""
    labels, scores_a = load_track_scores(pretrained["outputs"]["test_scores"])
    labels_b, scores_b = load_track_scores(baseline["outputs"]["test_scores"])
    if labels.shape != labels_b.shape or not np.array_equal(labels, labels_b):
        raise ValueError("the two probes were tested on different tracks: no paired difference")
    boot = pretrained["bootstrap"]
    draws = bootstrap_indices(len(labels), boot["resamples"], boot["seed"])
    difference = paired_difference(labels, scores_a, scores_b, pretrained["dataset"]["multilabel"], draws)
    return {
        "baseline": baseline["outputs"]["results"],
        "bootstrap": boot,
        "difference": difference,
        "verdicts": {k: verdict(METRIC_NAMES[k], v, boot["confidence"]) for k, v in difference.items()},
    }


def interval_text(ci: list[float] | tuple[float, float], signed: bool = False) -> str:
    """[lo, hi] in percent: `[62.1, 71.3]`, or `[-4.2, +3.0]` for a difference."""
    form = "+.1f" if signed else ".1f"
    return f"[{100 * ci[0]:{form}}, {100 * ci[1]:{form}}]"


def bootstrap_note(results: dict) -> str:
    boot = results["bootstrap"]
    return (
        f"({boot['confidence']:.0%} intervals: bootstrap over the {results['dataset']['splits']['test']['tracks']} "
        f"test tracks, {boot['resamples']} resamples, seed {boot['seed']})"
    )


def comparison_lines(comparison: dict | None, keys: list[str]) -> list[str]:
    """Under the comparison table: how the paired intervals were drawn, and one verdict per metric."""
    if not comparison:
        return []
    boot = comparison["bootstrap"]
    return [
        "",
        f"Paired difference, pre-trained - random ({boot['confidence']:.0%} interval: both encoders scored on "
        f"the same {boot['resamples']} bootstrap resamples of the test tracks, seed {boot['seed']}):",
    ] + [f"  {comparison['verdicts'][k]}" for k in keys if k in comparison["verdicts"]]
