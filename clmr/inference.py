"""Whole files through a trained encoder: decoding, chunks batched across files, track tags.

A track is cut into consecutive chunks (`clmr.chunking`), each chunk is encoded to a 512-d
representation (`clmr.hear.ClmrModel`), and the track is the mean over its chunks: the mean
representation is its embedding, the mean of the chunk probabilities its tags (as linear evaluation
scores a track).

    for result in encode_files(paths, model): ...            # many files, chunks batched across files
    for prediction in predict_files(paths, model): ...       # a TagPrediction per usable file

Embeddings of many files into a resumable folder (`predict.py --embeddings`): `clmr.embeddings.embed_files`.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from clmr import evaluation
from clmr.audio import AUDIO_LENGTH, SAMPLE_RATE, AudioFileError, audio_error, find_audio_files, load_mono
from clmr.chunking import chunk_audio, chunk_centres_ms
from clmr.filenames import shown
from clmr.hear import ClmrModel

MIN_CHUNK_FRACTION = 0.5  # a file shorter than this much of a chunk is too short to describe
NON_FINITE_OUTPUT = "the encoder gave NaN or infinite values for this file (are its weights damaged?)"


def load_track(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, audio_length: int = AUDIO_LENGTH) -> np.ndarray:
    """Any file soundfile reads, mixed to mono and resampled to `sample_rate`.

    A track shorter than one chunk is zero-padded to one, as linear evaluation pads its test tracks;
    below half a chunk (`MIN_CHUNK_FRACTION`) most of what the encoder would see is padding, and the
    file is refused as too short.
    """
    if not Path(path).is_file():
        raise audio_error(path, "file not found")
    audio = load_mono(path, sample_rate)  # refuses NaN and infinite samples
    min_samples = int(np.ceil(MIN_CHUNK_FRACTION * audio_length))
    if audio.shape[0] < min_samples:
        raise audio_error(
            path,
            f"too short ({audio.shape[0] / sample_rate:.2f} s; at least "
            f"{min_samples / sample_rate:.2f} s, half a chunk, is needed)",
        )
    return audio


@dataclass
class EncodedTrack:
    """One file through the encoder: its chunk representations, or the reason it was skipped."""

    index: int  # position in the input list
    path: Path
    duration_s: float = 0.0
    embeddings: Tensor | None = None  # (n_chunks, 512)
    times_ms: np.ndarray | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def n_chunks(self) -> int:
        return 0 if self.embeddings is None else int(self.embeddings.shape[0])

    @property
    def embedding(self) -> Tensor:
        """The track embedding: the mean of its chunk representations."""
        return self.embeddings.mean(dim=0)


class _TrackChunks(torch.utils.data.Dataset):
    """Decodes file i into its chunks (in a DataLoader worker when workers > 0); errors are returned, not raised."""

    def __init__(self, paths: Sequence[Path], sample_rate: int, audio_length: int, hop_length: int):
        self.paths, self.sample_rate, self.audio_length, self.hop_length = paths, sample_rate, audio_length, hop_length

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            audio = load_track(self.paths[i], self.sample_rate, self.audio_length)
        except AudioFileError as err:
            return i, None, 0, str(err)
        chunks = chunk_audio(torch.from_numpy(audio), self.audio_length, self.hop_length).contiguous()
        return i, chunks, audio.shape[0], None


def _as_is(item):
    return item


@dataclass
class _Pending:
    track: EncodedTrack
    remaining: int = 0
    parts: list[Tensor] = field(default_factory=list)


def encode_files(paths: Sequence[str | os.PathLike], model: ClmrModel, workers: int = 0) -> Iterator[EncodedTrack]:
    """Encode every file's chunks, batching chunks across files; yields one EncodedTrack per file, in order.

    Files are decoded (and resampled) in `workers` DataLoader processes while the encoder runs.
    A file that cannot be used comes back with `error` set; the others are unaffected.
    """
    paths = [Path(p) for p in paths]
    loader = torch.utils.data.DataLoader(
        _TrackChunks(paths, model.sample_rate, model.audio_length, model.hop_length),
        batch_size=None,
        num_workers=workers,
        collate_fn=_as_is,
    )
    pending: deque[_Pending] = deque()
    queue: deque[tuple[_Pending, Tensor]] = deque()  # chunks waiting for the encoder
    queued = 0

    def run_batch() -> None:
        nonlocal queued
        pieces, owners, n = [], [], 0
        while queue and n < model.batch_size:
            entry, chunks = queue.popleft()
            take = min(chunks.shape[0], model.batch_size - n)
            if take < chunks.shape[0]:
                queue.appendleft((entry, chunks[take:]))
            pieces.append(chunks[:take])
            owners.append((entry, take))
            n += take
        queued -= n
        out = model.embed_chunks(torch.cat(pieces))
        offset = 0
        for entry, take in owners:
            entry.parts.append(out[offset : offset + take])
            entry.remaining -= take
            offset += take

    def finished() -> Iterator[EncodedTrack]:
        while pending and pending[0].remaining == 0:
            entry = pending.popleft()
            if entry.track.ok:
                embeddings = torch.cat(entry.parts)
                if torch.isfinite(embeddings).all():
                    entry.track.embeddings = embeddings
                else:  # finite audio, so the weights: nothing NaN may reach a tag score or an embedding
                    entry.track.error = f"{shown(entry.track.path)}: {NON_FINITE_OUTPUT}"
            yield entry.track

    for i, chunks, n_samples, error in loader:
        track = EncodedTrack(i, paths[i], n_samples / model.sample_rate, error=error)
        entry = _Pending(track)
        pending.append(entry)
        if chunks is not None:
            track.times_ms = chunk_centres_ms(n_samples, model.sample_rate, model.audio_length, model.hop_length)
            entry.remaining = chunks.shape[0]
            queue.append((entry, chunks))
            queued += chunks.shape[0]
        while queued >= model.batch_size:
            run_batch()
        yield from finished()
    while queued:
        run_batch()
    yield from finished()


def expand_paths(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, and every audio file below each folder (sorted); order kept, duplicates dropped."""
    out: list[Path] = []
    for item in inputs:
        item = Path(item)
        out.extend(find_audio_files(item) if item.is_dir() else [item])
    return list(dict.fromkeys(out))


