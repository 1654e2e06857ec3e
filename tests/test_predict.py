"""Using an encoder on any audio (clmr/inference.py, predict.py): whole-track tags, embeddings, the HEAR API."""
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
from clmr import evaluation
from clmr.audio import AudioFileError
from clmr.datasets.synthetic import TAGS
from clmr.export import music_like
from clmr.embeddings import embed_files
from clmr.inference import (chunk_audio, chunk_starts, encode_files, get_scene_embeddings, get_timestamp_embeddings,
                            load_model, predict_files)
from conftest import assert_finite_json, assert_printable, assert_refused, save_encoder, save_head

L, SR = 59049, 22050


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """An encoder as the original CLMR v1 saved it (a SimCLR state dict) and a linear probe head."""
    root = tmp_path_factory.mktemp("ckpt")
    return (save_encoder(root / "clmr_v1.pt", layout="clmr-v1"),
            save_head(root / "head.ckpt", len(TAGS), {"dataset": "synthetic", "multilabel": True}))


@pytest.fixture(scope="module")
def model(checkpoints):
    return load_model(*checkpoints, batch_size=4)


def stereo_and_mono(seconds: float, seed: int = 0):
    """One band-limited stereo signal, written out at 44.1 kHz stereo and, independently, its mono mix at
    22.05 kHz: partials below 5 kHz with slow amplitude envelopes, different in the two channels."""
    rng = np.random.default_rng(seed)
    partials = [(rng.uniform(60, 5000), rng.uniform(0, 2 * np.pi), rng.uniform(0.2, 3), rng.integers(0, 2))
                for _ in range(24)]

    def render(rate: int) -> np.ndarray:
        t = np.arange(int(seconds * rate)) / rate
        out = np.zeros((len(t), 2))
        for f, phase, rate_am, channel in partials:
            out[:, channel] += 0.08 * np.sin(2 * np.pi * f * t + phase) * (1 + np.sin(2 * np.pi * rate_am * t)) / 2
        return out

    return render(44100), render(22050).mean(axis=1)


def test_predict_on_44k_stereo_equals_predict_on_the_same_audio_at_22k_mono(model, tmp_path):
    stereo, mono = stereo_and_mono(8.0)
    sf.write(tmp_path / "song_44k_stereo.wav", stereo, 44100, subtype="FLOAT")
    sf.write(tmp_path / "song_22k_mono.wav", mono, 22050, subtype="FLOAT")
    a, b = predict_files([tmp_path / "song_44k_stereo.wav", tmp_path / "song_22k_mono.wav"], model)
    assert a.chunk_probs.shape == b.chunk_probs.shape == (2, len(TAGS))
    assert a.duration_s == pytest.approx(8.0, abs=1e-3) and b.duration_s == pytest.approx(8.0, abs=1e-3)
    assert np.abs(a.probs - b.probs).max() < 5e-4  # resampling error only (about 5e-5 here)
    assert [t for t, _ in a.top(3)] == [t for t, _ in b.top(3)]
    assert np.ptp(a.probs) > 0.05  # the tags really depend on the audio, so the comparison means something


