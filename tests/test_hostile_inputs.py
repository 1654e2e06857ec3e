"""Hostile inputs, stage by stage: each gives a non-zero exit and one line naming the file or flag and what
was expected; no traceback, nothing half-written, no NaN written.

Scripts run in this process (`conftest.run_script_in_process`), so a case costs what the script does
before it refuses, not a Python start-up.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from conftest import assert_refused, half_written  # noqa: F401


# -- options (config.yaml keys, flags, YAML values) ---------------------------------------------------
CONFIG_CASES = [
]


# -- checkpoints entering the program ----------------------------------------------------------------
# (case, script, flags, mentions in the error line); {name} is a file of `bad_checkpoints`, {tmp} the test's
# folder; main.py's flags follow those of a tiny run (conftest.tiny_main), and main.py's cases set
# TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, under which torch.load without an explicit weights_only runs code.
CHECKPOINT_CASES = [
    ("empty file", "main", ["--checkpoint_path", "{empty}"], ["{empty}", "not a PyTorch checkpoint (an empty file"]),
    ("text file", "main", ["--checkpoint_path", "{text}"], ["{text}", "not a PyTorch checkpoint"]),
    ("truncated checkpoint", "main", ["--checkpoint_path", "{truncated}"], ["{truncated}", "truncated"]),
    ("code in the pickle", "main", ["--checkpoint_path", "{runs_code}"], ["{runs_code}", "refusing", "run code"]),
    ("code in the pickle, as last.ckpt of --resume 1", "main", ["--resume", "1"],
     ["--resume 1 from {tmp}/runs/tiny/checkpoints/last.ckpt", "refusing", "run code"]),
    ("a bare state dict", "main", ["--checkpoint_path", "{bare_state_dict}"],
     ["{bare_state_dict}", "a bare state dict", "not a training checkpoint"]),
    ("a probe head", "main", ["--checkpoint_path", "{probe_head}"],
     ["{probe_head}", "a probe-head checkpoint", "pre-training continues a pre-training checkpoint"]),
    ("a supervised checkpoint to pre-training", "main", ["--checkpoint_path", "{supervised}"],
     ["{supervised}", "a supervised-baseline checkpoint", "pre-training continues a pre-training checkpoint"]),
    ("a pre-training checkpoint to --supervised 1", "main", ["--supervised", "1", "--checkpoint_path", "{pretrain}"],
     ["{pretrain}", "a pre-training checkpoint", "--supervised 1 continues a supervised-baseline checkpoint"]),
    ("another projection_dim", "main", ["--checkpoint_path", "{projection_32}"],
     ["{projection_32}", "another architecture", "model.projector.2.weight has shape (32, 512), expected (64, 512)"]),
    ("weights without training state", "main", ["--checkpoint_path", "{weights_only}"],
     ["{weights_only}", "without optimizer_states"]),
    ("another optimiser", "main", ["--checkpoint_path", "{lars}"], ["{lars}", "trained with --optimizer LARS"]),
    ("NaN weights to resume", "main", ["--checkpoint_path", "{nan_pretrain}"], ["{nan_pretrain}", "NaN or Inf"]),
    ("NaN encoder to probe", "linear_evaluation", ["--checkpoint_path", "{nan_pretrain}", "--log_dir", "{tmp}/runs"],
     ["--checkpoint_path {nan_pretrain}", "encoder weights hold NaN or Inf"]),
    ("NaN encoder to embed", "predict", ["{tmp}/song.wav", "--checkpoint_path", "{nan_pretrain}", "--embeddings",
                                         "{tmp}/embeddings"], ["--checkpoint_path {nan_pretrain}", "NaN or Inf"]),
    ("NaN encoder to export", "export", ["--checkpoint_path", "{nan_pretrain}", "--out", "{tmp}/exports"],
     ["--checkpoint_path {nan_pretrain}", "NaN or Inf"]),
    ("NaN probe head", "predict", ["{tmp}/song.wav", "--checkpoint_path", "{pretrain}", "--finetuner_checkpoint_path",
                                   "{nan_head}"], ["--finetuner_checkpoint_path {nan_head}", "probe-head weights hold NaN"]),
]


class RunsCode:
    """Unpickling this runs a shell command that writes `marker`: a checkpoint must never run code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo ran > '{self.marker}'",))


