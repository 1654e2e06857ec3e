"""Datasets: the generated `synthetic` dataset, window reads, the `audio` folder, crops and the registry."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from clmr.audio import AudioFileError, audio_info, read_window
from clmr.config import load_config
from clmr.datasets import CropDataset, DatasetError, dataset_from_config, get_dataset
from clmr.datasets.audio_folder import AudioFolder
from clmr.datasets.synthetic import MARKER, TAGS, SyntheticDataset, Track, make_track, render
from conftest import run_unprivileged

SR = 22050
SMALL = dict(n_tracks=40, duration=3.0)  # 28 / 6 / 6 tracks of 66,150 samples: generated in about a second


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    SyntheticDataset(root, "train", **SMALL)
    return root


def wav_bytes(ds: SyntheticDataset) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in ds.files}


def write_tone(
    path: Path, frames: int, sample_rate: int = SR, channels: int = 1, freq: float = 440.0, fmt: str | None = None
) -> np.ndarray:
    t = np.arange(frames) / sample_rate
    audio = 0.5 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(int(freq)).standard_normal(frames)
    audio = np.repeat(audio[:, None], channels, 1) if channels > 1 else audio
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sample_rate, format=fmt)
    return audio


# -- synthetic: the folder on disk ------------------------------------------------------------
def test_synthetic_subsets_are_disjoint_70_15_15(synthetic_root):
    subsets = {s: SyntheticDataset(synthetic_root, s, **SMALL) for s in ("train", "valid", "test")}
    assert {s: len(ds) for s, ds in subsets.items()} == {"train": 28, "valid": 6, "test": 6}
    files = [f for ds in subsets.values() for f in ds.files]
    assert len(set(files)) == 40
    assert all(f.parent.name == s for s, ds in subsets.items() for f in ds.files)
    assert all(
        info.frames == 3 * SR and info.sample_rate == SR and info.channels == 1
        for ds in subsets.values()
        for info in ds.infos
    )


def test_synthetic_tags_are_multi_hot_with_positives_and_negatives_in_train(synthetic_root):
    train = SyntheticDataset(synthetic_root, "train", **SMALL)
    assert train.multilabel and train.tag_names == TAGS and train.n_classes == len(TAGS)
    assert train.targets.dtype == np.float32 and train.targets.shape == (28, len(TAGS))
    assert set(np.unique(train.targets)) == {0.0, 1.0}
    assert (train.targets[:, :4].sum(1) >= 1).all()  # at least one melodic instrument per track
    assert ((train.targets.sum(0) > 0) & (train.targets.sum(0) < len(train))).all(), train.targets.sum(0)


def test_synthetic_labels_are_what_was_generated(synthetic_root):
    test = SyntheticDataset(synthetic_root, "test", **SMALL)
    folder = test.files[0].parents[1]
    assert json.loads((folder / "tags.json").read_text())["tags"] == TAGS
    tracks = {t["file"]: t for t in json.loads((folder / "tracks.json").read_text())}
    for path, target in zip(test.files, test.targets):
        index = int(path.stem)
        track, audio = make_track(42, index, SR, 3.0)
        assert [TAGS[i] for i in np.flatnonzero(target)] == track.tags() == tracks[f"test/{path.name}"]["tags"]
        assert tracks[f"test/{path.name}"]["tempo"] == track.tempo
        stored, _ = sf.read(path, dtype="float32")
        np.testing.assert_allclose(stored, audio, atol=1 / 32768)  # 16-bit quantisation


def test_synthetic_items_are_crops_with_multi_hot_labels(synthetic_root):
    train = SyntheticDataset(synthetic_root, "train", **SMALL)
    audio, label = train[3]
    assert audio.shape == (1, 59049) and audio.dtype == torch.float32
    assert torch.equal(label, torch.from_numpy(train.targets[3]))
    views, label = CropDataset(train)[0]
    assert views.shape == (2, 1, 59049) and label.shape == (len(TAGS),)


def test_synthetic_is_deterministic_from_the_seed(tmp_path):
    first = SyntheticDataset(tmp_path / "a", "train", n_tracks=10, duration=3.0)
    again = SyntheticDataset(tmp_path / "b", "train", n_tracks=10, duration=3.0)
    assert wav_bytes(again) == wav_bytes(first)
    np.testing.assert_array_equal(again.targets, first.targets)
    other = SyntheticDataset(tmp_path / "a", "train", n_tracks=10, duration=3.0, seed=7)
    assert other.files[0].parents[1] != again.files[0].parents[1]  # a folder of its own
    assert not set(wav_bytes(other).values()) & set(wav_bytes(again).values())
    assert not np.array_equal(other.targets, again.targets)


def test_synthetic_track_does_not_depend_on_how_many_are_generated(tmp_path):
    few = SyntheticDataset(tmp_path, "train", n_tracks=10, duration=3.0)
    many = SyntheticDataset(tmp_path, "train", n_tracks=20, duration=3.0)
    assert few.files[0].parents[1] != many.files[0].parents[1]
    assert [f.name for f in few.files] == [f"{i:05d}.wav" for i in range(6)]
    assert wav_bytes(few) == {name: data for name, data in wav_bytes(many).items() if name in wav_bytes(few)}
    np.testing.assert_array_equal(few.targets, many.targets[:6])


def test_synthetic_folder_without_its_marker_is_generated_again(tmp_path, caplog):
    ds = SyntheticDataset(tmp_path, "valid", n_tracks=10, duration=3.0)
    folder, original = ds.files[0].parents[1], wav_bytes(ds)
    (folder / MARKER).unlink()  # as if the process died before the end
    ds.files[0].write_bytes(b"half a file")
    (folder / "annotations.csv").unlink()
    (folder / "valid" / ".00008.tmp-x.wav").write_bytes(b"left by a kill")
    with caplog.at_level(logging.INFO, logger="clmr.datasets.synthetic"):
        again = SyntheticDataset(tmp_path, "valid", n_tracks=10, duration=3.0)
    assert "incomplete" in caplog.text and "generated 10 tracks" in caplog.text
    assert wav_bytes(again) == original and (folder / MARKER).is_file()
    assert not list(folder.rglob(".*tmp-*"))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="clmr.datasets.synthetic"):
        SyntheticDataset(tmp_path, "valid", n_tracks=10, duration=3.0)
    assert "generat" not in caplog.text  # complete now: used as it is


def test_synthetic_marker_from_other_settings_is_not_trusted(tmp_path, caplog):
    ds = SyntheticDataset(tmp_path, "test", n_tracks=10, duration=3.0)
    marker = ds.files[0].parents[1] / MARKER
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "version": 0}))
    with caplog.at_level(logging.INFO, logger="clmr.datasets.synthetic"):
        SyntheticDataset(tmp_path, "test", n_tracks=10, duration=3.0)
    assert "generated 10 tracks" in caplog.text


def test_synthetic_processes_starting_together_generate_once(tmp_path, caplog):
    made, errors = [], []

    def build(subset):
        try:
            made.append(SyntheticDataset(tmp_path, subset, n_tracks=10, duration=3.0))
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    with caplog.at_level(logging.INFO, logger="clmr.datasets.synthetic"):
        threads = [threading.Thread(target=build, args=(s,)) for s in ("train", "train", "valid", "test")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors and len(made) == 4
    assert caplog.text.count("generating the synthetic dataset") == 1
    assert sum(len(ds) for ds in made) == 6 + 6 + 2 + 2


def test_synthetic_from_config_reads_its_keys(tmp_path):
    cfg = load_config(
        ["--dataset_dir", str(tmp_path), "--synthetic_tracks", "12", "--synthetic_duration", "3", "--seed", "5"]
    )
    ds = dataset_from_config(cfg, "valid")
    assert isinstance(ds, SyntheticDataset) and len(ds) == 2
    assert ds.files[0].parents[1].name == "v1-seed5-12x3s-22050hz"


def test_synthetic_rejects_tracks_shorter_than_a_crop_and_too_few_tracks(tmp_path):
    with pytest.raises(DatasetError, match="shorter than audio_length 59049"):
        SyntheticDataset(tmp_path, "train", duration=2.0)
    with pytest.raises(DatasetError, match="at least 3"):
        SyntheticDataset(tmp_path, "train", n_tracks=2, duration=3.0)
    assert not (tmp_path / "synthetic").exists()


# -- synthetic: the tags are in the signal ------------------------------------------------------
STRINGS_ONLY = Track(
    tempo=100.0,
    tonic=0,
    minor=False,
    high=False,
    instruments=("strings",),
    bass=False,
    drums=False,
    hihat=False,
    reverb=False,
    tuning=0.0,
)


def power_spectrogram(audio: np.ndarray, n_fft: int = 1024, hop: int = 256) -> tuple[np.ndarray, np.ndarray]:
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop] * np.hanning(n_fft)
    return np.abs(np.fft.rfft(frames)) ** 2, np.fft.rfftfreq(n_fft, 1 / SR)


def test_synthetic_drums_add_percussive_bursts_on_the_beat():
    track = dataclasses.replace(STRINGS_ONLY, drums=True)
    with_drums = render(track, SR, 3.0, np.random.default_rng(0))
    without = render(STRINGS_ONLY, SR, 3.0, np.random.default_rng(0))

    def bright_envelope(audio):
        power, freqs = power_spectrogram(audio)
        return power[:, freqs > 1500].sum(1)

    def peakiness(audio):
        env = bright_envelope(audio)
        return np.percentile(env, 95) / np.median(env)

    assert peakiness(with_drums) > 3 * peakiness(without)
    env, beat_frames = bright_envelope(with_drums), 0.6 * SR / 256  # 100 bpm
    snares = [int(b * beat_frames) for b in (1, 3)]  # beats 2 and 4
    for frame in snares:
        assert env[frame : frame + 4].max() > 10 * np.median(env)


def test_synthetic_high_register_has_a_higher_spectral_centroid():
    for instrument in ("piano", "strings", "synth", "bells"):
        low = dataclasses.replace(STRINGS_ONLY, instruments=(instrument,))
        centroids = []
        for track in (low, dataclasses.replace(low, high=True)):
            power, freqs = power_spectrogram(render(track, SR, 3.0, np.random.default_rng(1)))
            centroids.append((power.sum(0) * freqs).sum() / power.sum())
        assert centroids[1] > 1.5 * centroids[0], (instrument, centroids)


# -- window reads --------------------------------------------------------------------------------
def test_read_window_returns_exactly_the_samples_from_start(tmp_path):
    path = tmp_path / "ramp.wav"
    samples = np.random.default_rng(0).integers(-30000, 30000, 5000).astype(np.int16)
    sf.write(str(path), samples, SR, subtype="PCM_16")
    full, _ = sf.read(str(path), dtype="float32")
    for start, n in [(0, 100), (1234, 777), (4000, 1000)]:
        np.testing.assert_array_equal(read_window(path, start, n), full[start : start + n])
    ds = AudioFolder(tmp_path, "train", audio_length=1000)
    window = ds.read(0, 321, 1000)
    assert window.shape == (1, 1000) and window.dtype == torch.float32
    np.testing.assert_array_equal(window[0].numpy(), full[321:1321])


def test_read_window_past_the_end_is_zero_padded(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(str(path), np.full(100, 0.25, np.float32), SR, subtype="FLOAT")
    window = read_window(path, 60, 100)
    np.testing.assert_array_equal(window[:40], 0.25)
    np.testing.assert_array_equal(window[40:], 0.0)
    np.testing.assert_array_equal(read_window(path, 100, 10), np.zeros(10, np.float32))
    np.testing.assert_array_equal(read_window(path, 500, 10), np.zeros(10, np.float32))


def test_audio_info_of_a_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(AudioFileError, match="corrupt.wav"):
        audio_info(path)
    with pytest.raises(AudioFileError, match="missing.wav"):
        audio_info(tmp_path / "missing.wav")


# -- the `audio` folder dataset ------------------------------------------------------------------
def test_audio_folder_finds_wav_flac_and_ogg_recursively(tmp_path):
    write_tone(tmp_path / "a.wav", 4000)
    write_tone(tmp_path / "album" / "b.flac", 4000)
    write_tone(tmp_path / "album" / "disc 2" / "c.ogg", 4000, fmt="OGG")
    (tmp_path / "notes.txt").write_text("not audio")
    ds = AudioFolder(tmp_path, "valid", audio_length=1000)
    train = AudioFolder(tmp_path, "train", audio_length=1000)
    assert sorted(p.name for p in train.files + ds.files) == ["a.wav", "b.flac", "c.ogg"]
    assert not train.labelled and train.label(0).numel() == 0
    assert [info.frames for info in train.infos] == [4000, 4000]


def test_audio_folder_missing_or_empty_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        AudioFolder(tmp_path / "nowhere", "train")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no audio files"):
        AudioFolder(tmp_path / "empty", "train")


@pytest.mark.parametrize("rate, channels", [(44100, 1), (SR, 2)], ids=["44.1kHz", "stereo"])
def test_audio_folder_wrong_format_asks_for_preprocess(tmp_path, rate, channels):
    write_tone(tmp_path / "a-wrong.wav", 4000, sample_rate=rate, channels=channels)
    write_tone(tmp_path / "b-good.wav", 4000)  # held out
    ds = AudioFolder(tmp_path, "train", audio_length=1000)
    with pytest.raises(AudioFileError, match=r"wrong\.wav.*preprocess\.py"):
        ds.infos


def test_audio_folder_skips_and_counts_unreadable_files(tmp_path, caplog):
    for name in ("a.wav", "c.wav", "d.wav"):
        write_tone(tmp_path / name, 3000)
    (tmp_path / "b.wav").write_bytes(b"not a wav file at all")
    ds = AudioFolder(tmp_path, "train", audio_length=1000)
    with caplog.at_level(logging.WARNING):
        infos = ds.infos
    assert [p.name for p in ds.files] == ["a.wav", "c.wav"] and len(infos) == 2  # d.wav is held out
    assert "b.wav" in caplog.text and "skipped 1 unreadable file(s) of 3" in caplog.text


def test_audio_folder_of_only_unreadable_files_is_an_error(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="no readable audio files"):
        AudioFolder(tmp_path, "train").infos


# -- crops ---------------------------------------------------------------------------------------
def test_crop_dataset_returns_two_views_and_skips_short_tracks(tmp_path, caplog):
    write_tone(tmp_path / "a.wav", 3000)
    write_tone(tmp_path / "b.wav", 500)  # shorter than a crop
    write_tone(tmp_path / "c.wav", 2000)
    write_tone(tmp_path / "z.wav", 2000)  # held out
    ds = AudioFolder(tmp_path, "train", audio_length=1000)
    with caplog.at_level(logging.WARNING):
        crops = CropDataset(ds)
    assert len(crops) == 2 and "b.wav" in caplog.text and "shorter than 1000" in caplog.text
    views, label = crops[0]
    assert views.shape == (2, 1, 1000) and views.dtype == torch.float32 and label.numel() == 0
    assert CropDataset(ds, n_views=None)[1][0].shape == (1, 1000)


def test_crop_dataset_with_no_long_track_is_an_error(tmp_path):
    write_tone(tmp_path / "a.wav", 500)
    with pytest.raises(DatasetError, match="at least 1000 samples"):
        CropDataset(AudioFolder(tmp_path, "train", audio_length=1000))


def test_crop_dataset_substitutes_a_track_that_fails_to_decode(tmp_path, caplog):
    n = 20000
    for name, level in (("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.4)):
        noise = np.random.default_rng(len(name)).uniform(-0.05, 0.05, n)
        sf.write(str(tmp_path / f"{name}.flac"), level + noise, SR)
    body = bytearray((tmp_path / "b.flac").read_bytes())
    body[200:-200] = np.random.default_rng(0).integers(0, 256, len(body) - 400, dtype=np.uint8).tobytes()
    (tmp_path / "b.flac").write_bytes(bytes(body))  # the header still reads: the body does not decode
    ds = AudioFolder(tmp_path, "train", audio_length=n)  # a crop is the whole track: offset 0
    crops = CropDataset(ds, n_views=1)
    assert len(crops) == 3 and audio_info(tmp_path / "b.flac").frames == n
    with caplog.at_level(logging.WARNING):
        views, _ = crops[1]
    assert abs(float(views.mean()) - 0.3) < 0.01  # c.flac stood in for b.flac
    assert "b.flac" in caplog.text and crops.failed == {1}
    assert abs(float(crops[0][0].mean()) - 0.1) < 0.01 and abs(float(crops[2][0].mean()) - 0.3) < 0.01


def test_crop_dataset_substitutes_a_track_whose_window_holds_nan_or_inf(tmp_path, caplog):
    n = 5000
    for name, level in (("a", 0.1), ("b", 0.2), ("c", 0.3), ("d", 0.4)):
        x = np.full(n, level, np.float32)
        if name == "b":
            x[1234] = np.nan
        sf.write(str(tmp_path / f"{name}.wav"), x, SR, subtype="FLOAT")
    crops = CropDataset(AudioFolder(tmp_path, "train", audio_length=n), n_views=2)  # a crop is the whole track
    with caplog.at_level(logging.WARNING):
        views, _ = crops[1]
    assert torch.isfinite(views).all() and abs(float(views.mean()) - 0.3) < 1e-6  # c.wav stood in for b.wav
    assert "b.wav: holds NaN or infinite samples (the first at frame 1234)" in caplog.text and crops.failed == {1}


def test_read_window_refuses_infinite_samples_and_reads_the_finite_parts_of_the_file(tmp_path):
    x = np.zeros(3000, np.float32)
    x[2500] = np.inf
    sf.write(str(tmp_path / "inf.wav"), x, SR, subtype="FLOAT")
    with pytest.raises(AudioFileError, match=r"inf\.wav: holds NaN or infinite samples \(the first at frame 2500\)"):
        read_window(tmp_path / "inf.wav", 2000, 1000)
    np.testing.assert_array_equal(read_window(tmp_path / "inf.wav", 0, 1000), np.zeros(1000, np.float32))


def test_audio_folder_reads_names_that_are_not_utf8_or_hold_spaces_and_unicode(tmp_path, caplog):
    import os

    names = [os.fsdecode(b"b\xffad.wav"), "my song.flac", "café – 🎵.ogg", os.fsdecode(b"z\xe9.wav")]
    for k, name in enumerate(names):
        audio = 0.1 * (k + 1) * np.ones(3000)
        sf.write(
            os.fsencode(tmp_path / name),
            audio,
            SR,
            format={".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}[Path(name).suffix],
        )
    ds = AudioFolder(tmp_path, "train", audio_length=1000)
    crops = CropDataset(ds, n_views=1)
    assert len(crops) == 3 and not crops.failed
    assert [round(float(crops[i][0].mean()), 2) for i in range(3)] == [0.1, 0.3, 0.2]  # sorted: b, c, m; z held out
    (tmp_path / names[0]).write_bytes(b"junk")  # unreadable now: its warning is printable
    with caplog.at_level(logging.WARNING):
        AudioFolder(tmp_path, "train", audio_length=1000).infos
    assert "b\\xffad.wav: cannot read audio" in caplog.text
    caplog.text.encode("utf-8")


def test_audio_folder_skips_a_file_it_may_not_read_saying_so(tmp_path):
    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        write_tone(tmp_path / name, 3000)
    (tmp_path / "b.wav").chmod(0)

    def scan() -> tuple[list[str], str]:
        with caplog_to_text() as text:
            ds = AudioFolder(tmp_path, "train", audio_length=1000)
            ds.infos
        return [p.name for p in ds.files], text.getvalue()

    files, warnings = run_unprivileged(scan)
    assert files == ["a.wav", "c.wav"] and "b.wav: cannot read audio (permission denied)" in warnings


@contextlib.contextmanager
def caplog_to_text():
    """The warnings of clmr.datasets as text (in a process where pytest's caplog does not reach)."""
    text = io.StringIO()
    handler = logging.StreamHandler(text)
    logger = logging.getLogger("clmr.datasets")
    logger.addHandler(handler)
    try:
        yield text
    finally:
        logger.removeHandler(handler)


# -- the registry --------------------------------------------------------------------------------
def test_get_dataset_unknown_name_lists_the_valid_ones(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset 'mtat'.*synthetic.*magnatagatune"):
        get_dataset("mtat", tmp_path, "train")
    with pytest.raises(DatasetError, match="unknown subset 'dev'"):
        get_dataset("audio", tmp_path, "dev")