def test_whole_track_score_is_the_mean_of_its_chunk_probabilities(model, tmp_path):
    sf.write(tmp_path / "long.wav", music_like(int(2.5 * L), SR, 7), SR, subtype="FLOAT")
    (pred,) = predict_files([tmp_path / "long.wav"], model)
    assert pred.chunk_probs.shape == (2, len(TAGS))  # the last half chunk is not scored, as in evaluation
    np.testing.assert_allclose(pred.probs, pred.chunk_probs.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(pred.times_ms, (np.arange(2) * L + L / 2) * 1000 / SR, rtol=1e-6)
    chunks = torch.from_numpy(music_like(int(2.5 * L), SR, 7)[:2 * L].reshape(2, L))
    np.testing.assert_allclose(pred.chunk_probs, model.tag_probabilities(model.embed_chunks(chunks)), atol=1e-6)


def test_a_file_shorter_than_a_chunk_is_padded_and_one_under_half_a_chunk_is_too_short(model, tmp_path):
    sf.write(tmp_path / "two_seconds.wav", music_like(2 * SR, SR, 8), SR, subtype="FLOAT")
    sf.write(tmp_path / "one_second.wav", music_like(SR, SR, 9), SR, subtype="FLOAT")
    padded, short = predict_files([tmp_path / "two_seconds.wav", tmp_path / "one_second.wav"], model)
    assert padded.chunk_probs.shape == (1, len(TAGS))  # zero-padded to one chunk, as evaluation pads
    audio = torch.from_numpy(sf.read(tmp_path / "two_seconds.wav", dtype="float32")[0])[None]
    np.testing.assert_allclose(padded.probs, model.tag_probabilities(get_scene_embeddings(audio, model))[0],
                               atol=1e-6)
    assert "one_second.wav: too short (1.00 s; at least 1.34 s" in short.error


def test_chunks_are_the_ones_linear_evaluation_scores():
    for n in (1, L - 1, L, L + 1, 2 * L, 5 * L + 17):
        assert chunk_starts(n, L).tolist() == evaluation.chunk_starts(n, L)
    audio = torch.arange(2 * L + 5, dtype=torch.float32)
    chunks = chunk_audio(audio, L)
    assert chunks.shape == (2, L) and torch.equal(chunks[1], audio[L:2 * L])
    assert chunk_audio(torch.ones(10), L).shape == (1, L)  # shorter than a chunk: zero-padded


def test_batching_chunks_across_files_changes_nothing(model, tmp_path):
    paths = []
    for k, n in enumerate((2 * L + 100, L, 2 * L)):
        paths.append(tmp_path / f"{k}.wav")
        sf.write(paths[-1], music_like(n, SR, 20 + k), SR, subtype="FLOAT")
    tracks = list(encode_files(paths, model))  # batch_size 4: the 2+1+2 chunks span two batches
    assert [t.n_chunks for t in tracks] == [2, 1, 2]
    for track in tracks:
        audio = torch.from_numpy(sf.read(track.path, dtype="float32")[0])
        alone = model.embed_chunks(chunk_audio(audio, L))
        torch.testing.assert_close(track.embeddings, alone, atol=1e-4, rtol=1e-4)  # float32 convolutions


def _folder_with_one_corrupt_file(root):
    root.mkdir()
    sf.write(root / "a.wav", music_like(2 * L, SR, 1), SR)
    sf.write(root / "b.flac", np.stack([music_like(3 * 44100, 44100, 2)] * 2, axis=1), 44100)
    (root / "c_corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" * 40)
    sub = root / "sub"
    sub.mkdir()
    sf.write(sub / "d.ogg", music_like(int(2.8 * 48000), 48000, 3), 48000)
    return root


def test_embeddings_for_a_folder_with_one_corrupt_file_have_n_minus_1_rows_and_name_it(checkpoints, tmp_path,
                                                                                      capsys):
    folder = _folder_with_one_corrupt_file(tmp_path / "music")
    out = tmp_path / "emb"
    predict_script.main(["--embeddings", str(out), str(folder), "--checkpoint_path", str(checkpoints[0]),
                         "--chunk_embeddings", "1", "--batch_size", "4"])
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
        np.testing.assert_allclose(embeddings[row], chunks[start:start + n].mean(axis=0), rtol=1e-5, atol=1e-6)
    model = load_model(checkpoints[0])
    audio = torch.from_numpy(sf.read(folder / "a.wav", dtype="float32")[0])[None]
    np.testing.assert_allclose(embeddings[0], get_scene_embeddings(audio, model)[0].numpy(), rtol=1e-4, atol=1e-5)


def test_embeddings_resume_where_a_killed_run_stopped(checkpoints, tmp_path, monkeypatch):
    folder = _folder_with_one_corrupt_file(tmp_path / "music")
    model = load_model(checkpoints[0], batch_size=2)
    real, calls = model.embed_chunks, []

    def dies_on_second_batch(chunks):
        calls.append(len(chunks))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(chunks)

    monkeypatch.setattr(model, "embed_chunks", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        embed_files([folder], model, tmp_path / "emb", progress=False, on_error=lambda *a: None)
    assert len(list((tmp_path / "emb" / "parts").glob("*.npz"))) == 1  # a.wav's two chunks were the first batch
    assert not (tmp_path / "emb" / "embeddings.npy").exists()
    monkeypatch.setattr(model, "embed_chunks", real)
    summary = embed_files([folder], model, tmp_path / "emb", progress=False, on_error=lambda *a: None)
    assert (summary.embedded, summary.computed, len(summary.failed)) == (3, 2, 1)
    again = embed_files([folder], model, tmp_path / "emb", progress=False, on_error=lambda *a: None)
    assert (again.embedded, again.computed) == (3, 0)
    fresh = embed_files([folder], model, tmp_path / "fresh", progress=False, on_error=lambda *a: None)
    np.testing.assert_allclose(np.load(tmp_path / "emb" / "embeddings.npy"),
                               np.load(tmp_path / "fresh" / "embeddings.npy"), rtol=1e-5, atol=1e-6)
    other = load_model("random")
    with pytest.raises(Exception, match="another model"):
        embed_files([folder], other, tmp_path / "emb", progress=False, on_error=lambda *a: None)


def test_hear_api_returns_the_documented_shapes(checkpoints):
    model = load_model(checkpoints[0])
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (22050, 512, 512)
    audio = torch.from_numpy(np.stack([music_like(int(2.5 * L), SR, s) for s in range(2)]))
    embeddings, timestamps = get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (2, 2, 512) and timestamps.shape == (2, 2)  # the last half chunk is not embedded
    np.testing.assert_allclose(timestamps[1].numpy(), [L / 2 / SR * 1000, 1.5 * L / SR * 1000], rtol=1e-6)
    scene = get_scene_embeddings(audio, model)
    assert scene.shape == (2, 512) and scene.dtype == torch.float32
    torch.testing.assert_close(scene, embeddings.mean(dim=1))
    short = get_timestamp_embeddings(torch.zeros(2, SR), model)  # 1 s: one zero-padded chunk
    assert short[0].shape == (2, 1, 512) and short[1].shape == (2, 1)
    with pytest.raises(ValueError, match="n_sounds, n_samples"):
        get_scene_embeddings(torch.zeros(SR), model)


def test_import_clmr_stays_light_and_exports_the_api():
    code = "import sys, clmr; assert 'torch' not in sys.modules and 'get_timestamp_embeddings' in dir(clmr)"
    subprocess.run([sys.executable, "-c", code], check=True)
    import clmr

    assert (clmr.load_model, clmr.get_scene_embeddings, clmr.get_timestamp_embeddings) == \
        (load_model, get_scene_embeddings, get_timestamp_embeddings)


def test_predict_script_prints_top_tags_skips_bad_files_and_draws_a_taggram(checkpoints, tmp_path, capsys):
    folder = _folder_with_one_corrupt_file(tmp_path / "music")
    enc, head = checkpoints
    args = [str(folder / "a.wav"), str(folder / "c_corrupt.wav"), str(tmp_path / "missing.mp3"),
            "--checkpoint_path", str(enc), "--finetuner_checkpoint_path", str(head), "--top_k", "3"]
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
def _float_wav(path, seconds: float = 3.0, poison: float | None = None, seed: int = 0):
    x = music_like(int(seconds * SR), SR, seed)
    if poison is not None:
        x[SR] = poison
    sf.write(os.fsencode(path), x, SR, subtype="FLOAT", format="WAV")
    return path


def test_predict_skips_a_file_holding_nan_naming_it_and_never_prints_nan(checkpoints, tmp_path, run_script):
    good, bad = _float_wav(tmp_path / "good.wav"), _float_wav(tmp_path / "bad.wav", poison=np.nan)
    inf = _float_wav(tmp_path / "inf.wav", poison=np.inf)
    enc, head = checkpoints
    result = run_script("predict", str(good), str(bad), str(inf), "--checkpoint_path", str(enc),
                        "--finetuner_checkpoint_path", str(head), "--top_k", "3")
    assert result.code == 0
    assert f"skipped {bad}: holds NaN or infinite samples (the first at frame {SR})" in result.stderr
    assert f"skipped {inf}: holds NaN" in result.stderr and "skipped 2 of 3 file(s)" in result.stderr
    assert result.stdout.startswith(str(good)) and "nan" not in result.stdout.lower().replace(str(tmp_path), "")
    as_json = run_script("predict", str(good), str(bad), "--checkpoint_path", str(enc),
                         "--finetuner_checkpoint_path", str(head), "--json", "1")
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
    good = _float_wav(tmp_path / "good.wav")
    result = run_script("predict", str(good), "--checkpoint_path", str(tmp_path / "nan_encoder.pt"),
                        "--finetuner_checkpoint_path", str(checkpoints[1]))
    assert_refused(result, "no file could be used")
    assert "good.wav: the encoder gave NaN or infinite values" in result.stderr and result.stdout == ""
    embedded = run_script("predict", "--embeddings", str(tmp_path / "emb"), str(good), "--checkpoint_path",
                          str(tmp_path / "nan_encoder.pt"))
    assert embedded.code == 1 and np.load(tmp_path / "emb" / "embeddings.npy").shape == (0, 512)


def test_embeddings_never_hold_a_nan_row_and_meta_json_lists_the_file(checkpoints, tmp_path, run_script):
    folder = tmp_path / "music"
    folder.mkdir()
    _float_wav(folder / "a.wav", seed=1)
    _float_wav(folder / "b_nan.wav", poison=np.nan, seed=2)
    _float_wav(folder / "c.wav", seed=3)
    out = tmp_path / "emb"
    result = run_script("predict", "--embeddings", str(out), str(folder), "--checkpoint_path", str(checkpoints[0]))
    assert result.code == 0 and "b_nan.wav: holds NaN" in result.stderr
    embeddings = np.load(out / "embeddings.npy")
    assert embeddings.shape == (2, 512) and np.isfinite(embeddings).all()
    meta = json.loads((out / "meta.json").read_text())
    assert [(Path(f["path"]).name, f["reason"].split(" (")[0]) for f in meta["failed"]] == \
        [("b_nan.wav", "holds NaN or infinite samples")]
    assert_finite_json(meta)


def test_a_nan_embedding_saved_by_an_earlier_version_is_computed_again(checkpoints, tmp_path):
    from clmr.embeddings import _part_path

    folder = tmp_path / "music"
    folder.mkdir()
    _float_wav(folder / "a.wav", seed=1)
    model = load_model(checkpoints[0], batch_size=4)
    embed_files([folder], model, tmp_path / "emb", progress=False)
    part = _part_path(tmp_path / "emb", folder / "a.wav")
    with np.load(part) as saved:
        arrays = {k: saved[k] for k in saved.files}
    arrays["embedding"] = np.full(512, np.nan, np.float32)  # as today's main saved a file holding NaN
    np.savez(part, **arrays)
    summary = embed_files([folder], model, tmp_path / "emb", progress=False)
    assert summary.computed == 1 and np.isfinite(np.load(tmp_path / "emb" / "embeddings.npy")).all()


NOT_UTF8 = os.fsdecode(b"b\xffad \xe9.wav")


def test_names_that_are_not_utf8_are_tagged_embedded_and_shown_escaped(checkpoints, tmp_path, run_script):
    folder = tmp_path / "music"
    folder.mkdir()
    _float_wav(folder / NOT_UTF8, seed=1)
    _float_wav(folder / "café – 🎵.wav", seed=2)
    enc, head = checkpoints
    tagged = run_script("predict", str(folder), "--checkpoint_path", str(enc), "--finetuner_checkpoint_path",
                        str(head), "--top_k", "2", "--taggram", str(tmp_path / "tg.png"))
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


def test_unwritable_outputs_are_refused_before_the_model_is_loaded(checkpoints, tmp_path, folders, run_script,
                                                                   monkeypatch):
    import predict

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output folder was checked")

    monkeypatch.setattr(predict, "load_model", no_model)
    good = _float_wav(tmp_path / "good.wav")
    target = folders.read_only()
    enc, head = checkpoints
    for flag, value in (("--embeddings", target / "emb"), ("--taggram", target / "tg.png")):
        extra = [] if flag == "--embeddings" else ["--finetuner_checkpoint_path", str(head)]
        result = run_script("predict", str(good), "--checkpoint_path", str(enc), flag, str(value), *extra)
        assert_refused(result, flag, str(value.parent if flag == "--taggram" else value), "Read-only file system")
    assert list(target.iterdir()) == []