def _saved(module, path: Path, cfg) -> Path:
    """`module` saved as a training run saves it (our Trainer, its callbacks, atomic checkpoint IO), untrained."""
    from clmr.trainer import build_trainer, checkpoint_callbacks

    trainer = build_trainer(cfg, "pretrain", checkpoint_callbacks(cfg, "pretrain"), logger=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory) -> dict[str, Path]:
    """Every file of CHECKPOINT_CASES, and `marker`: what the code in `runs_code` would create."""
    from clmr.config import load_config
    from clmr.models import SampleCNN
    from clmr.modules import ContrastiveLearning, SupervisedLearning

    folder = tmp_path_factory.mktemp("bad_checkpoints")
    cfg = load_config(["--log_dir", str(folder / "runs"), "--accelerator", "cpu"])
    files = {"marker": folder / "code_ran"}
    pretrain = _saved(ContrastiveLearning(cfg, SampleCNN(out_dim=11)), folder / "pretrain.ckpt", cfg)
    files["pretrain"] = pretrain
    files["supervised"] = _saved(SupervisedLearning(cfg, SampleCNN(supervised=True, out_dim=11), multilabel=True),
                                 folder / "supervised.ckpt", cfg)
    cfg32 = load_config(["--log_dir", str(folder / "runs"), "--accelerator", "cpu", "--projection_dim", "32"])
    files["projection_32"] = _saved(ContrastiveLearning(cfg32, SampleCNN(out_dim=11)), folder / "p32.ckpt", cfg32)
    lars = load_config(["--log_dir", str(folder / "runs"), "--accelerator", "cpu", "--optimizer", "LARS"])
    files["lars"] = _saved(ContrastiveLearning(lars, SampleCNN(out_dim=11)), folder / "lars.ckpt", lars)
    files["empty"] = folder / "empty.ckpt"
    files["empty"].write_bytes(b"")
    files["text"] = folder / "notes.ckpt"
    files["text"].write_text("not a checkpoint\n")
    data = pretrain.read_bytes()
    files["truncated"] = folder / "truncated.ckpt"
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["runs_code"] = folder / "evil.ckpt"
    torch.save({"state_dict": {}, "epoch": 0, "x": RunsCode(files["marker"])}, files["runs_code"])
    files["bare_state_dict"] = folder / "samplecnn.pt"
    torch.save(SampleCNN(out_dim=11).state_dict(), files["bare_state_dict"])
    files["probe_head"] = folder / "head.ckpt"
    head = {"model.0.weight": torch.zeros(11, 512), "model.0.bias": torch.zeros(11)}
    torch.save({"state_dict": head, "optimizer_states": [], "epoch": 3, "global_step": 30}, files["probe_head"])
    files["nan_head"] = folder / "nan_head.ckpt"
    torch.save({"state_dict": {"model.0.weight": torch.full((11, 512), float("nan")),
                               "model.0.bias": torch.zeros(11)}}, files["nan_head"])
    checkpoint = torch.load(pretrain, weights_only=True)
    del checkpoint["optimizer_states"]
    files["weights_only"] = folder / "weights_only.ckpt"
    torch.save(checkpoint, files["weights_only"])
    checkpoint = torch.load(pretrain, weights_only=True)
    checkpoint["state_dict"]["model.encoder.sequential.0.0.weight"][0] = float("nan")
    files["nan_pretrain"] = folder / "nan.ckpt"
    torch.save(checkpoint, files["nan_pretrain"])
    return files


@pytest.mark.parametrize("case,script,flags,mentions", CHECKPOINT_CASES, ids=[c[0] for c in CHECKPOINT_CASES])
def test_a_bad_checkpoint_is_refused_in_one_line(case, script, flags, mentions, bad_checkpoints, tmp_path, tiny_main,
                                                 run_script, monkeypatch):
    def fill(text: str) -> str:
        return text.format(tmp=tmp_path, **bad_checkpoints)

    args = [fill(a) for a in flags]
    if script == "main":
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
        args = tiny_main(*args)
        if "--resume" in args:
            last = tmp_path / "runs" / "tiny" / "checkpoints" / "last.ckpt"
            last.parent.mkdir(parents=True)
            shutil.copy(bad_checkpoints["runs_code"], last)
    result = run_script(script, *args)
    assert_refused(result, *[fill(m) for m in mentions])
    assert len([line for line in result.stderr.splitlines() if "error" in line]) == 1, result.stderr
    assert not bad_checkpoints["marker"].exists(), "the checkpoint ran code"
    assert not list(tmp_path.rglob("*.tmp-*")) and not list(tmp_path.rglob("run.lock"))


# -- audio files, file names, output folders ----------------------------------------------------------
FILE_CASES = [
]
