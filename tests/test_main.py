"""main.py end to end on a tiny synthetic dataset: checkpoints, TensorBoard events, resume, bad input, SIGTERM and
kill -9, a diverging loss, the run lock."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from pytorch_lightning import Callback

import main
from clmr.modules import ContrastiveLearning
from conftest import assert_refused, event_tags, half_written, tiny_flags

ROOT = Path(__file__).resolve().parents[1]


def tiny_run(tmp_path: Path, *extra: str) -> list[str]:
    return tiny_flags(tmp_path / "data", tmp_path / "runs", *extra)


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
    state = torch.load(tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)[
        "state_dict"
    ]
    assert state["model.fc.weight"].shape[1] == 512 and "model.sequential.0.0.weight" in state


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (
            ["--dataset", "audio", "--dataset_dir", "/nonexistent/folder"],
            "/nonexistent/folder: dataset folder not found",
        ),
        (["--augment_on", "gpu"], "--augment_on 'gpu'"),
    ],
)
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


# -- checkpoints, resume, stops and the run lock ---------------------------------------------------------------
STEPS_PER_EPOCH = 2  # tiny_main: --limit_train_batches 2
ONE_STEP = ("--limit_train_batches", "1")  # for the tests that need epochs, not steps
WAIT_S = 240  # for a subprocess run to reach a step, or to stop, on a loaded 2-core machine


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def finite(state: dict) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in state.values() if v.is_floating_point())


def with_callback(monkeypatch, callback: Callback) -> None:
    """main.py's Trainer gets one more callback (a probe of the test, not part of the run)."""
    build = main.build_trainer
    monkeypatch.setattr(main, "build_trainer", lambda cfg, stage, callbacks: build(cfg, stage, [*callbacks, callback]))


class FinalWeights(Callback):
    def on_train_end(self, trainer, pl_module):
        self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}


def test_last_checkpoint_is_the_final_epoch_even_when_valid_loss_worsens(tmp_path, tiny_main, monkeypatch):
    def worsening(self, batch, batch_idx):  # Valid/loss = the epoch: epoch 0 stays the best
        self.log("Valid/loss", float(self.current_epoch))

    monkeypatch.setattr(ContrastiveLearning, "validation_step", worsening)
    final = FinalWeights()
    with_callback(monkeypatch, final)
    main.main(tiny_main("--max_epochs", "3", *ONE_STEP))
    checkpoints = tmp_path / "runs" / "tiny" / "checkpoints"
    last, best = load(checkpoints / "last.ckpt"), load(checkpoints / "best.ckpt")
    assert (best["epoch"], best["global_step"]) == (0, 1)
    assert (last["epoch"], last["global_step"]) == (2, 3)
    assert last["state_dict"].keys() == final.state.keys()
    assert all(torch.equal(last["state_dict"][k], v) for k, v in final.state.items())


def start_main(*flags: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "main.py"), *flags],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_step(path: Path, proc: subprocess.Popen, step: int) -> int:
    """Poll `path` (written atomically) until it holds a checkpoint of at least `step`; its step."""
    deadline, seen = time.monotonic() + WAIT_S, None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"main.py ended (status {proc.returncode}) before step {step}:\n{proc.stderr.read()[-3000:]}")
        stamp = path.stat().st_mtime_ns if path.is_file() else None
        if stamp is not None and stamp != seen:
            seen, written = stamp, load(path)["global_step"]
            if written >= step:
                return written
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"no checkpoint of step {step} within {WAIT_S} s")


def test_sigterm_saves_the_current_step_exits_143_and_resume_ends_at_the_uninterrupted_step(tmp_path, tiny_main):
    flags = tiny_main("--max_epochs", "2", "--save_every_n_steps", "1")
    last = tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt"
    proc = start_main(*flags)
    wait_for_step(last, proc, 1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr
    line = next(line for line in stderr.splitlines() if line.startswith("stopped by SIGTERM"))
    step = int(line.split(" at step ")[1].split()[0])
    assert f"saved {last}" in line and "--resume 1" in line
    assert load(last)["global_step"] == step < 2 * STEPS_PER_EPOCH
    assert not (tmp_path / "runs" / "tiny" / "run.lock").exists()

    main.main([*flags, "--resume", "1"])
    assert load(last)["global_step"] == 2 * STEPS_PER_EPOCH  # where the uninterrupted run ends


def test_kill_9_loses_at_most_the_steps_since_the_last_checkpoint(tmp_path, tiny_main, run_script):
    flags = tiny_main("--max_epochs", "2", "--save_every_n_steps", "1")
    last = tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt"
    proc = start_main(*flags)
    seen = wait_for_step(last, proc, 3)  # inside the second epoch
    proc.kill()
    proc.communicate(timeout=WAIT_S)
    kept = load(last)  # whole: written to a temporary name and renamed
    assert kept["global_step"] >= seen and finite(kept["state_dict"])

    resumed = run_script("main", *flags, "--resume", "1")
    assert resumed.code == 0, resumed.stderr[-3000:]
    assert "took over the stale lock" in resumed.stderr  # the killed run could not remove it
    assert load(last)["global_step"] == 2 * STEPS_PER_EPOCH
    assert not half_written(tmp_path / "runs")


def test_max_epochs_0_prints_no_checkpoint_path_that_does_not_exist(tmp_path, tiny_main, run_script):
    result = run_script("main", *tiny_main("--max_epochs", "0"))
    assert result.code == 0, result.stderr
    assert "checkpoints: none written" in result.stdout and ".ckpt" not in result.stdout
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_fresh_start_does_not_overwrite_an_earlier_runs_checkpoints(tmp_path, tiny_main, run_script):
    checkpoints = tmp_path / "runs" / "tiny" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.ckpt").write_bytes(b"an earlier run's")
    result = run_script("main", *tiny_main())
    assert_refused(result, str(checkpoints), "last.ckpt", "--resume 1", "--run_name")
    assert (checkpoints / "last.ckpt").read_bytes() == b"an earlier run's"
    assert not (tmp_path / "runs" / "tiny" / "run.lock").exists()


def test_resume_with_nothing_to_resume_says_so_and_names_the_runs_that_can(tmp_path, tiny_main, run_script):
    (tmp_path / "runs" / "tiny" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    result = run_script("main", *tiny_main("--run_name", "tinny", "--resume", "1"))
    assert_refused(result, "--resume 1", "nothing to resume", "tinny", ": tiny")
    assert not (tmp_path / "runs" / "tinny").exists()


def lock_file(tmp_path: Path) -> Path:
    folder = tmp_path / "runs" / "tiny"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "run.lock"


def test_a_second_live_run_on_the_same_run_name_is_refused(tmp_path, tiny_main, run_script):
    lock = lock_file(tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"""
import fcntl, json, os, socket, sys, time
fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({{"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}}).encode())
print("holding", flush=True)
time.sleep(120)
""",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        result = run_script("main", *tiny_main())
        assert_refused(result, "in use by another run", f"pid {holder.pid}", socket.gethostname(), "--run_name")
        assert lock.is_file()  # the live run's lock is left alone
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_of_a_dead_process_is_said_and_taken_over(tmp_path, tiny_main, run_script):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_file(tmp_path).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "then"}))
    result = run_script("main", *tiny_main("--max_epochs", "0"))
    assert result.code == 0, result.stderr
    assert f"took over the stale lock {lock_file(tmp_path)} of pid {dead.pid}" in result.stderr
    assert not lock_file(tmp_path).exists()  # released at the end


