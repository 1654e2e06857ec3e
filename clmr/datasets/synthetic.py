"""`synthetic`: a procedurally generated, multi-label tagged music dataset, written to disk on first use.

Each track is a few bars of tonal music: a key, a mode, a tempo, one to three melodic instruments
(a melody and accompaniment), optionally a bass line, drums and hi-hats, and a room. The tags say
what was generated and what a listener hears:

    piano    decaying harmonic tone, slightly stretched partials
    strings  sustained bowed pad, slow attack, vibrato
    synth    square or sawtooth lead with a flat envelope
    bells    inharmonic partials (Risset's bell), long ring
    bass     a plucked bass line below the chords
    drums    kick and snare
    hihat    short bright noise ticks
    fast     tempo 125-170 bpm (otherwise 60-95 bpm)
    high     melody and chords two octaves above the low register
    minor    minor mode (otherwise major)
    reverb   a long, wet hall (otherwise a small dry room)

Nuisances (random, untagged) keep the tags from being readable off loudness or brightness: the key,
the tuning, instrument levels, the drum sounds, the rhythm patterns, an EQ tilt and low-pass, pink
background noise and the peak level. Instruments and percussion are easy for a random encoder;
tempo, mode and reverb are not.

Track k depends only on (seed, k, sample_rate, duration), so adding tracks never changes the
others. The files live in `<dataset_dir>/synthetic/<fingerprint>/{train,valid,test}/NNNNN.wav`
beside `tags.json`, `annotations.csv` and `tracks.json`; `complete.json` is written last, and a
folder without it is deleted and generated again. Generation holds a file lock, so processes that
start together (DDP ranks) generate once and share the result.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np

from clmr.atomic import write_json, write_text
from clmr.audio import AUDIO_LENGTH, SAMPLE_RATE, write_wav
from clmr.datasets.dataset import SUBSETS, AudioDataset, DatasetError
from clmr.datasets.synthetic_music import TAGS, VERSION, Track, make_track, render  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

SPLIT = (0.70, 0.15, 0.15)  # train, valid, test
MARKER = "complete.json"


# -- the folder on disk -------------------------------------------------------------------------
def subset_sizes(n_tracks: int) -> dict[str, int]:
    """70/15/15, with at least one track in each of valid and test."""
    valid = max(1, round(SPLIT[1] * n_tracks))
    test = max(1, round(SPLIT[2] * n_tracks))
    return {"train": n_tracks - valid - test, "valid": valid, "test": test}


def min_tracks() -> int:
    """The fewest tracks whose 70/15/15 split leaves at least one in every subset."""
    n = 1
    while min(subset_sizes(n).values()) < 1:
        n += 1
    return n


def folder_name(n_tracks: int, duration: float, sample_rate: int, seed: int) -> str:
    return f"v{VERSION}-seed{seed}-{n_tracks}x{duration:g}s-{sample_rate}hz"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process to generate %s", path.with_suffix(""))
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _complete(folder: Path, fingerprint: dict) -> bool:
    try:
        return json.loads((folder / MARKER).read_text()) == fingerprint
    except (OSError, ValueError):
        return False


def ensure_generated(folder: Path, n_tracks: int, duration: float, sample_rate: int, seed: int) -> None:
    """Generate the dataset into `folder` unless a complete one is there; safe to call from many processes."""
    fingerprint = {
        "version": VERSION,
        "n_tracks": n_tracks,
        "duration": duration,
        "sample_rate": sample_rate,
        "seed": seed,
    }
    if _complete(folder, fingerprint):
        return
    with _locked(folder.parent / f"{folder.name}.lock"):
        if _complete(folder, fingerprint):  # another process finished while we waited
            return
        if folder.exists():
            log.warning("%s: incomplete (no %s), generating it again", folder, MARKER)
            shutil.rmtree(folder)
        generate(folder, n_tracks, duration, sample_rate, seed)
        write_json(folder / MARKER, fingerprint)


def generate(folder: Path, n_tracks: int, duration: float, sample_rate: int, seed: int) -> None:
    """Write every track, `tags.json`, `annotations.csv` and `tracks.json` (not the completion marker)."""
    began = time.perf_counter()
    log.info(
        "generating the synthetic dataset: %d tracks of %g s at %d Hz in %s", n_tracks, duration, sample_rate, folder
    )
    sizes = subset_sizes(n_tracks)
    subsets = [s for s in SUBSETS for _ in range(sizes[s])]
    rows, tracks = [], []
    for index, subset in enumerate(subsets):
        track, audio = make_track(seed, index, sample_rate, duration)
        file = f"{subset}/{index:05d}.wav"
        write_wav(folder / file, audio, sample_rate)
        tags = set(track.tags())
        rows.append([file, subset] + [int(tag in tags) for tag in TAGS])
        tracks.append({"file": file, "subset": subset, "tags": sorted(tags, key=TAGS.index), **asdict(track)})
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([["file", "subset"] + TAGS] + rows)
    write_text(folder / "annotations.csv", text.getvalue())
    write_json(folder / "tags.json", {"tags": TAGS})
    write_json(folder / "tracks.json", tracks)
    log.info("generated %d tracks in %.1f s", n_tracks, time.perf_counter() - began)


def read_annotations(folder: Path) -> tuple[list[str], list[dict]]:
    """Tag names and one row per track ({"file", "subset", tag: "0"/"1", ...}) from `annotations.csv`."""
    with open(folder / "annotations.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        tags = [name for name in reader.fieldnames or [] if name not in ("file", "subset")]
    return tags, rows


class SyntheticDataset(AudioDataset):
    """The embedded default: generated under `<root>/synthetic/` on first use, then read from disk."""

    name = "synthetic"
    multilabel = True
    TAG_NAMES = tuple(TAGS)
    CONFIG_KEYS = {"n_tracks": "synthetic_tracks", "duration": "synthetic_duration", "seed": "seed"}

    def __init__(
        self,
        root: str | os.PathLike,
        subset: str,
        sample_rate: int = SAMPLE_RATE,
        audio_length: int = AUDIO_LENGTH,
        n_tracks: int = 240,
        duration: float = 8.0,
        seed: int = 42,
    ):
        super().__init__(root, subset, sample_rate, audio_length)
        if n_tracks < min_tracks():
            raise DatasetError(f"synthetic_tracks is {n_tracks}; expected at least {min_tracks()} (one per subset)")
        if duration * sample_rate < audio_length:
            raise DatasetError(
                f"synthetic_duration {duration:g} s is {int(duration * sample_rate)} samples at "
                f"{sample_rate} Hz, shorter than audio_length {audio_length}"
            )
        self.n_tracks, self.duration, self.seed = int(n_tracks), float(duration), int(seed)
        self.folder = self.root / "synthetic" / folder_name(self.n_tracks, self.duration, sample_rate, self.seed)
        ensure_generated(self.folder, self.n_tracks, self.duration, sample_rate, self.seed)
        self.tag_names, rows = read_annotations(self.folder)
        rows = [row for row in rows if row["subset"] == subset]
        self.files = [self.folder / row["file"] for row in rows]
        self.targets = np.array([[float(row[tag]) for tag in self.tag_names] for row in rows], np.float32)
