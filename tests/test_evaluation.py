"""Track-level scores and metrics on hand-made examples (clmr/evaluation.py); the label fraction."""

from __future__ import annotations

import numpy as np
import pytest

from clmr.evaluation import (
    accuracy,
    label_fraction_tracks,
    probabilities,
    tagging_metrics,
    track_level_scores,
    track_metrics,
)

L = 59049


# -- track-level scores, by hand ----------------------------------------------------------------
def test_sigmoid_for_tags_and_softmax_for_classes():
    logits = np.array([[0.0, np.log(3.0)]])
    assert np.allclose(probabilities(logits, multilabel=True), [[0.5, 0.75]])
    assert np.allclose(probabilities(logits, multilabel=False), [[0.25, 0.75]])


def test_track_level_scores_average_the_chunks_of_each_track():
    scores = np.array([[0.2, 0.9], [0.4, 0.7], [1.0, 0.0], [0.1, 0.1], [0.2, 0.2], [0.6, 0.3]])
    track = np.array([0, 0, 1, 2, 2, 2])
    assert np.allclose(track_level_scores(scores, track), [[0.3, 0.8], [1.0, 0.0], [0.3, 0.2]])


def test_a_track_without_chunks_is_an_error():
    with pytest.raises(ValueError, match="track 1 has no chunk"):
        track_level_scores(np.ones((2, 1)), np.array([0, 2]))


def test_hand_made_tagging_example_gives_the_hand_computed_scores():
    # Three tracks with 2, 1 and 2 chunks; chunk logits chosen so that the sigmoids are round numbers.
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    chunk_probs = np.array(
        [
            [0.9, 0.2, 0.5],  # track 0
            [0.7, 0.4, 0.5],  # track 0
            [0.2, 0.6, 0.5],  # track 1
            [0.5, 0.1, 0.5],  # track 2
            [0.3, 0.3, 0.5],  # track 2
        ]
    )
    track = np.array([0, 0, 1, 2, 2])
    scores = track_level_scores(probabilities(logit(chunk_probs), multilabel=True), track)
    assert np.allclose(scores, [[0.8, 0.3, 0.5], [0.2, 0.6, 0.5], [0.4, 0.2, 0.5]])
    # Track 3 has one chunk only: its score is that chunk's.
    y_true = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
    y_score = np.vstack([scores, [[0.5, 0.4, 0.5]]])
    metrics = tagging_metrics(y_true, y_score, ["rock", "piano", "ambient"])
    # rock: positives 0.8, 0.4; negatives 0.2, 0.5 -> pairs won: (0.8>0.2, 0.8>0.5, 0.4>0.2) = 3 of 4
    #       ranking 0.8+ 0.5- 0.4+ 0.2- -> AP = (1/1 + 2/3) / 2
    # piano: positives 0.6, 0.2; negatives 0.3, 0.4 -> pairs won: (0.6>0.3, 0.6>0.4) = 2 of 4
    #       ranking 0.6+ 0.4- 0.3- 0.2+ -> AP = (1/1 + 2/4) / 2
    assert metrics["per_tag"]["rock"]["roc_auc"] == pytest.approx(0.75)
    assert metrics["per_tag"]["rock"]["pr_auc"] == pytest.approx(5 / 6)
    assert metrics["per_tag"]["piano"]["roc_auc"] == pytest.approx(0.5)
    assert metrics["per_tag"]["piano"]["pr_auc"] == pytest.approx(0.75)
    # ambient has no positive test track: left out of the macro averages, and named.
    assert metrics["skipped_tags"] == [{"tag": "ambient", "reason": "no positive example in the test set"}]
    assert metrics["tags_scored"] == 2
    assert metrics["roc_auc"] == pytest.approx((0.75 + 0.5) / 2)
    assert metrics["pr_auc"] == pytest.approx((5 / 6 + 0.75) / 2)


def test_a_tag_on_every_test_track_is_named_too():
    metrics = tagging_metrics(np.array([[1, 1], [1, 0]]), np.array([[0.9, 0.8], [0.1, 0.2]]), ["all", "some"])
    assert metrics["skipped_tags"] == [{"tag": "all", "reason": "no negative example in the test set"}]
    assert metrics["roc_auc"] == 1.0


def test_single_label_accuracy_from_averaged_softmax():
    # Track 0: chunks say class 1 then (weakly) class 0 -> mean favours class 1. Track 1: class 2.
    logits = np.array([[0.0, 2.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.0, 3.0]])
    scores = track_level_scores(probabilities(logits, multilabel=False), np.array([0, 0, 1]))
    assert accuracy(np.array([1, 2]), scores) == 1.0
    assert accuracy(np.array([0, 2]), scores) == 0.5
    metrics = track_metrics(np.array([1, 2]), scores, ["a", "b", "c"], multilabel=False)
    assert metrics["accuracy"] == 1.0
    assert [s["tag"] for s in metrics["skipped_tags"]] == ["a"]


# -- label fraction -----------------------------------------------------------------------------
@pytest.mark.parametrize("fraction, expected", [(0.01, 187), (0.1, 1871), (1.0, 18706)])
def test_label_fraction_selects_that_many_distinct_tracks(fraction, expected):
    tracks = label_fraction_tracks(18706, fraction, seed=42)  # MagnaTagATune's training split
    assert len(tracks) == expected == len(set(tracks.tolist()))
    assert tracks.min() >= 0 and tracks.max() < 18706
    assert list(tracks) == sorted(tracks)


def test_label_fraction_is_seeded_and_never_empty():
    assert np.array_equal(label_fraction_tracks(500, 0.1, seed=1), label_fraction_tracks(500, 0.1, seed=1))
    assert not np.array_equal(label_fraction_tracks(500, 0.1, seed=1), label_fraction_tracks(500, 0.1, seed=2))
    assert len(label_fraction_tracks(20, 0.01, seed=0)) == 1


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_label_fraction_outside_zero_one_is_refused(fraction):
    with pytest.raises(ValueError, match="label fraction"):
        label_fraction_tracks(100, fraction, seed=0)
