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
# (script, flags, text of a --config file or None, what the error line names). Each is refused by the config
# reader, before any data is generated or read and before anything is written, on a machine without a GPU.
CONFIG_CASES = [
    pytest.param("main", ["--batch_size", "0"], None, ["--batch_size 0", "expected an integer >= 2"], id="batch-0"),
    pytest.param("main", ["--batch_size", "-4"], None, ["--batch_size -4"], id="batch-negative"),
    pytest.param("main", ["--batch_size", "1"], None, ["--batch_size 1", "BatchNorm"], id="batch-1"),
    pytest.param(
        "main", ["--audio_length", "1000"], None, ["--audio_length 1000", "expected 59049"], id="audio-length"
    ),
    pytest.param("main", ["--precision", "bogus"], None, ["--precision 'bogus'", "bf16-mixed"], id="precision"),
    pytest.param(
        "main", ["--accelerator", "tpu"], None, ["--accelerator 'tpu'", "not available"], id="accelerator-tpu"
    ),
    pytest.param(
        "main", ["--accelerator", "bogus"], None, ["--accelerator 'bogus'", "expected one of"], id="accelerator-unknown"
    ),
    pytest.param("main", ["--gpus", "1"], None, ["--gpus 1", "GPU requested, but no CUDA GPU is visible"], id="gpus-1"),
    pytest.param(
        "main", ["--accelerator", "gpu"], None, ["--accelerator 'gpu'", "GPU requested"], id="accelerator-gpu"
    ),
    pytest.param(
        "linear_evaluation",
        ["--gpus", "1", "--checkpoint_path", "random"],
        None,
        ["--gpus 1", "GPU requested"],
        id="linear-gpus-1",
    ),
    pytest.param(
        "main", [], 'batch_size: "four"\n', ["bad.yaml: batch_size 'four'", "expected an integer"], id="yaml-batch-four"
    ),
    pytest.param(
        "main", [], "max_epochs: abc\n", ["bad.yaml: max_epochs 'abc'", "expected an integer"], id="yaml-max-epochs-abc"
    ),
    pytest.param(
        "main", [], "temperature: 0\n", ["bad.yaml: temperature 0", "expected a number > 0"], id="yaml-temperature-0"
    ),
    pytest.param(
        "main", ["--temperature", "0"], None, ["--temperature 0", "expected a number > 0"], id="temperature-0"
    ),
    pytest.param("main", ["--temperature", "-0.5"], None, ["--temperature -0.5"], id="temperature-negative"),
    pytest.param("main", ["--temperature", "nan"], None, ["--temperature nan"], id="temperature-nan"),
    pytest.param(
        "main", ["--sample_rate", "0"], None, ["--sample_rate 0", "expected an integer >= 1"], id="sample-rate-0"
    ),
    pytest.param("main", ["--learning_rate", "0"], None, ["--learning_rate 0", "expected a number > 0"], id="lr-0"),
    pytest.param(
        "main", ["--transforms_pitch", "1.5"], None, ["--transforms_pitch 1.5", "probability"], id="probability"
    ),
    pytest.param(
        "main", ["--finetuner_label_fraction", "0"], None, ["--finetuner_label_fraction 0"], id="label-fraction"
    ),
    pytest.param(
        "linear_evaluation",
        ["--finetuner_label_fraction", "1.5"],
        None,
        ["--finetuner_label_fraction 1.5"],
        id="linear-label-fraction",
    ),
    pytest.param("main", ["--workers", "-2"], None, ["--workers -2", "expected an integer >= -1"], id="workers"),
    pytest.param("main", ["--max_epochs", "-2"], None, ["--max_epochs -2"], id="max-epochs"),
    pytest.param("main", ["--max_steps", "-2"], None, ["--max_steps -2"], id="max-steps"),
    pytest.param("main", ["--limit_train_batches", "1.5"], None, ["--limit_train_batches 1.5"], id="limit-batches"),
    pytest.param("main", ["--log_every_n_steps", "0"], None, ["--log_every_n_steps 0"], id="log-every"),
    pytest.param("main", ["--projection_dim", "0"], None, ["--projection_dim 0"], id="projection-dim"),
    pytest.param("main", ["--seed", "-1"], None, ["--seed -1"], id="seed"),
    pytest.param("main", ["--synthetic_tracks", "2"], None, ["--synthetic_tracks 2", ">= 3"], id="synthetic-tracks"),
    pytest.param(
        "main", ["--synthetic_duration", "1"], None, ["--synthetic_duration 1", "one crop"], id="synthetic-duration"
    ),
    pytest.param("main", ["--num_nodes", "0"], None, ["--num_nodes 0"], id="num-nodes"),
    pytest.param(
        "main",
        ["--accelerator", "cpu", "--devices", "0,1"],
        None,
        ["--devices '0,1'", "on the CPU"],
        id="devices-on-cpu",
    ),
    pytest.param("main", ["--strategy", "bogus"], None, ["--strategy 'bogus'", "ddp"], id="strategy-unknown"),
    pytest.param(
        "main",
        ["--strategy", "deepspeed"],
        None,
        ["--strategy 'deepspeed'", "cannot be used here"],
        id="strategy-missing-package",
    ),
    pytest.param("main", ["--finetuner_batch_size", "0"], None, ["--finetuner_batch_size 0"], id="finetuner-batch"),
    pytest.param(
        "linear_evaluation",
        ["--finetuner_max_epochs", "0", "--checkpoint_path", "random"],
        None,
        ["--finetuner_max_epochs 0"],
        id="finetuner-epochs",
    ),
    pytest.param(
        "main",
        ["--early_stopping_patience", "-1", "--supervised", "1"],
        None,
        ["--early_stopping_patience -1"],
        id="patience",
    ),
    pytest.param("main", ["--check_val_every_n_epoch", "0"], None, ["--check_val_every_n_epoch 0"], id="val-every"),
    pytest.param("main", ["--optimizer", "SGD"], None, ["--optimizer 'SGD'", "Adam or LARS"], id="optimizer"),
    pytest.param("main", ["--finetuner_protocol", "crops"], None, ["--finetuner_protocol 'crops'"], id="protocol"),
    pytest.param(
        "main",
        ["--mtat_split", "won2020"],
        None,
        ["unknown MagnaTagATune split 'won2020'", "--mtat_split"],
        id="mtat-split",
    ),
    pytest.param(
        "export", ["--opset", "5", "--checkpoint_path", "encoder.ckpt"], None, ["--opset 5", "[16, "], id="export-opset"
    ),
    pytest.param(
        "export",
        ["--tolerance", "0", "--checkpoint_path", "encoder.ckpt"],
        None,
        ["--tolerance 0"],
        id="export-tolerance",
    ),
    pytest.param(
        "predict",
        ["--top_k", "0", "song.wav", "--checkpoint_path", "encoder.ckpt"],
        None,
        ["--top_k 0"],
        id="predict-top-k",
    ),
    pytest.param(
        "preprocess",
        ["--sample_rate", "0", "--dataset", "audio"],
        None,
        ["--sample_rate 0"],
        id="preprocess-sample-rate",
    ),
]


