"""The bootstrap intervals of clmr/intervals.py: the resampled metrics are sklearn's, the interval holds the point
estimate and narrows with more tracks, the paired difference of an encoder with itself is exactly zero."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from clmr.evaluation import track_metrics
from clmr.intervals import (
    bootstrap_indices,
    metric_intervals,
    paired_difference,
    resample_counts,
    resampled_metrics,
    verdict,
    weighted_average_precision,
    weighted_roc_auc,
)


def tagged(n_tracks: int, n_tags: int = 11, signal: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot labels and scores that rank positives higher by `signal` (in noise of scale 1)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((n_tracks, n_tags)) < 0.3).astype(np.float32)
    labels[0], labels[1] = 1, 0  # every tag has both classes
    return labels, 1 / (1 + np.exp(-(signal * labels + rng.normal(size=labels.shape))))


@pytest.mark.parametrize("decimals", [1, 2, 6])  # 1 and 2: many tied scores
def test_resampled_roc_auc_and_average_precision_are_sklearns_on_the_drawn_tracks(decimals):
    rng = np.random.default_rng(decimals)
    for _ in range(50):
        n = int(rng.integers(3, 30))
        y, s = rng.random(n) < 0.4, np.round(rng.random(n), decimals)
        draw = rng.integers(0, n, size=(1, n))
        counts = resample_counts(draw, n)
        auc = weighted_roc_auc(y[:, None], s[:, None], counts)[0, 0]
        ap = weighted_average_precision(y[:, None], s[:, None], counts)[0, 0]
        drawn_y, drawn_s = y[draw[0]], s[draw[0]]
        if drawn_y.all() or not drawn_y.any():
            assert np.isnan(auc) and np.isnan(ap)  # one class in this resample: the tag is not scored
        else:
            assert auc == pytest.approx(roc_auc_score(drawn_y, drawn_s), abs=1e-12)
            assert ap == pytest.approx(average_precision_score(drawn_y, drawn_s), abs=1e-12)


def test_the_identity_resample_gives_the_point_estimate_of_the_linear_evaluation():
    labels, scores = tagged(36)
    labels[:, 3] = 0  # a tag without positives: left out of both
    point = track_metrics(labels, scores, [f"t{i}" for i in range(11)], multilabel=True)
    every_track = np.arange(36)[None, :]
    same = resampled_metrics(labels, scores, True, every_track)
    assert same["roc_auc"][0] == pytest.approx(point["roc_auc"], abs=1e-12)
    assert same["pr_auc"][0] == pytest.approx(point["pr_auc"], abs=1e-12)


def test_the_interval_contains_the_point_estimate_multilabel_and_single_label():
    labels, scores = tagged(72)
    point = track_metrics(labels, scores, [f"t{i}" for i in range(11)], multilabel=True)
    cis = metric_intervals(labels, scores, True, bootstrap_indices(72, 1000, seed=42))
    assert set(cis) == {"roc_auc", "pr_auc"}
    for key, (lo, hi) in cis.items():
        assert lo < point[key] < hi
    rng = np.random.default_rng(1)
    classes = rng.integers(0, 4, 60)
    probs = np.eye(4)[classes] * 0.6 + rng.random((60, 4))
    single = track_metrics(classes, probs, list("abcd"), multilabel=False)
    cis = metric_intervals(classes, probs, False, bootstrap_indices(60, 1000, seed=42))
    assert set(cis) == {"accuracy", "roc_auc", "pr_auc"}
    for key, (lo, hi) in cis.items():
        assert lo <= single[key] <= hi


def test_the_interval_narrows_with_more_tracks():
    widths = []
    for n in (36, 144, 576):
        labels, scores = tagged(n, seed=n)
        lo, hi = metric_intervals(labels, scores, True, bootstrap_indices(n, 1000, seed=42))["roc_auc"]
        widths.append(hi - lo)
    assert widths[0] > widths[1] > widths[2] > 0


def test_the_bootstrap_is_seeded():
    labels, scores = tagged(36)
    a = metric_intervals(labels, scores, True, bootstrap_indices(36, 200, seed=42))
    b = metric_intervals(labels, scores, True, bootstrap_indices(36, 200, seed=42))
    c = metric_intervals(labels, scores, True, bootstrap_indices(36, 200, seed=43))
    assert a == b and a != c


def test_a_rare_tag_missing_from_some_resamples_leaves_no_nan():
    labels, scores = tagged(36)
    labels[:, 0] = 0
    labels[5, 0] = 1  # one positive: absent from about a third of the resamples
    draws = bootstrap_indices(36, 500, seed=0)
    per_resample = resampled_metrics(labels, scores, True, draws)
    assert np.isfinite(per_resample["roc_auc"]).all() and np.isfinite(per_resample["pr_auc"]).all()
    assert all(np.isfinite(v).all() for v in metric_intervals(labels, scores, True, draws).values())


def test_the_paired_difference_of_an_encoder_with_itself_is_exactly_zero():
    labels, scores = tagged(36)
    diff = paired_difference(labels, scores, scores.copy(), True, bootstrap_indices(36, 1000, seed=42))
    for entry in diff.values():
        assert entry["difference"] == 0.0 and entry["ci"] == [0.0, 0.0] and not entry["excludes_zero"]
    assert "includes zero" in verdict("ROC-AUC", diff["roc_auc"])


def test_a_clearly_better_encoder_has_a_difference_whose_interval_excludes_zero():
    labels, good = tagged(72, signal=3.0)
    _, noise = tagged(72, signal=0.0, seed=9)
    diff = paired_difference(labels, good, noise, True, bootstrap_indices(72, 1000, seed=42))
    assert diff["roc_auc"]["excludes_zero"] and diff["roc_auc"]["ci"][0] > 0
    assert "excludes zero; the pre-trained encoder is better" in verdict("ROC-AUC", diff["roc_auc"])
    reverse = paired_difference(labels, noise, good, True, bootstrap_indices(72, 1000, seed=42))
    assert reverse["roc_auc"]["ci"][1] < 0 and "the random encoder is better" in verdict("ROC-AUC", reverse["roc_auc"])


def test_the_paired_interval_is_narrower_than_either_encoders_own():
    """The same resamples for both: what the encoders share (which tracks are hard) cancels out."""
    labels, a = tagged(72, signal=1.5)
    b = a + np.random.default_rng(5).normal(scale=0.05, size=a.shape)
    draws = bootstrap_indices(72, 1000, seed=42)
    own = metric_intervals(labels, a, True, draws)["roc_auc"]
    paired = paired_difference(labels, a, b, True, draws)["roc_auc"]["ci"]
    assert paired[1] - paired[0] < (own[1] - own[0]) / 2


def test_bad_bootstrap_sizes_are_refused():
    with pytest.raises(ValueError):
        bootstrap_indices(0, 10)
    with pytest.raises(ValueError):
        bootstrap_indices(10, 0)
