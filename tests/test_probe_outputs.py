"""What a probe run prints (clmr/probe_outputs.py): the results table and the comparison with a random encoder."""

from __future__ import annotations

from clmr.probe_outputs import format_comparison, format_results


def results(roc_auc: float, label: str = "last.ckpt") -> dict:
    return {
        "encoder": {"label": label},
        "head": {"type": "linear", "trained": True, "epochs": 3, "checkpoint": "b"},
        "label_fraction": 1.0,
        "protocol": "clmr",
        "metrics": {"roc_auc": roc_auc, "pr_auc": 0.5},
        "tags_scored": 2,
        "skipped_tags": [{"tag": "c", "reason": "no positive example in the test set"}],
        "dataset": {
            "name": "synthetic",
            "tags": ["a", "b", "c"],
            "splits": {
                "train": {"tracks": 10, "tracks_used": 10},
                "test": {"tracks": 4, "chunks": 8, "padded_tracks": 0},
            },
        },
        "outputs": {"results": "r.json", "per_tag_png": "p.png", "tensorboard": "tb"},
    }


def test_the_results_table_gives_scores_in_percent_and_names_the_unscored_tags():
    text = format_results(results(0.875))
    assert "ROC-AUC         87.5" in text and "(macro averages over 2 of 3 tags)" in text
    assert "not scored: c (no positive example in the test set)" in text and "head         b" in text


def test_the_comparison_gives_the_difference_in_points():
    text = format_comparison(results(0.8), results(0.6, "random"))
    assert "difference" in text and "+20.0" in text
