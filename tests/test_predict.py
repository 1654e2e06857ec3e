"""predict.py: top tags, taggrams and embeddings of files, bad files skipped, bad outputs refused."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import predict as predict_script
from clmr.audio import AudioFileError
from clmr.datasets.synthetic import TAGS
from clmr.hear import get_scene_embeddings, load_model
from conftest import assert_finite_json, assert_printable, assert_refused, float_wav, folder_with_one_corrupt_file

L, SR = 59049, 22050


NOT_UTF8 = os.fsdecode(b"b\xffad \xe9.wav")


def test_embeddings_for_a_folder_with_one_corrupt_file_have_n_minus_1_rows_and_name_it(checkpoints, tmp_path, capsys):
    folder = folder_with_one_corrupt_file(tmp_path / "music")
    out = tmp_path / "emb"
    predict_script.main(
        [
            "--embeddings",
            str(out),
            str(folder),
            "--checkpoint_path",
            str(checkpoints[0]),
            "--chunk_embeddings",
            "1",
            "--batch_size",
            "4",
        ]
    )
    captured = capsys.readouterr()
    assert "c_corrupt.wav" in captured.err and "skipped 1 of 4" in captured.err
    embeddings = np.load(out / "embeddings.npy")
    assert embeddings.shape == (3, 512) and embeddings.dtype == np.float32
    with open(out / "index.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"].rsplit("/", 1)[-1] for r in rows] == ["a.wav", "b.flac", "d.ogg"]
    assert [int(r["n_chunks"]) for r in rows] == [2, 1, 1]
    assert float(rows[1]["duration_s"]) == pytest.approx(3.0, abs=1e-3)
    meta = json.loads((out / "meta.json").read_text())
    assert [f["path"].rsplit("/", 1)[-1] for f in meta["failed"]] == ["c_corrupt.wav"]
    chunks = np.load(out / "chunk_embeddings.npy")
    assert chunks.shape == (4, 512)
    for row, r in enumerate(rows):  # each file's embedding is the mean of its chunk rows
        start, n = int(r["chunk_offset"]), int(r["n_chunks"])
        np.testing.assert_allclose(embeddings[row], chunks[start : start + n].mean(axis=0), rtol=1e-5, atol=1e-6)
    model = load_model(checkpoints[0])
    audio = torch.from_numpy(sf.read(folder / "a.wav", dtype="float32")[0])[None]
    np.testing.assert_allclose(embeddings[0], get_scene_embeddings(audio, model)[0].numpy(), rtol=1e-4, atol=1e-5)


def test_predict_script_prints_top_tags_skips_bad_files_and_draws_a_taggram(checkpoints, tmp_path, capsys):
    folder = folder_with_one_corrupt_file(tmp_path / "music")
    enc, head = checkpoints
    args = [
        str(folder / "a.wav"),
        str(folder / "c_corrupt.wav"),
        str(tmp_path / "missing.mp3"),
        "--checkpoint_path",
        str(enc),
        "--finetuner_checkpoint_path",
        str(head),
        "--top_k",
        "3",
    ]
    predict_script.main(args + ["--taggram", str(tmp_path / "tg.png")])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert lines[0].startswith(str(folder / "a.wav")) and "0:05.4" in lines[0] and "(2 chunks)" in lines[0]
    assert len(lines) == 4 and all(line.split()[0] in TAGS for line in lines[1:])
    assert "c_corrupt.wav" in captured.err and "missing.mp3: file not found" in captured.err
    assert (tmp_path / "tg_a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # several inputs: tg_<stem>.png
    predict_script.main(args[:1] + args[3:] + ["--json", "1"])
    (result,) = json.loads(capsys.readouterr().out)
    assert result["n_chunks"] == 2 and len(result["tags"]) == 3
    with pytest.raises(AudioFileError, match="no file could be used"):
        predict_script.main([str(folder / "c_corrupt.wav")] + args[3:])


# -- audio holding NaN, names of any bytes, outputs that cannot be written --------------------------


def test_predict_skips_a_file_holding_nan_naming_it_and_never_prints_nan(checkpoints, tmp_path, run_script):
    good, bad = float_wav(tmp_path / "good.wav"), float_wav(tmp_path / "bad.wav", poison=np.nan)
    inf = float_wav(tmp_path / "inf.wav", poison=np.inf)
    enc, head = checkpoints
    result = run_script(
        "predict",
        str(good),
        str(bad),
        str(inf),
        "--checkpoint_path",
        str(enc),
        "--finetuner_checkpoint_path",
        str(head),
        "--top_k",
        "3",
    )
    assert result.code == 0
    assert f"skipped {bad}: holds NaN or infinite samples (the first at frame {SR})" in result.stderr
    assert f"skipped {inf}: holds NaN" in result.stderr and "skipped 2 of 3 file(s)" in result.stderr
    assert result.stdout.startswith(str(good)) and "nan" not in result.stdout.lower().replace(str(tmp_path), "")
    as_json = run_script(
        "predict",
        str(good),
        str(bad),
        "--checkpoint_path",
        str(enc),
        "--finetuner_checkpoint_path",
        str(head),
        "--json",
        "1",
    )
    (only,) = json.loads(as_json.stdout)
    assert only["path"] == str(good)
    assert_finite_json(only)


def test_an_encoder_whose_outputs_overflow_gives_skip_lines_not_nan_scores(checkpoints, tmp_path, run_script):
    """Finite weights so large that the outputs overflow (NaN weights are refused when the checkpoint is read)."""
    state = torch.load(checkpoints[0], weights_only=True)
    for key in state:
        if key.endswith("weight"):
            state[key].fill_(1e30)  # layer after layer: 1e30, 1e60 (Inf), then NaN
    torch.save(state, tmp_path / "nan_encoder.pt")
    good = float_wav(tmp_path / "good.wav")
    result = run_script(
        "predict",
        str(good),
        "--checkpoint_path",
        str(tmp_path / "nan_encoder.pt"),
        "--finetuner_checkpoint_path",
        str(checkpoints[1]),
    )
    assert_refused(result, "no file could be used")
    assert "good.wav: the encoder gave NaN or infinite values" in result.stderr and result.stdout == ""
    embedded = run_script(
        "predict",
        "--embeddings",
        str(tmp_path / "emb"),
        str(good),
        "--checkpoint_path",
        str(tmp_path / "nan_encoder.pt"),
    )
    assert embedded.code == 1 and np.load(tmp_path / "emb" / "embeddings.npy").shape == (0, 512)


def test_embeddings_never_hold_a_nan_row_and_meta_json_lists_the_file(checkpoints, tmp_path, run_script):
    folder = tmp_path / "music"
    folder.mkdir()
    float_wav(folder / "a.wav", seed=1)
    float_wav(folder / "b_nan.wav", poison=np.nan, seed=2)
    float_wav(folder / "c.wav", seed=3)
    out = tmp_path / "emb"
    result = run_script("predict", "--embeddings", str(out), str(folder), "--checkpoint_path", str(checkpoints[0]))
    assert result.code == 0 and "b_nan.wav: holds NaN" in result.stderr
    embeddings = np.load(out / "embeddings.npy")
    assert embeddings.shape == (2, 512) and np.isfinite(embeddings).all()
    meta = json.loads((out / "meta.json").read_text())
    assert [(Path(f["path"]).name, f["reason"].split(" (")[0]) for f in meta["failed"]] == [
        ("b_nan.wav", "holds NaN or infinite samples")
    ]
    assert_finite_json(meta)


def test_names_that_are_not_utf8_are_tagged_embedded_and_shown_escaped(checkpoints, tmp_path, run_script):
    folder = tmp_path / "music"
    folder.mkdir()
    float_wav(folder / NOT_UTF8, seed=1)
    float_wav(folder / "café – 🎵.wav", seed=2)
    enc, head = checkpoints
    tagged = run_script(
        "predict",
        str(folder),
        "--checkpoint_path",
        str(enc),
        "--finetuner_checkpoint_path",
        str(head),
        "--top_k",
        "2",
        "--taggram",
        str(tmp_path / "tg.png"),
    )
    assert tagged.code == 0, tagged.stderr
    assert_printable(tagged.stdout + tagged.stderr)
    assert f"{folder}/b\\xffad \\xe9.wav  0:03.0" in tagged.stdout and f"{folder}/café – 🎵.wav" in tagged.stdout
    assert os.fsencode(tmp_path / f"tg_{Path(NOT_UTF8).stem}.png") in [os.fsencode(p) for p in tmp_path.iterdir()]
    out = tmp_path / "emb"
    embedded = run_script("predict", "--embeddings", str(out), str(folder), "--checkpoint_path", str(enc))
    assert embedded.code == 0 and np.load(out / "embeddings.npy").shape == (2, 512)
    with open(out / "index.csv", encoding="utf-8") as f:  # strict UTF-8: a faithful, escaped display
        rows = list(csv.DictReader(f))
    assert [Path(r["path"]).name for r in rows] == ["b\\xffad \\xe9.wav", "café – 🎵.wav"]


def test_unwritable_outputs_are_refused_before_the_model_is_loaded(
    checkpoints, tmp_path, folders, run_script, monkeypatch
):
    import predict

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(predict, "load_model", no_model)
    good = float_wav(tmp_path / "good.wav")
    target = folders.read_only()
    enc, head = checkpoints
    for flag, value in (("--embeddings", target / "emb"), ("--taggram", target / "tg.png")):
        extra = [] if flag == "--embeddings" else ["--finetuner_checkpoint_path", str(head)]
        result = run_script("predict", str(good), "--checkpoint_path", str(enc), flag, str(value), *extra)
        assert_refused(result, flag, str(value.parent if flag == "--taggram" else value), "Read-only file system")
    assert list(target.iterdir()) == []


def test_predict_imports_neither_lightning_nor_matplotlib():
    code = (
        "import sys, predict; heavy = [m for m in ('pytorch_lightning', 'matplotlib', 'sklearn', 'clmr.probe') "
        "if m in sys.modules]; assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