@pytest.mark.parametrize("script,flags,config_text,mentions", CONFIG_CASES)
def test_a_bad_option_is_refused_before_any_work(
    run_script, no_gpu, tmp_path, monkeypatch, script, flags, config_text, mentions
):
    monkeypatch.chdir(tmp_path)
    before = [tmp_path / "bad.yaml"] if config_text is not None else []
    if config_text is not None:
        before[0].write_text(config_text)
        flags = ["--config", str(before[0]), *flags]
    result = run_script(script, *flags, "--dataset_dir", str(tmp_path / "data"), "--log_dir", str(tmp_path / "runs"))
    assert_refused(result, *mentions)
    assert sorted(tmp_path.rglob("*")) == before  # no data generated, no run folder, nothing half-written


# -- checkpoints entering the program ----------------------------------------------------------------
# (case, script, flags, mentions in the error line); {name} is a file of `bad_checkpoints`, {tmp} the test's
# folder; main.py's flags follow those of a tiny run (conftest.tiny_main), and main.py's cases set
# TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1, under which torch.load without an explicit weights_only runs code.
CHECKPOINT_CASES = [
    ("empty file", "main", ["--checkpoint_path", "{empty}"], ["{empty}", "not a PyTorch checkpoint (an empty file"]),
    ("text file", "main", ["--checkpoint_path", "{text}"], ["{text}", "not a PyTorch checkpoint"]),
    ("truncated checkpoint", "main", ["--checkpoint_path", "{truncated}"], ["{truncated}", "truncated"]),
    ("code in the pickle", "main", ["--checkpoint_path", "{runs_code}"], ["{runs_code}", "refusing", "run code"]),
    (
        "code in the pickle, as last.ckpt of --resume 1",
        "main",
        ["--resume", "1"],
        ["--resume 1 from {tmp}/runs/tiny/checkpoints/last.ckpt", "refusing", "run code"],
    ),
    (
        "a bare state dict",
        "main",
        ["--checkpoint_path", "{bare_state_dict}"],
        ["{bare_state_dict}", "a bare state dict", "not a training checkpoint"],
    ),
    (
        "a probe head",
        "main",
        ["--checkpoint_path", "{probe_head}"],
        ["{probe_head}", "a probe-head checkpoint", "pre-training continues a pre-training checkpoint"],
    ),
    (
        "a supervised checkpoint to pre-training",
        "main",
        ["--checkpoint_path", "{supervised}"],
        ["{supervised}", "a supervised-baseline checkpoint", "pre-training continues a pre-training checkpoint"],
    ),
    (
        "a pre-training checkpoint to --supervised 1",
        "main",
        ["--supervised", "1", "--checkpoint_path", "{pretrain}"],
        ["{pretrain}", "a pre-training checkpoint", "--supervised 1 continues a supervised-baseline checkpoint"],
    ),
    (
        "another projection_dim",
        "main",
        ["--checkpoint_path", "{projection_32}"],
        ["{projection_32}", "another architecture", "model.projector.2.weight has shape (32, 512), expected (64, 512)"],
    ),
    (
        "weights without training state",
        "main",
        ["--checkpoint_path", "{weights_only}"],
        ["{weights_only}", "without optimizer_states"],
    ),
    ("another optimiser", "main", ["--checkpoint_path", "{lars}"], ["{lars}", "trained with --optimizer LARS"]),
    ("NaN weights to resume", "main", ["--checkpoint_path", "{nan_pretrain}"], ["{nan_pretrain}", "NaN or Inf"]),
    (
        "NaN encoder to probe",
        "linear_evaluation",
        ["--checkpoint_path", "{nan_pretrain}", "--log_dir", "{tmp}/runs"],
        ["--checkpoint_path {nan_pretrain}", "encoder weights hold NaN or Inf"],
    ),
    (
        "NaN encoder to embed",
        "predict",
        ["{tmp}/song.wav", "--checkpoint_path", "{nan_pretrain}", "--embeddings", "{tmp}/embeddings"],
        ["--checkpoint_path {nan_pretrain}", "NaN or Inf"],
    ),
    (
        "NaN encoder to export",
        "export",
        ["--checkpoint_path", "{nan_pretrain}", "--out", "{tmp}/exports"],
        ["--checkpoint_path {nan_pretrain}", "NaN or Inf"],
    ),
    (
        "NaN probe head",
        "predict",
        ["{tmp}/song.wav", "--checkpoint_path", "{pretrain}", "--finetuner_checkpoint_path", "{nan_head}"],
        ["--finetuner_checkpoint_path {nan_head}", "probe-head weights hold NaN"],
    ),
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
    from clmr.stages import contrastive_module, supervised_module

    folder = tmp_path_factory.mktemp("bad_checkpoints")
    cfg = load_config(["--log_dir", str(folder / "runs"), "--accelerator", "cpu"])
    files = {"marker": folder / "code_ran"}
    pretrain = _saved(contrastive_module(cfg, SampleCNN(out_dim=11)), folder / "pretrain.ckpt", cfg)
    files["pretrain"] = pretrain
    files["supervised"] = _saved(
        supervised_module(cfg, SampleCNN(supervised=True, out_dim=11), multilabel=True), folder / "supervised.ckpt", cfg
    )
    cfg32 = load_config(["--log_dir", str(folder / "runs"), "--accelerator", "cpu", "--projection_dim", "32"])
    files["projection_32"] = _saved(contrastive_module(cfg32, SampleCNN(out_dim=11)), folder / "p32.ckpt", cfg32)
    lars = load_config(["--log_dir", str(folder / "runs"), "--accelerator", "cpu", "--optimizer", "LARS"])
    files["lars"] = _saved(contrastive_module(lars, SampleCNN(out_dim=11)), folder / "lars.ckpt", lars)
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
    torch.save(
        {"state_dict": {"model.0.weight": torch.full((11, 512), float("nan")), "model.0.bias": torch.zeros(11)}},
        files["nan_head"],
    )
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
def test_a_bad_checkpoint_is_refused_in_one_line(
    case, script, flags, mentions, bad_checkpoints, tmp_path, tiny_main, run_script, monkeypatch
):
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
import json  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from conftest import ScriptResult, assert_finite_json, assert_printable, run_unprivileged  # noqa: E402

RATE = 22050
NOT_UTF8 = os.fsdecode(b"b\xffad \xe9.wav")  # bytes 0xff and 0xe9 in a name: not UTF-8


@dataclass
class Files:
    """What a FILE_CASES row builds its inputs with: a tmp folder, read-only and small folders, and a tiny
    encoder and head saved as checkpoints."""

    tmp: Path
    folders: object
    encoder: Path
    head: Path

    def wav(self, name: str, seconds: float = 3.0, poison: float | None = None, folder: str = "music") -> Path:
        """A float32 wav of music-like audio (every 997th sample `poison`, NaN or inf, when given)."""
        from clmr.export import music_like

        path = self.tmp / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        x = music_like(int(seconds * RATE), RATE, seed=len(name))
        if poison is not None:
            x[::997] = poison
        sf.write(os.fsencode(path), x, RATE, subtype="FLOAT", format="WAV")
        return path

    def music(self) -> Path:
        return self.tmp / "music"

    def model(self, *extra: str) -> list[str]:
        return ["--checkpoint_path", str(self.encoder), *extra]

    def tagger(self, *extra: str) -> list[str]:
        return ["--checkpoint_path", str(self.encoder), "--finetuner_checkpoint_path", str(self.head), *extra]


@dataclass
class FileCase:
    """A script run on a bad file or output. `refused`: what its one error line names (placeholders {tmp},
    {ro}: the tmp and read-only folders, {small}: the small one); empty: the script goes on, printing a skip
    line (stderr or the log) that names each of `skipped`, and `check` looks at its result."""

    script: str
    make: Callable[[Files], list[str]]
    refused: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    check: Callable[[Files, ScriptResult], None] | None = None
    unprivileged: bool = False  # run as a process that obeys file permissions (not root's override)


def _manifest(files: Files, folder: str = "music_22050hz") -> dict:
    return json.loads((files.tmp / folder / "manifest.json").read_text())


def _preprocess(files: Files, *extra: str) -> list[str]:
    return ["--dataset", "audio", "--dataset_dir", str(files.music()), *extra]


def _nan_and_inf(files: Files) -> list[str]:
    files.wav("good.wav"), files.wav("nan.wav", poison=np.nan), files.wav("inf.wav", poison=np.inf)
    return _preprocess(files)


def _converted_only_good(files: Files, result: ScriptResult) -> None:
    manifest = _manifest(files)
    assert {Path(f["input"]).name for f in manifest["failed"]} == {"nan.wav", "inf.wav"}
    assert [p.name for p in (files.tmp / "music_22050hz").glob("*.wav")] == ["good.wav"]
    assert "1 converted, 0 skipped, 2 failed" in result.stdout


def _odd_names(files: Files) -> list[str]:
    for name in (NOT_UTF8, "my song.wav", "café – 🎵.wav"):
        files.wav(name)
    return _preprocess(files, "--workers", "2")


def _all_converted(files: Files, result: ScriptResult) -> None:
    names = sorted(os.listdir(os.fsencode(files.tmp / "music_22050hz")))
    assert names == sorted([os.fsencode(NOT_UTF8), b"my song.wav", "café – 🎵.wav".encode(), b"manifest.json"])
    assert _manifest(files)["counts"] == {"converted": 3, "skipped": 0, "failed": 0}


def _colliding(files: Files) -> list[str]:
    for ext, fmt in (("flac", "FLAC"), ("ogg", "OGG"), ("wav", "WAV")):
        path = files.music() / f"tone.{ext}"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, np.full(RATE // 2, {"flac": 0.1, "ogg": 0.2, "wav": 0.3}[ext]), RATE, format=fmt)
    return _preprocess(files)


def _distinct_outputs(files: Files, result: ScriptResult) -> None:
    out = files.tmp / "music_22050hz"
    assert sorted(p.name for p in out.glob("*.wav")) == ["tone.flac.wav", "tone.ogg.wav", "tone.wav"]
    levels = {p.name: round(float(np.median(sf.read(p)[0])), 1) for p in out.glob("*.wav")}
    assert levels == {"tone.flac.wav": 0.1, "tone.ogg.wav": 0.2, "tone.wav": 0.3}  # none overwritten


def _into_read_only(files: Files) -> list[str]:
    files.wav("good.wav")
    return _preprocess(files, "--output_dir", str(files.folders.read_only("ro") / "out"))


def _into_full(files: Files) -> list[str]:
    files.wav("good.wav")
    small = files.folders.small(8 * 1024)
    (small / "filler.bin").write_bytes(b"\1" * 6 * 1024)
    return _preprocess(files, "--output_dir", str(small))


def _filling_up(files: Files) -> list[str]:
    for k in range(4):
        files.wav(f"{k}.wav", seconds=1.0)  # 44 kB each, as 16-bit wav at 22,050 Hz
    return _preprocess(files, "--output_dir", str(files.folders.small(100 * 1024)))


def _locked_input(files: Files) -> list[str]:
    files.wav("good.wav")
    files.wav("locked.wav").chmod(0)
    return _preprocess(files)


def _locked_reported(files: Files, result: ScriptResult) -> None:
    assert [(Path(f["input"]).name, f["reason"]) for f in _manifest(files)["failed"]] == [
        ("locked.wav", "cannot read audio (permission denied)")
    ]


def _train_on(files: Files) -> list[str]:
    files.wav(NOT_UTF8), files.wav("nan.wav", poison=np.nan), files.wav("z_valid.wav")  # 2 train tracks, 1 held out
    return [
        "--dataset",
        "audio",
        "--dataset_dir",
        str(files.music()),
        "--batch_size",
        "2",
        "--max_epochs",
        "1",
        "--limit_val_batches",
        "0",
        "--accelerator",
        "cpu",
        "--log_dir",
        str(files.tmp / "runs"),
        "--run_name",
        "hostile",
    ]


def _trained_finite(files: Files, result: ScriptResult) -> None:
    import torch

    state = torch.load(files.tmp / "runs" / "hostile" / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def _tag(files: Files) -> list[str]:
    return [str(files.wav("good.wav")), str(files.wav("nan.wav", poison=np.nan)), *files.tagger("--top_k", "3")]


def _tagged_good_only(files: Files, result: ScriptResult) -> None:
    assert result.stdout.startswith(str(files.music() / "good.wav")) and "nan" not in result.stdout.split("\n", 1)[1]
    assert "skipped 1 of 2 file(s)" in result.stderr


def _tag_odd_name(files: Files) -> list[str]:
    return [str(files.wav(NOT_UTF8)), *files.tagger("--top_k", "2")]


def _shown_escaped(files: Files, result: ScriptResult) -> None:
    assert result.stdout.startswith(f"{files.music()}/b\\xffad \\xe9.wav  0:03.0  (1 chunk)")


def _embed(files: Files) -> list[str]:
    files.wav("a.wav"), files.wav("b_nan.wav", poison=np.nan), files.wav(NOT_UTF8)
    return ["--embeddings", str(files.tmp / "emb"), str(files.music()), *files.model()]


def _embedded_finite(files: Files, result: ScriptResult) -> None:
    out = files.tmp / "emb"
    embeddings = np.load(out / "embeddings.npy")
    assert embeddings.shape == (2, 512) and np.isfinite(embeddings).all()
    meta = json.loads((out / "meta.json").read_text())
    assert [Path(f["path"]).name for f in meta["failed"]] == ["b_nan.wav"]
    index = (out / "index.csv").read_text(encoding="utf-8")  # strict UTF-8, the odd name escaped
    assert "b\\xffad \\xe9.wav" in index


def _embed_into_read_only(files: Files) -> list[str]:
    return ["--embeddings", str(files.folders.read_only("ro") / "emb"), str(files.wav("a.wav")), *files.model()]


def _embed_filling_up(files: Files) -> list[str]:
    for name in ("a.wav", "b.wav", "c.wav"):
        files.wav(name)
    return ["--embeddings", str(files.folders.small(8 * 1024)), str(files.music()), *files.model()]


def _taggram_into_read_only(files: Files) -> list[str]:
    return [str(files.wav("a.wav")), *files.tagger("--taggram", str(files.folders.read_only("ro") / "a.png"))]


def _export_into(folder: Callable[[Files], Path]) -> Callable[[Files], list[str]]:
    return lambda files: [*files.tagger("--out", str(folder(files)))]


def _full(files: Files) -> Path:
    small = files.folders.small(8 * 1024)
    (small / "filler.bin").write_bytes(b"\1" * 6 * 1024)
    return small


def _probe_into_read_only(files: Files) -> list[str]:
    return [
        "--checkpoint_path",
        "random",
        "--dataset",
        "synthetic",
        "--dataset_dir",
        str(files.tmp / "data"),
        "--log_dir",
        str(files.folders.read_only("ro") / "runs"),
    ]


FILE_CASES = [
    pytest.param(
        FileCase("preprocess", _nan_and_inf, check=_converted_only_good),
        id="preprocess-nan-and-inf-samples-failed-by-name",
    ),
    pytest.param(
        FileCase("preprocess", _odd_names, check=_all_converted), id="preprocess-names-not-utf8-spaces-unicode"
    ),
    pytest.param(FileCase("preprocess", _colliding, check=_distinct_outputs), id="preprocess-colliding-output-names"),
    pytest.param(
        FileCase("preprocess", _into_read_only, refused=("{ro}/out", "--output_dir", "Read-only file system")),
        id="preprocess-read-only-output",
    ),
    pytest.param(
        FileCase("preprocess", _into_full, refused=("{small}", "--output_dir", "No space left on device")),
        id="preprocess-full-output",
    ),
    pytest.param(
        FileCase("preprocess", _filling_up, refused=("{small}/2.wav", "No space left on device")),
        id="preprocess-disk-fills-mid-way",
    ),
    pytest.param(
        FileCase("preprocess", _locked_input, check=_locked_reported, unprivileged=True),
        id="preprocess-input-permission-denied",
    ),
    pytest.param(
        FileCase("main", _train_on, skipped=("nan.wav: holds NaN",), check=_trained_finite),
        id="main-nan-track-and-name-not-utf8",
    ),
    pytest.param(
        FileCase("predict", _tag, skipped=("nan.wav: holds NaN",), check=_tagged_good_only),
        id="predict-nan-samples-skipped",
    ),
    pytest.param(FileCase("predict", _tag_odd_name, check=_shown_escaped), id="predict-name-not-utf8"),
    pytest.param(
        FileCase("predict", _embed, skipped=("b_nan.wav: holds NaN",), check=_embedded_finite),
        id="embeddings-nan-samples-and-name-not-utf8",
    ),
    pytest.param(
        FileCase("predict", _embed_into_read_only, refused=("{ro}/emb", "--embeddings", "Read-only")),
        id="embeddings-read-only-output",
    ),
    pytest.param(
        FileCase("predict", _embed_filling_up, refused=("{small}/", "No space left on device")),
        id="embeddings-disk-fills-mid-way",
    ),
    pytest.param(
        FileCase("predict", _taggram_into_read_only, refused=("{ro}", "--taggram", "Read-only")),
        id="predict-taggram-read-only",
    ),
    pytest.param(
        FileCase(
            "export",
            _export_into(lambda f: f.folders.read_only("ro") / "exports"),
            refused=("{ro}/exports", "--out", "Read-only"),
        ),
        id="export-read-only-out",
    ),
    pytest.param(
        FileCase("export", _export_into(_full), refused=("{small}", "--out", "No space left")), id="export-full-out"
    ),
    pytest.param(
        FileCase("linear_evaluation", _probe_into_read_only, refused=("{ro}/runs", "--log_dir", "Read-only")),
        id="linear-evaluation-read-only-log-dir",
    ),
]


@pytest.fixture(scope="module")
def file_case_checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny test encoder saved as an original CLMR v1 checkpoint, and a linear head on 11 tags."""
    from conftest import save_encoder, save_head

    root = tmp_path_factory.mktemp("file_case_checkpoints")
    save_encoder(root / "encoder.pt", layout="clmr-v1")
    save_head(root / "head.ckpt", 11, {"dataset": "synthetic", "multilabel": True}, std=None)
    return root / "encoder.pt", root / "head.ckpt"


@pytest.mark.parametrize("case", FILE_CASES)
def test_bad_audio_file_or_output(case: FileCase, tmp_path, folders, file_case_checkpoints, run_script, caplog):
    files = Files(tmp_path, folders, *file_case_checkpoints)
    args = case.make(files)
    result = run_unprivileged(run_script, case.script, *args) if case.unprivileged else run_script(case.script, *args)
    assert "Traceback" not in result.stderr, result.stderr
    assert_printable(result.stdout + result.stderr)
    if case.refused:
        names = {"tmp": tmp_path, "ro": tmp_path / "ro", "small": tmp_path / "small"}
        assert_refused(result, *(m.format(**names) for m in case.refused))
        assert len([line for line in result.stderr.splitlines() if "error:" in line]) == 1, result.stderr
    else:
        assert result.code == 0, result.stderr
        shown = result.stderr + caplog.text
        for mention in case.skipped:
            assert mention in shown, f"no skip line naming {mention!r}:\n{shown}"
    assert half_written(tmp_path) == []
    for written in tmp_path.rglob("*.json"):
        assert_finite_json(json.loads(written.read_text()))
    for array in tmp_path.rglob("*.npy"):
        assert np.isfinite(np.load(array)).all(), array
    if case.check is not None:
        case.check(files, result)
