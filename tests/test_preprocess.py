"""preprocess.py and clmr.preprocessing: mixed folders to mono 16-bit wav, corrupt files, resumability."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import preprocess
from clmr.datasets.magnatagatune import BROKEN_CLIPS, MagnaTagATune
from clmr.preprocessing import Job, PreprocessError, convert_all, convert_file, plan_mirror, summary
from conftest import assert_refused, half_written, run_unprivileged

ROOT = Path(__file__).resolve().parents[1]
RATE = 22050


def tone(freq: float, seconds: float, rate: int, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def can_write_mp3() -> bool:
    return "MP3" in sf.available_formats()


def mixed_folder(root: Path) -> dict[str, float]:
    """Files of several formats, rates and channel counts, a corrupt and an empty one; returns name -> seconds."""
    root.mkdir(parents=True)
    (root / "sub").mkdir()
    durations = {}
    sf.write(root / "a_stereo_44k.wav", tone(1000, 1.0, 44100, channels=2), 44100)
    durations["a_stereo_44k.wav"] = 1.0
    sf.write(root / "sub" / "b_mono_48k.flac", tone(440, 0.5, 48000), 48000, format="FLAC")
    durations["sub/b_mono_48k.flac"] = 0.5
    sf.write(root / "c_stereo_32k.ogg", tone(300, 0.8, 32000, channels=2), 32000, format="OGG", subtype="VORBIS")
    durations["c_stereo_32k.ogg"] = 0.8
    sf.write(root / "sub" / "d_22k.aiff", tone(200, 0.3, RATE), RATE, format="AIFF")
    durations["sub/d_22k.aiff"] = 0.3
    if can_write_mp3():
        sf.write(root / "e_16k.mp3", tone(500, 1.2, 16000), 16000, format="MP3", subtype="MPEG_LAYER_III")
        durations["e_16k.mp3"] = 1.2
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    (root / "sub" / "empty.flac").write_bytes(b"")
    (root / "notes.txt").write_text("not audio")
    return durations


def load_manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_a_mixed_folder_becomes_mono_16_bit_wav_at_the_target_rate(tmp_path):
    durations = mixed_folder(tmp_path / "in")
    out = tmp_path / "out"
    manifest = convert_all(plan_mirror(tmp_path / "in", out), out, RATE, workers=0, progress=False)
    assert manifest["counts"] == {"converted": len(durations), "skipped": 0, "failed": 2}
    for name, seconds in durations.items():
        wav = (out / name).with_suffix(".wav")
        info = sf.info(wav)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (RATE, 1, "PCM_16", "WAV")
        slack = 0.1 if name.endswith(".mp3") else 0.002  # mp3 adds encoder delay and padding
        assert abs(info.frames / RATE - seconds) <= slack, name
    assert not (out / "notes.wav").exists()
    # the 1 kHz tone is still at 1 kHz, and the stereo channels were averaged, not summed
    x, _ = sf.read(out / "a_stereo_44k.wav")
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * RATE / len(x) - 1000) < 2
    assert 0.45 < np.max(np.abs(x)) < 0.55
    assert len(list(out.rglob("*.tmp-*"))) == 0


def test_corrupt_and_empty_inputs_are_recorded_with_reasons_not_fatal(tmp_path):
    mixed_folder(tmp_path / "in")
    out = tmp_path / "out"
    convert_all(plan_mirror(tmp_path / "in", out), out, RATE, workers=0, progress=False)
    failed = {Path(f["input"]).name: f["reason"] for f in load_manifest(out)["failed"]}
    assert set(failed) == {"corrupt.wav", "empty.flac"}
    assert failed["empty.flac"] == "empty file (0 bytes)"
    assert "cannot read audio" in failed["corrupt.wav"] or "decode" in failed["corrupt.wav"]
    assert not (out / "corrupt.wav").exists()


def test_a_second_run_does_no_work(tmp_path):
    mixed_folder(tmp_path / "in")
    out = tmp_path / "out"
    first = convert_all(plan_mirror(tmp_path / "in", out), out, RATE, workers=0, progress=False)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    second = convert_all(plan_mirror(tmp_path / "in", out), out, RATE, workers=0, progress=False)
    assert second["counts"]["converted"] == 0
    assert second["counts"]["skipped"] == first["counts"]["converted"]
    assert {s["reason"] for s in second["skipped"]} == {"up to date"}
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == stamps
    # the corrupt inputs are still reported, from the last run, without being decoded again
    assert sorted(Path(f["input"]).name for f in second["failed"]) == ["corrupt.wav", "empty.flac"]
    assert all("unchanged since the last run" in f["reason"] for f in second["failed"])
    third = convert_all(plan_mirror(tmp_path / "in", out), out, RATE, workers=0, progress=False)
    assert [f["reason"] for f in third["failed"]] == [f["reason"] for f in second["failed"]]


def test_a_rerun_redoes_half_written_and_wrong_rate_outputs_only(tmp_path):
    mixed_folder(tmp_path / "in")
    out = tmp_path / "out"
    convert_all(plan_mirror(tmp_path / "in", out), out, RATE, workers=0, progress=False)
    (out / "a_stereo_44k.wav").write_bytes(b"RIFF\x24\x00")  # damaged output under the final name
    sf.write(out / "c_stereo_32k.wav", np.zeros(100), 16000)  # left by a run at another rate
    stale = out / "sub" / ".d_22k.tmp-abc123.wav"  # temporary of a killed run
    stale.write_bytes(b"half")
    (tmp_path / "in" / "corrupt.wav").write_bytes(b"still corrupt but changed")
    manifest = convert_all(plan_mirror(tmp_path / "in", out), out, RATE, workers=0, progress=False)
    assert sorted(Path(c["input"]).name for c in manifest["converted"]) == ["a_stereo_44k.wav", "c_stereo_32k.ogg"]
    assert not stale.exists()
    assert [Path(f["input"]).name for f in manifest["failed"] if "unchanged" not in f["reason"]] == ["corrupt.wav"]
    assert sf.info(out / "c_stereo_32k.wav").samplerate == RATE


def test_worker_processes_give_the_same_files_as_one_process(tmp_path):
    mixed_folder(tmp_path / "in")
    serial = convert_all(
        plan_mirror(tmp_path / "in", tmp_path / "one"), tmp_path / "one", RATE, workers=0, progress=False
    )
    parallel = convert_all(
        plan_mirror(tmp_path / "in", tmp_path / "two"), tmp_path / "two", RATE, workers=2, progress=False
    )
    assert parallel["counts"] == serial["counts"]
    for wav in (tmp_path / "one").rglob("*.wav"):
        twin = tmp_path / "two" / wav.relative_to(tmp_path / "one")
        assert np.array_equal(sf.read(wav)[0], sf.read(twin)[0])


def test_a_file_that_kills_its_worker_process_fails_alone(tmp_path, monkeypatch):
    import clmr.preprocessing as pre

    src = tmp_path / "in"
    src.mkdir()
    for n in range(8):
        sf.write(src / f"{n}.wav", tone(440, 0.1, 8000), 8000)
    real = pre.convert_file

    def crashing(job, sample_rate):  # runs in the forked workers
        if job.src.name == "3.wav":
            os._exit(1)
        return real(job, sample_rate)

    monkeypatch.setattr(pre, "convert_file", crashing)
    manifest = convert_all(plan_mirror(src, tmp_path / "out"), tmp_path / "out", RATE, workers=2, progress=False)
    assert manifest["counts"] == {"converted": 7, "skipped": 0, "failed": 1}
    assert Path(manifest["failed"][0]["input"]).name == "3.wav"
    assert "crashed" in manifest["failed"][0]["reason"]


def test_mp3_input_is_decoded_even_where_libsndfile_cannot_write_it(tmp_path):
    if not can_write_mp3():
        pytest.skip("this libsndfile cannot write mp3 to make the fixture")
    sf.write(tmp_path / "clip.mp3", tone(440, 2.0, 16000), 16000, format="MP3", subtype="MPEG_LAYER_III")
    result = convert_file(Job(tmp_path / "clip.mp3", tmp_path / "clip.wav"), RATE)
    assert result.status == "converted" and abs(result.seconds - 2.0) < 0.1


def test_mtat_preprocess_skips_the_three_broken_clips_with_the_reason(tmp_path):
    mp3 = tmp_path / "magnatagatune" / "mp3"
    for rel in BROKEN_CLIPS.values():
        (mp3 / rel).parent.mkdir(parents=True, exist_ok=True)
        (mp3 / rel).write_bytes(b"")
    (mp3 / "0").mkdir()
    sf.write(mp3 / "0" / "fine-1-30.mp3", tone(440, 0.5, 16000), 16000, format="MP3", subtype="MPEG_LAYER_III")
    manifest = MagnaTagATune.prepare(tmp_path, RATE)
    assert manifest["counts"] == {"converted": 1, "skipped": 3, "failed": 0}
    reasons = {Path(s["input"]).relative_to(mp3).as_posix(): s["reason"] for s in manifest["skipped"]}
    for clip, rel in BROKEN_CLIPS.items():
        assert clip in reasons[rel] and "broken" in reasons[rel]


def test_missing_mtat_audio_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(Exception, match="--download"):
        MagnaTagATune.prepare(tmp_path, RATE)


# -- the script ----------------------------------------------------------------------------------
def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "preprocess.py"), *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_preprocess_script_converts_an_audio_folder_beside_it(tmp_path):
    durations = mixed_folder(tmp_path / "music")
    done = run_script(
        "--dataset", "audio", "--dataset_dir", str(tmp_path / "music"), "--sample_rate", "16000", "--workers", "2"
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "music_16000hz"
    assert f"{len(durations)} converted, 0 skipped, 2 failed" in done.stdout
    assert "corrupt.wav" in done.stdout and (out / "manifest.json").is_file()
    assert sf.info(out / "sub" / "b_mono_48k.wav").samplerate == 16000
    again = run_script(
        "--dataset",
        "audio",
        "--dataset_dir",
        str(tmp_path / "music"),
        "--sample_rate",
        "16000",
        "--output_dir",
        str(out),
    )
    assert again.returncode == 0 and "0 converted" in again.stdout


def test_preprocess_script_fails_with_one_line_for_bad_input(tmp_path):
    missing = run_script("--dataset", "audio", "--dataset_dir", str(tmp_path / "nope"))
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope'}: folder not found (--dataset_dir)"]
    bad_flag = run_script("--dataset", "audio", "--sampel_rate", "8000")
    assert bad_flag.returncode != 0 and "did you mean --sample_rate" in bad_flag.stderr
    bad_value = run_script("--dataset", "audio", "--workers", "many")
    assert bad_value.returncode != 0 and "--workers" in bad_value.stderr
    unknown = run_script("--dataset", "imagenet", "--dataset_dir", str(tmp_path))
    assert unknown.returncode != 0 and "unknown dataset 'imagenet'" in unknown.stderr


def test_download_may_be_given_as_a_bare_flag():
    from clmr.config import bare_switches

    assert bare_switches(["--download", "--workers", "2"], ["download"]) == ["--download", "1", "--workers", "2"]
    assert bare_switches(["--workers", "2", "--download"], ["download"]) == ["--workers", "2", "--download", "1"]
    assert bare_switches(["--download", "0"], ["download"]) == ["--download", "0"]


def test_preprocess_main_handles_gtzan_in_process(tmp_path, capsys):
    genres = tmp_path / "gtzan" / "genres" / "jazz"
    genres.mkdir(parents=True)
    sf.write(genres / "jazz.00001.wav", tone(440, 0.2, RATE), RATE)
    (genres / "jazz.00054.wav").write_bytes(os.urandom(64))  # unreadable, as in some copies
    preprocess.main(["--dataset", "gtzan", "--dataset_dir", str(tmp_path)])
    text = capsys.readouterr().out
    assert "gtzan: 1 converted, 0 skipped, 1 failed" in text and "jazz.00054.wav" in text


# -- bad audio, any file name, outputs that collide or cannot be written ---------------------------
def float_wav(path: Path, seconds: float = 0.5, poison: float | None = None, at: int = 100) -> Path:
    """A float32 wav of a tone; with `poison` (NaN or inf) written at sample `at`."""
    x = tone(440, seconds, RATE).astype(np.float32)
    if poison is not None:
        x[at] = poison
    sf.write(os.fsencode(path), x, RATE, subtype="FLOAT", format="WAV")
    return path


def test_float_files_holding_nan_or_inf_are_failed_with_the_reason_not_converted_to_full_scale(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    float_wav(src / "good.wav")
    float_wav(src / "nan.wav", poison=np.nan)
    float_wav(src / "inf.wav", poison=-np.inf, at=7)
    out = tmp_path / "out"
    manifest = convert_all(plan_mirror(src, out), out, RATE, workers=0, progress=False)
    failed = {Path(f["input"]).name: f["reason"] for f in manifest["failed"]}
    assert set(failed) == {"nan.wav", "inf.wav"}
    assert "NaN or infinite samples" in failed["nan.wav"] and "frame 100" in failed["nan.wav"]
    assert "frame 7" in failed["inf.wav"]
    assert sorted(p.name for p in out.glob("*.wav")) == ["good.wav"]
    again = convert_all(plan_mirror(src, out), out, RATE, workers=0, progress=False)
    assert all("unchanged since the last run" in f["reason"] for f in again["failed"])  # not decoded again


def test_names_that_are_not_utf8_or_hold_spaces_and_unicode_are_converted_and_listed(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    names = [os.fsdecode(b"b\xffad.wav"), "my song.wav", "café – 🎵.wav", os.fsdecode(b"latin\xe9.flac")]
    for name in names:
        sf.write(os.fsencode(src / name), tone(440, 0.2, RATE), RATE, format="FLAC" if name.endswith("flac") else "WAV")
    (src / os.fsdecode(b"broken\xff.wav")).write_bytes(b"RIFF junk")
    out = tmp_path / "out"
    manifest = convert_all(plan_mirror(src, out), out, RATE, workers=2, progress=False)
    assert manifest["counts"]["converted"] == 4
    assert [os.fsencode(Path(f["input"]).name) for f in manifest["failed"]] == [b"broken\xff.wav"]
    on_disk = sorted(os.listdir(os.fsencode(out)))
    assert on_disk == sorted(
        [b"b\xffad.wav", b"my song.wav", "café – 🎵.wav".encode(), b"latin\xe9.wav", b"manifest.json"]
    )
    reread = json.loads((out / "manifest.json").read_text())  # valid JSON; the exact names come back
    assert sorted(os.fsencode(Path(c["output"]).name) for c in reread["converted"]) == sorted(
        n for n in on_disk if n != b"manifest.json"
    )
    printed = summary(manifest)
    printed.encode("utf-8")  # what preprocess.py prints: printable on any terminal
    assert f"failed: {src}/broken\\xff.wav: cannot read audio" in printed


def test_outputs_that_would_collide_get_distinct_names_and_none_is_overwritten(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "tone.flac", tone(200, 0.3, RATE), RATE, format="FLAC")
    sf.write(src / "tone.ogg", tone(300, 0.3, RATE), RATE, format="OGG", subtype="VORBIS")
    sf.write(src / "Tone.aiff", tone(400, 0.3, RATE), RATE, format="AIFF")  # collides on case-insensitive disks
    sf.write(src / "tone.wav", tone(500, 0.3, RATE), RATE)
    sf.write(src / "other.flac", tone(600, 0.3, RATE), RATE, format="FLAC")
    out = tmp_path / "out"
    manifest = convert_all(plan_mirror(src, out), out, RATE, workers=0, progress=False)
    outputs = {Path(c["input"]).name: Path(c["output"]).name for c in manifest["converted"]}
    assert outputs == {
        "tone.flac": "tone.flac.wav",
        "tone.ogg": "tone.ogg.wav",
        "Tone.aiff": "Tone.aiff.wav",
        "tone.wav": "tone.wav",
        "other.flac": "other.wav",
    }
    for name, freq in (("tone.flac.wav", 200), ("tone.ogg.wav", 300), ("Tone.aiff.wav", 400), ("tone.wav", 500)):
        x, _ = sf.read(out / name)
        assert abs(np.argmax(np.abs(np.fft.rfft(x))) * RATE / len(x) - freq) < 5, name  # each its own audio


def test_a_collision_that_distinct_names_cannot_resolve_is_refused_naming_both_inputs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a.flac", tone(200, 0.1, RATE), RATE, format="FLAC")
    sf.write(src / "a.ogg", tone(200, 0.1, RATE), RATE, format="OGG", subtype="VORBIS")
    sf.write(src / "a.flac.wav", tone(200, 0.1, RATE), RATE)  # already the name a.flac would get
    with pytest.raises(PreprocessError, match=r"a\.flac.*and .*a\.flac\.wav would both be converted to"):
        plan_mirror(src, tmp_path / "out")


def test_the_output_an_earlier_run_wrote_under_a_name_now_taken_apart_is_removed(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "tone.flac", tone(200, 0.3, RATE), RATE, format="FLAC")
    out = tmp_path / "out"
    convert_all(plan_mirror(src, out), out, RATE, workers=0, progress=False)
    assert (out / "tone.wav").is_file()
    sf.write(src / "tone.ogg", tone(300, 0.3, RATE), RATE, format="OGG", subtype="VORBIS")  # added later
    manifest = convert_all(plan_mirror(src, out), out, RATE, workers=0, progress=False)
    assert sorted(p.name for p in out.glob("*.wav")) == ["tone.flac.wav", "tone.ogg.wav"]  # no stale tone.wav
    assert [Path(p).name for p in manifest["removed_renamed_outputs"]] == ["tone.wav"]


def test_a_full_disk_stops_the_run_naming_the_file_and_a_later_run_tries_it_again(tmp_path, folders):
    src = tmp_path / "in"
    src.mkdir()
    for k in range(6):
        sf.write(src / f"{k}.wav", tone(440, 1.0, RATE), RATE)  # 44 kB each as 16-bit wav
    out = folders.small(160 * 1024)
    (out / "other_data.bin").write_bytes(b"\1" * 32 * 1024)  # someone else's file, taking space
    with pytest.raises(PreprocessError) as stopped:
        convert_all(plan_mirror(src, out), out, RATE, workers=0, progress=False)
    message = str(stopped.value)
    assert "2.wav: cannot write the converted file (No space left on device)" in message
    assert "stopped after converting 2 file(s)" in message
    assert half_written(out) == [] and not (out / "2.wav").exists()
    manifest = load_manifest(out)
    assert manifest["failed"] == []  # a full disk is not the input's fault
    assert [Path(u["input"]).name for u in manifest["unwritten"]] == ["2.wav"]
    (out / "other_data.bin").unlink()  # some space freed: the next run converts 2.wav, then fills up again
    with pytest.raises(PreprocessError, match="3.wav: cannot write"):
        convert_all(plan_mirror(src, out), out, RATE, workers=0, progress=False)
    assert sf.info(out / "2.wav").frames == RATE and load_manifest(out)["failed"] == []


def test_a_full_disk_stops_worker_processes_too(tmp_path, folders):
    src = tmp_path / "in"
    src.mkdir()
    for k in range(12):
        sf.write(src / f"{k:02d}.wav", tone(440, 1.0, RATE), RATE)
    out = folders.small(128 * 1024)
    with pytest.raises(PreprocessError, match="No space left on device"):
        convert_all(plan_mirror(src, out), out, RATE, workers=2, progress=False)
    assert half_written(out) == [] and load_manifest(out)["failed"] == []


def test_a_version_1_manifest_failures_are_tried_again(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "fine.wav", tone(440, 0.2, RATE), RATE)
    out = tmp_path / "out"
    stat = (src / "fine.wav").stat()
    out.mkdir()
    (out / "manifest.json").write_text(
        json.dumps(
            {
                "failed": [  # how version 1 recorded a full disk
                    {
                        "input": str((src / "fine.wav").resolve()),
                        "output": "x",
                        "reason": "cannot decode (LibsndfileError: System error.)",
                        "size": stat.st_size,
                        "mtime_ns": stat.st_mtime_ns,
                    }
                ]
            }
        )
    )
    manifest = convert_all(plan_mirror(src, out), out, RATE, workers=0, progress=False)
    assert manifest["counts"]["converted"] == 1 and manifest["version"] == 2


def test_a_read_only_output_folder_is_refused_before_anything_is_converted(tmp_path, folders, run_script):
    mixed_folder(tmp_path / "music")
    target = folders.read_only()
    result = run_script(
        "preprocess",
        "--dataset",
        "audio",
        "--dataset_dir",
        str(tmp_path / "music"),
        "--output_dir",
        str(target / "music_22050hz"),
    )
    assert_refused(result, str(target / "music_22050hz"), "--output_dir", "Read-only file system")
    assert result.stdout == ""


def test_an_input_the_user_may_not_read_is_reported_as_such_and_tried_again_next_run(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "locked.wav", tone(440, 0.2, RATE), RATE)
    sf.write(src / "open.wav", tone(440, 0.2, RATE), RATE)
    (src / "locked.wav").chmod(0)
    out = tmp_path / "out"

    def convert() -> dict:
        return convert_all(plan_mirror(src, out), out, RATE, workers=0, progress=False)

    manifest = run_unprivileged(convert)
    assert [(Path(f["input"]).name, f["reason"]) for f in manifest["failed"]] == [
        ("locked.wav", "cannot read audio (permission denied)")
    ]
    (src / "locked.wav").chmod(0o644)  # fixed: the mtime is unchanged, yet the file is tried again
    assert run_unprivileged(convert)["counts"] == {"converted": 1, "skipped": 1, "failed": 0}
