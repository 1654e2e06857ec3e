"""linear_evaluation.py end to end: synthetic tags, a single-label dataset, head reload, cache reuse, bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import linear_evaluation
from clmr import cli
from clmr.datasets import REGISTRY
from clmr.datasets.dataset import AudioDataset, DatasetError
from conftest import assert_finite_json, event_tags
from conftest import random_encoder_checkpoint as encoder_checkpoint


def synthetic(tmp: Path, *extra: str) -> list[str]:
    return [
        "--dataset",
        "synthetic",
        "--dataset_dir",
        str(tmp / "data"),
        "--log_dir",
        str(tmp / "runs"),
        "--synthetic_tracks",
        "24",
        "--synthetic_duration",
        "3.0",
        "--finetuner_max_epochs",
        "2",
        "--accelerator",
        "cpu",
        *extra,
    ]


def results_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """One probe of a random-init checkpoint on a tiny synthetic dataset, shared by the tests that read it."""
    tmp = tmp_path_factory.mktemp("probe")
    ckpt = encoder_checkpoint(tmp / "last.ckpt")
    linear_evaluation.main(synthetic(tmp, "--checkpoint_path", str(ckpt)))
    return tmp, ckpt


def test_probe_writes_results_json_png_head_and_tensorboard(synthetic_run):
    tmp, ckpt = synthetic_run
    run_dir = tmp / "runs" / "linear_synthetic"
    results = results_of(run_dir)
    assert set(results["metrics"]) == {"roc_auc", "pr_auc"}
    assert 0 <= results["metrics"]["roc_auc"] <= 1 and 0 <= results["metrics"]["pr_auc"] <= 1
    assert results["tags_scored"] + len(results["skipped_tags"]) == len(results["dataset"]["tags"]) == 11
    assert set(results["per_tag"]) | {s["tag"] for s in results["skipped_tags"]} == set(results["dataset"]["tags"])
    assert results["encoder"]["sha256"] and results["encoder"]["checkpoint_path"] == str(ckpt)
    assert results["dataset"]["splits"]["test"]["tracks"] == results["dataset"]["splits"]["test"]["chunks"]
    assert results["protocol"] == "clmr" and results["config"]["finetuner_max_epochs"] == 2
    assert (run_dir / "per_tag.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    assert {"Train/loss", "Valid/loss", "Test/roc_auc", "Test/pr_auc", "Test/per-tag scores"} <= event_tags(run_dir)
    metadata = next(run_dir.rglob("metadata.tsv")).read_text().splitlines()
    assert metadata[0] == "track\ttags\tpredicted"
    assert len(metadata) == 1 + results["dataset"]["splits"]["test"]["tracks"]
    assert next(run_dir.rglob("projector_config.pbtxt")).is_file()
    assert not list(run_dir.glob(".*tmp*"))  # results written atomically


def test_every_metric_has_a_finite_bootstrap_interval_in_results_json_and_the_printout(synthetic_run, capsys):
    tmp, ckpt = synthetic_run
    results = results_of(tmp / "runs" / "linear_synthetic")
    assert_finite_json(results)
    assert set(results["metrics_ci"]) == set(results["metrics"])
    for lo, hi in results["metrics_ci"].values():
        assert 0 <= lo <= hi <= 1
    assert results["bootstrap"]["resamples"] == 1000 and results["bootstrap"]["seed"] == results["config"]["seed"]
    saved = np.load(results["outputs"]["test_scores"])
    assert saved["scores"].shape == (results["dataset"]["splits"]["test"]["tracks"], 11)
    from clmr.probe import format_results

    text = format_results(results)
    assert "95% interval" in text and "1000 resamples" in text
    roc = results["metrics_ci"]["roc_auc"]
    assert f"[{100 * roc[0]:.1f}, {100 * roc[1]:.1f}]" in text


def test_reloading_the_head_skips_training_and_extraction_and_gives_the_same_scores(synthetic_run, capsys):
    tmp, ckpt = synthetic_run
    first = results_of(tmp / "runs" / "linear_synthetic")
    best = tmp / "runs" / "linear_synthetic" / "checkpoints" / "best.ckpt"
    linear_evaluation.main(
        synthetic(
            tmp, "--checkpoint_path", str(ckpt), "--run_name", "reloaded", "--finetuner_checkpoint_path", str(best)
        )
    )
    again = results_of(tmp / "runs" / "reloaded")
    assert again["head"]["trained"] is False
    assert all(r["cached"] for r in again["representations"].values())
    assert again["metrics"] == pytest.approx(first["metrics"])
    out = capsys.readouterr().out
    assert "ROC-AUC" in out and "PR-AUC" in out and "loaded from" in out


def test_mlp_head_chunks_protocol_and_label_fraction(synthetic_run):
    tmp, ckpt = synthetic_run
    linear_evaluation.main(
        synthetic(
            tmp,
            "--checkpoint_path",
            str(ckpt),
            "--run_name",
            "mlp",
            "--finetuner_mlp",
            "1",
            "--finetuner_protocol",
            "chunks",
            "--finetuner_label_fraction",
            "0.5",
        )
    )
    results = results_of(tmp / "runs" / "mlp")
    assert results["head"]["type"] == "mlp" and results["protocol"] == "chunks"
    assert results["dataset"]["splits"]["train"]["tracks_used"] == round(
        0.5 * results["dataset"]["splits"]["train"]["tracks"]
    )
    assert results["representations"]["test"]["cached"]  # the test chunks are shared with the clmr protocol
    assert not results["representations"]["train"]["cached"]  # chunks of the training tracks are new
    state = torch.load(tmp / "runs" / "mlp" / "checkpoints" / "best.ckpt", weights_only=True)["state_dict"]
    assert sorted(state) == ["model.0.bias", "model.0.weight", "model.2.bias", "model.2.weight"]


def test_a_head_of_the_other_kind_is_a_clear_error(synthetic_run):
    tmp, ckpt = synthetic_run
    best = tmp / "runs" / "linear_synthetic" / "checkpoints" / "best.ckpt"
    with pytest.raises(Exception, match="a linear head; pass --finetuner_mlp 0"):
        linear_evaluation.main(
            synthetic(
                tmp,
                "--checkpoint_path",
                str(ckpt),
                "--run_name",
                "x",
                "--finetuner_mlp",
                "1",
                "--finetuner_checkpoint_path",
                str(best),
            )
        )


# -- a single-label dataset -----------------------------------------------------------------------
class Genres(AudioDataset):
    """Three classes of tones (low, middle, high), 4 / 2 / 3 tracks per subset, written on first use."""

    name = "genres"
    multilabel = False
    COUNTS = {"train": 4, "valid": 2, "test": 3}

    def __init__(self, root, subset, sample_rate=22050, audio_length=59049):
        super().__init__(Path(root) / "genres", subset, sample_rate, audio_length)
        self.tag_names = ["low", "middle", "high"]
        labels = [k % 3 for k in range(self.COUNTS[subset])]
        folder = self.root / subset
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(len(subset))
        for k, label in enumerate(labels):
            path = folder / f"{k}.wav"
            if not path.exists():
                t = np.arange(int(audio_length * 1.2)) / sample_rate
                tone = 0.3 * np.sin(2 * np.pi * (110 * 4**label) * t) + 0.01 * rng.standard_normal(t.size)
                sf.write(path, tone.astype(np.float32), sample_rate, subtype="FLOAT")
            self.files.append(path)
        self.targets = np.asarray(labels, dtype=np.int64)


@pytest.fixture
def genres(monkeypatch):
    monkeypatch.setitem(REGISTRY, "genres", f"{__name__}:Genres")


def test_single_label_dataset_reports_accuracy_and_compares_with_a_random_encoder(tmp_path, genres, capsys):
    ckpt = encoder_checkpoint(tmp_path / "last.ckpt", seed=1)
    linear_evaluation.main(
        [
            "--dataset",
            "genres",
            "--dataset_dir",
            str(tmp_path / "data"),
            "--log_dir",
            str(tmp_path / "runs"),
            "--finetuner_max_epochs",
            "2",
            "--accelerator",
            "cpu",
            "--checkpoint_path",
            str(ckpt),
            "--compare_random",
            "1",
        ]
    )
    pretrained = results_of(tmp_path / "runs" / "linear_genres")
    baseline = results_of(tmp_path / "runs" / "linear_genres_random")
    assert set(pretrained["metrics"]) == {"accuracy", "roc_auc", "pr_auc"}
    assert pretrained["metrics"]["accuracy"] in (0, 1 / 3, 2 / 3, 1)
    assert baseline["encoder"]["checkpoint_path"] == "random"
    out = capsys.readouterr().out
    assert "What pre-training bought" in out and "random init encoder" in out and "accuracy" in out
    comparison = pretrained["comparison"]
    assert set(comparison["difference"]) == {"accuracy", "roc_auc", "pr_auc"}
    assert_finite_json(pretrained)
    for key, entry in comparison["difference"].items():
        assert entry["difference"] == pytest.approx(pretrained["metrics"][key] - baseline["metrics"][key])
        lo, hi = entry["ci"]
        assert lo <= hi and entry["excludes_zero"] == (lo > 0 or hi < 0)
        assert comparison["verdicts"][key] in out
    assert "Paired difference, pre-trained - random" in out and "same 1000 bootstrap resamples" in out


# -- bad input ------------------------------------------------------------------------------------
def test_an_unlabelled_dataset_is_a_clear_error(tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    for k in range(3):
        sf.write(folder / f"{k}.wav", np.zeros(60000, dtype=np.float32), 22050)
    ckpt = encoder_checkpoint(tmp_path / "last.ckpt")
    with pytest.raises(DatasetError, match="needs a labelled dataset"):
        linear_evaluation.main(
            [
                "--dataset",
                "audio",
                "--dataset_dir",
                str(folder),
                "--log_dir",
                str(tmp_path / "runs"),
                "--checkpoint_path",
                str(ckpt),
            ]
        )


def test_run_name_that_would_overwrite_the_encoders_checkpoints_is_refused(tmp_path):
    ckpt_dir = tmp_path / "runs" / "demo" / "checkpoints"
    ckpt_dir.mkdir(parents=True)
    ckpt = encoder_checkpoint(ckpt_dir / "last.ckpt")
    with pytest.raises(Exception, match="would overwrite the encoder's"):
        linear_evaluation.main(
            ["--log_dir", str(tmp_path / "runs"), "--run_name", "demo", "--checkpoint_path", str(ckpt)]
        )


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "--checkpoint_path is required"),
        (["--checkpoint_path", "missing.ckpt"], "missing.ckpt: file not found"),
        (["--checkpoint_path", "random", "--compare_random", "1"], "--compare_random 1 compares"),
        (["--checkpoint_path", "random", "--bootstrap_resamples", "0"], "--bootstrap_resamples 0"),
    ],
)
def test_command_line_errors_are_one_line_and_exit_1(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["linear_evaluation.py", "--log_dir", str(tmp_path), *args])
    with pytest.raises(SystemExit) as exit_:
        cli.run(linear_evaluation.main)
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


def test_an_encoder_whose_outputs_overflow_stops_before_a_nan_score_is_written(tmp_path):
    """Finite weights so large that the representations overflow to Inf and NaN (NaN weights themselves are
    refused when the checkpoint is read: tests/test_hostile_inputs.py)."""
    from conftest import assert_refused, run_script_in_process

    ckpt = encoder_checkpoint(tmp_path / "nan.ckpt")
    saved = torch.load(ckpt, weights_only=True)
    for key, value in saved["state_dict"].items():
        if key.startswith("model.encoder.") and key.endswith(".weight"):
            value.fill_(1e30)  # layer after layer: 1e30, 1e60 (Inf), then NaN
    torch.save(saved, ckpt)
    result = run_script_in_process("linear_evaluation", *synthetic(tmp_path, "--checkpoint_path", str(ckpt)))
    assert_refused(result, f"--checkpoint_path {ckpt}", "NaN or infinite representations", "synthetic/train")
    assert not list((tmp_path / "runs").rglob("results.json"))


def test_a_head_written_by_main_at_0739081_is_reloaded_by_the_probe(synthetic_run):
    from conftest import OLD_HEAD

    tmp, ckpt = synthetic_run
    linear_evaluation.main(
        synthetic(
            tmp, "--checkpoint_path", str(ckpt), "--run_name", "old_head", "--finetuner_checkpoint_path", str(OLD_HEAD)
        )
    )
    results = results_of(tmp / "runs" / "old_head")
    assert results["head"]["trained"] is False and results["head"]["checkpoint"] == str(OLD_HEAD)