# -- tags ----------------------------------------------------------------------------------------
@dataclass
class TagPrediction:
    """Tag probabilities of one track: per chunk and averaged over the track."""

    path: Path
    duration_s: float
    tag_names: list[str]
    chunk_probs: np.ndarray  # (n_chunks, n_tags)
    times_ms: np.ndarray  # (n_chunks,) centre of each chunk
    probs: np.ndarray  # (n_tags,) the track: mean over chunks

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs, kind="stable")[:k]
        return [(self.tag_names[i], float(self.probs[i])) for i in order]

    def to_json(self, k: int = 10) -> dict:
        return {
            "path": str(self.path),
            "duration_s": round(self.duration_s, 3),
            "n_chunks": len(self.chunk_probs),
            "tags": {tag: round(p, 6) for tag, p in self.top(k)},
        }


def predict_tags(track: EncodedTrack, model: ClmrModel) -> TagPrediction:
    """The head on every chunk; the track's scores are the mean over chunks, as linear evaluation scores a track."""
    chunk_probs = model.tag_probabilities(track.embeddings)
    track_probs = evaluation.track_level_scores(chunk_probs, np.zeros(len(chunk_probs), dtype=np.int64))[0]
    return TagPrediction(track.path, track.duration_s, model.tag_names, chunk_probs, track.times_ms, track_probs)


def predict_files(
    paths: Sequence[str | os.PathLike], model: ClmrModel, workers: int = 0
) -> Iterator[TagPrediction | EncodedTrack]:
    """A TagPrediction per usable file, in order; a file that cannot be used comes back as its EncodedTrack
    with `error` set."""
    for track in encode_files(paths, model, workers):
        if not track.ok:
            yield track
            continue
        prediction = predict_tags(track, model)
        if np.isfinite(prediction.chunk_probs).all():
            yield prediction
        else:
            track.error = f"{shown(track.path)}: the probe head gave NaN or infinite scores (are its weights damaged?)"
            yield track
