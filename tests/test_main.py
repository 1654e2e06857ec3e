"""main.py end to end on a tiny synthetic dataset: checkpoints, TensorBoard events, resume, bad input."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import main

ROOT = Path(__file__).resolve().parents[1]


def tiny_run(tmp_path: Path, *extra: str) -> list[str]:
    return ["--dataset", "synthetic", "--dataset_dir", str(tmp_path / "data"), "--log_dir", str(tmp_path / "runs"),
            "--synthetic_tracks", "24", "--synthetic_duration", "3.0", "--batch_size", "4", "--max_epochs", "1",
            "--limit_train_batches", "2", "--limit_val_batches", "1", "--log_every_n_steps", "1",
            "--accelerator", "cpu", "--run_name", "tiny", *extra]


def event_tags(run_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in run_dir.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"audio": 0, "scalars": 0})
        acc.Reload()
        tags |= set(acc.Tags()["scalars"]) | set(acc.Tags()["audio"])
    return tags


def test_pretraining_writes_checkpoints_and_tensorboard_events(tmp_path):
    main.main(tiny_run(tmp_path))
    checkpoints = tmp_path / "runs" / "tiny" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
    state = torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert any(k.startswith("model.encoder.sequential.") for k in state)
    assert any(k.startswith("model.projector.") for k in state)
    tags = event_tags(tmp_path / "runs" / "tiny")
    assert {"Train/loss", "Valid/loss"} <= tags
    assert any(t.startswith("Augmented views/") for t in tags)


def test_resume_continues_from_the_last_checkpoint(tmp_path):
    main.main(tiny_run(tmp_path))
    last = tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt"
    first = torch.load(last, map_location="cpu", weights_only=True)
    main.main(tiny_run(tmp_path, "--resume", "1", "--max_epochs", "2"))
    second = torch.load(last, map_location="cpu", weights_only=True)
    assert second["epoch"] > first["epoch"]
    assert second["global_step"] == 2 * first["global_step"] > 0


def test_augmentation_in_workers_trains_too(tmp_path):
    main.main(tiny_run(tmp_path, "--augment_on", "workers", "--workers", "1"))
    assert (tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt").is_file()


def test_supervised_baseline_trains_sample_cnn_on_the_labels(tmp_path):
    main.main(tiny_run(tmp_path, "--supervised", "1"))
    state = torch.load(tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt", map_location="cpu",
                       weights_only=True)["state_dict"]
    assert state["model.fc.weight"].shape[1] == 512 and "model.sequential.0.0.weight" in state


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


@pytest.mark.parametrize("args,expected", [
    (["--dataset", "nope"], "unknown dataset 'nope'"),
    (["--dataset", "audio", "--dataset_dir", "/nonexistent/folder"], "/nonexistent/folder: dataset folder not found"),
    (["--augment_on", "gpu"], "--augment_on 'gpu'"),
])
def test_bad_input_is_one_clear_line_and_a_non_zero_exit(args, expected):
    result = run_script(*args)
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_audio_folder_is_a_clear_error(tmp_path):
    (tmp_path / "music").mkdir()
    result = run_script("--dataset", "audio", "--dataset_dir", str(tmp_path / "music"), "--log_dir", str(tmp_path))
    assert result.returncode == 1 and "no audio files" in result.stderr
    assert not list(tmp_path.rglob("*.ckpt"))