def test_a_lock_of_another_host_is_refused_naming_its_host_and_pid(tmp_path, tiny_main, run_script):
    lock_file(tmp_path).write_text(json.dumps({"pid": 4321, "host": "node-17", "started": "then"}))
    result = run_script("main", *tiny_main())
    assert_refused(result, "pid 4321 on host node-17", f"delete {lock_file(tmp_path)}")


def test_an_unwritable_log_dir_is_one_line_before_any_data_is_loaded(tmp_path, tiny_main, run_script):
    (tmp_path / "runs").write_text("a file where the log folder should be")
    result = run_script("main", *tiny_main("--dataset_dir", str(tmp_path / "data")))
    assert_refused(result, f"{tmp_path / 'runs' / 'tiny'}: cannot write there", "Not a directory", "--log_dir")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("condition", ["read-only", "full"])
def test_a_read_only_or_full_log_dir_is_one_line_before_any_data_is_loaded(
    tmp_path, tiny_main, run_script, folders, condition
):
    if condition == "read-only":
        log_dir, reason = folders.read_only("logs"), "Read-only file system"
    else:
        log_dir, reason = folders.small(8 * 1024, "logs"), "No space left on device"
        (log_dir / "filler.bin").write_bytes(b"\1" * 8 * 1024)
    result = run_script("main", *tiny_main("--log_dir", str(log_dir), "--dataset_dir", str(tmp_path / "data")))
    assert_refused(result, f"{log_dir / 'tiny'}: cannot write there", reason, "--log_dir")
    assert not (tmp_path / "data").exists()
    assert not list(log_dir.rglob("run.lock"))


def test_a_loss_that_becomes_nan_stops_training_and_keeps_the_last_good_checkpoint(
    tmp_path, tiny_main, monkeypatch, run_script
):
    train_step = ContrastiveLearning.training_step

    def diverging(self, batch, batch_idx):  # the 2nd step, the last (and only) of epoch 1, diverges
        loss = train_step(self, batch, batch_idx)
        return loss * float("nan") if self.global_step == 1 else loss

    monkeypatch.setattr(ContrastiveLearning, "training_step", diverging)
    result = run_script("main", *tiny_main("--max_epochs", "3", *ONE_STEP))
    assert_refused(
        result,
        "Train/loss became nan at step 2",
        "last good checkpoint",
        "--temperature",
        "learning rate",
        "NaN or Inf in the input audio",
        "fp16",
    )
    checkpoints = tmp_path / "runs" / "tiny" / "checkpoints"
    kept = load(checkpoints / "last.ckpt")  # not even the end of epoch 1 was written
    assert kept["global_step"] == 1 and finite(kept["state_dict"])
    assert finite(load(checkpoints / "best.ckpt")["state_dict"])
    assert not half_written(tmp_path / "runs") and not (tmp_path / "runs" / "tiny" / "run.lock").exists()


class PoisonWeights(Callback):
    """A weight becomes NaN after the first step while the loss stayed finite."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 1:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("nan")


def test_weights_that_became_nan_are_never_written(tmp_path, tiny_main, monkeypatch, run_script):
    with_callback(monkeypatch, PoisonWeights())
    result = run_script("main", *tiny_main(*ONE_STEP))
    assert_refused(result, "weights hold NaN or Inf", "no checkpoint was written")
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_run_whose_last_checkpoint_main_at_0739081_wrote_resumes(tmp_path):
    from conftest import in_old_layout

    main.main(tiny_run(tmp_path))
    last = in_old_layout(tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt")
    first = torch.load(last, map_location="cpu", weights_only=True)
    main.main(tiny_run(tmp_path, "--resume", "1", "--max_epochs", "2"))
    second = torch.load(last, map_location="cpu", weights_only=True)
    assert second["global_step"] == 2 * first["global_step"] > 0
