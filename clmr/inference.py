"""Using a trained encoder on any audio: whole-track chunking, tag prediction, embeddings, the HEAR API.

A track is cut into consecutive `audio_length` chunks (59,049 samples, 2.7 s at 22,050 Hz), each chunk
is encoded to a 512-d representation, and the track is the mean over its chunks: the mean
representation is its embedding, the mean of the chunk probabilities its tags (as linear evaluation
scores a track).

    model = load_model("encoder.ckpt", "head.ckpt")          # a ClmrModel; the head is optional
    get_scene_embeddings(audio, model)                       # (n_sounds, 512)
    get_timestamp_embeddings(audio, model)                   # (n_sounds, n_chunks, 512), centre times in ms
    for result in encode_files(paths, model): ...            # many files, chunks batched across files

Embeddings of many files into a resumable folder (`predict.py --embeddings`): `clmr.embeddings.embed_files`.
"""
from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from clmr import evaluation
from clmr.audio import AudioFileError, audio_error, find_audio_files, load_mono
from clmr.checkpoints import RANDOM, CheckpointError, file_sha256, load_encoder
from clmr.filenames import shown
from clmr.models import N_FEATURES

SAMPLE_RATE = 22050
AUDIO_LENGTH = 59049
BATCH_SIZE = 32  # chunks per forward pass of the encoder
MIN_CHUNK_FRACTION = 0.5  # a file shorter than this much of a chunk is too short to describe
NON_FINITE_OUTPUT = "the encoder gave NaN or infinite values for this file (are its weights damaged?)"


# -- chunking ------------------------------------------------------------------------------------
def chunk_starts(n_samples: int, audio_length: int = AUDIO_LENGTH, hop_length: int | None = None) -> np.ndarray:
    """First sample of each chunk: every `hop_length` while a whole chunk fits; a sound shorter than one
    chunk is one (zero-padded) chunk at 0. The default hop, `audio_length`, gives the consecutive
    chunks that linear evaluation scores (`clmr.evaluation.chunk_starts`)."""
    hop = hop_length or audio_length
    if hop <= 0 or audio_length <= 0:
        raise ValueError(f"audio_length {audio_length} and hop_length {hop} must be positive")
    if hop == audio_length:
        return np.asarray(evaluation.chunk_starts(n_samples, audio_length), dtype=np.int64)
    return np.arange(0, max(n_samples - audio_length, 0) + 1, hop, dtype=np.int64)


def chunk_audio(audio: Tensor, audio_length: int = AUDIO_LENGTH, hop_length: int | None = None) -> Tensor:
    """(..., n_samples) -> (..., n_chunks, audio_length), the chunks of `chunk_starts` (a view where possible)."""
    audio = torch.as_tensor(audio)
    if audio.shape[-1] < audio_length:
        audio = nn.functional.pad(audio, (0, audio_length - audio.shape[-1]))
    return audio.unfold(-1, audio_length, hop_length or audio_length)


def chunk_centres_ms(n_samples: int, sample_rate: int = SAMPLE_RATE, audio_length: int = AUDIO_LENGTH,
                     hop_length: int | None = None) -> np.ndarray:
    """The centre of each chunk in milliseconds (HEAR's timestamps)."""
    starts = chunk_starts(n_samples, audio_length, hop_length)
    return ((starts + audio_length / 2) * 1000.0 / sample_rate).astype(np.float32)


# -- the model -----------------------------------------------------------------------------------
class ClmrModel(nn.Module):
    """A frozen CLMR encoder, optionally with its probe head, and what is needed to use it on audio.

    HEAR attributes: `sample_rate`, `scene_embedding_size`, `timestamp_embedding_size` (512).
    `forward` maps chunks (batch, 1, audio_length) to representations (batch, 512).
    """

    scene_embedding_size = N_FEATURES
    timestamp_embedding_size = N_FEATURES

    def __init__(self, encoder: nn.Module, head: nn.Module | None = None, tag_names: Sequence[str] = (),
                 multilabel: bool = True, sample_rate: int = SAMPLE_RATE, audio_length: int = AUDIO_LENGTH,
                 hop_length: int | None = None, batch_size: int = BATCH_SIZE, fingerprint: str = "",
                 source: str = ""):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.tag_names = list(tag_names)
        self.multilabel = bool(multilabel)
        self.sample_rate = int(sample_rate)
        self.audio_length = int(audio_length)
        self.hop_length = int(hop_length or audio_length)
        self.batch_size = int(batch_size)
        self.fingerprint = fingerprint  # what embeddings depend on: weights (SHA-256) and chunking
        self.source = source            # the encoder checkpoint it came from
        self.eval()
        self.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    @torch.no_grad()
    def embed_chunks(self, chunks: Tensor) -> Tensor:
        """(n, audio_length) chunks -> (n, 512) float32 representations on the CPU, `batch_size` at a time."""
        chunks = torch.as_tensor(chunks, dtype=torch.float32).reshape(-1, 1, self.audio_length)
        out = [self.encoder(chunks[i:i + self.batch_size].to(self.device)).float().cpu()
               for i in range(0, chunks.shape[0], self.batch_size)]
        return torch.cat(out) if out else torch.zeros(0, N_FEATURES)

    @torch.no_grad()
    def tag_probabilities(self, representations: Tensor) -> np.ndarray:
        """(n, 512) -> (n, n_tags): sigmoid of the head for multi-label heads, softmax for single-label ones."""
        if self.head is None:
            raise CheckpointError("no probe head loaded: pass --finetuner_checkpoint_path")
        logits = self.head(representations.to(self.device)).float().cpu().numpy()
        return evaluation.probabilities(logits, self.multilabel)


def read_tag_names(path: str | os.PathLike) -> list[str]:
    """A JSON list of tag names (or an object with a `tags` list, as export.py writes beside the model)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--tags {path}: file not found")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"--tags {path}: not JSON ({err})") from None
    tags = data.get("tags") if isinstance(data, dict) else data
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise CheckpointError(f"--tags {path}: expected a JSON list of tag names")
    return tags


def load_head(path: str | os.PathLike, tags: Sequence[str] | str | None = None) -> tuple[nn.Module, list[str], bool]:
    """(head, tag names, multilabel) from a finetuner checkpoint (ours, or the original CLMR's).

    Tag names, first found: `tags` (a list, or a JSON file), the checkpoint's `tag_names`
    hyper-parameter, the `results.json` of the probe run the checkpoint belongs to
    (`<run>/checkpoints/best.ckpt` -> `<run>/results.json`), the names fixed in code for the dataset the
    checkpoint names (synthetic, gtzan); failing all, `tag_0 ... tag_{n-1}`.
    """
    from clmr.checkpoints import _hparams, head_state_dict, read_checkpoint
    from clmr.modules.linear_evaluation import build_head

    flag = "--finetuner_checkpoint_path"
    state = head_state_dict(path)
    if "0.weight" not in state or state["0.weight"].shape[-1] != N_FEATURES:
        raise CheckpointError(f"{flag} {path}: not a probe head on {N_FEATURES}-d representations "
                              f"(0.weight is {tuple(state['0.weight'].shape) if '0.weight' in state else 'missing'})")
    mlp = "2.weight" in state
    n_tags = state["2.weight" if mlp else "0.weight"].shape[0]
    head = build_head(N_FEATURES, n_tags, mlp)
    try:
        head.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(f"{flag} {path}: not a linear or MLP probe head ({str(err).splitlines()[0]})") from None
    head.eval().requires_grad_(False)
    obj = read_checkpoint(path, flag)
    hparams = _hparams(obj) if isinstance(obj, dict) else {}
    multilabel = hparams.get("multilabel")
    if multilabel is None:
        multilabel = _dataset_attr(hparams.get("dataset"), "multilabel", True)
    if isinstance(tags, (str, os.PathLike)):
        names = read_tag_names(tags) if str(tags) else []
    else:
        names = list(tags or [])
    names = names or list(hparams.get("tag_names") or []) or _run_tag_names(path, n_tags) \
        or _dataset_tag_names(hparams.get("dataset"), n_tags) or [f"tag_{i}" for i in range(n_tags)]
    if len(names) != n_tags:
        raise CheckpointError(f"{flag} {path}: the head has {n_tags} outputs but {len(names)} tag names were given")
    return head, [str(n) for n in names], bool(multilabel)


def _dataset_attr(dataset: str | None, attr: str, default):
    from clmr.datasets import REGISTRY, dataset_class

    if dataset not in REGISTRY:
        return default
    try:
        return getattr(dataset_class(dataset), attr, default)
    except ImportError:
        return default


def _run_tag_names(head_path: str | os.PathLike, n_tags: int) -> list[str]:
    """The tag names in the results.json of the probe run a head checkpoint was saved in."""
    results = Path(head_path).resolve().parent.parent / "results.json"
    try:
        tags = json.loads(results.read_text())["dataset"]["tags"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [str(t) for t in tags] if isinstance(tags, list) and len(tags) == n_tags else []


def _dataset_tag_names(dataset: str | None, n_tags: int) -> list[str]:
    """Tag names fixed in code for a dataset (synthetic's tags, GTZAN's genres)."""
    fixed = {"synthetic": ("clmr.datasets.synthetic", "TAGS"), "gtzan": ("clmr.datasets.gtzan", "GENRES")}
    if dataset not in fixed:
        return []
    import importlib

    names = list(getattr(importlib.import_module(fixed[dataset][0]), fixed[dataset][1]))
    return names if len(names) == n_tags else []


def load_model(model_file_path: str | os.PathLike, finetuner_checkpoint_path: str | os.PathLike | None = None,
               tags: Sequence[str] | str | None = None, hop_ms: float | None = None,
               batch_size: int = BATCH_SIZE, device: str | torch.device = "cpu") -> ClmrModel:
    """HEAR's `load_model`: a ClmrModel from an encoder checkpoint (ours or the original CLMR's), or
    `random` for a randomly initialised encoder (seed 0; BatchNorm at its initial statistics, so its
    output hardly depends on the input until `clmr.representations.calibrate_batchnorm`).

    With `finetuner_checkpoint_path` the model also predicts tags. `hop_ms` spaces the chunks of
    `get_timestamp_embeddings` (default: one chunk, 2.7 s, no overlap, as evaluation chunks a track).
    """
    encoder = load_encoder(model_file_path)
    head, names, multilabel = (None, [], True)
    if finetuner_checkpoint_path:
        head, names, multilabel = load_head(finetuner_checkpoint_path, tags)
    hparams = getattr(encoder, "checkpoint_hparams", {}) or {}
    sample_rate = int(hparams.get("sample_rate", SAMPLE_RATE))
    audio_length = int(hparams.get("audio_length", AUDIO_LENGTH))
    hop = max(1, round(hop_ms * sample_rate / 1000)) if hop_ms else audio_length
    fingerprint = "random-0" if str(model_file_path) == RANDOM else file_sha256(model_file_path)
    model = ClmrModel(encoder, head, names, multilabel, sample_rate, audio_length, hop, batch_size,
                      fingerprint=f"{fingerprint}:{audio_length}:{hop}:{sample_rate}", source=str(model_file_path))
    return model.to(device)


# -- the HEAR API --------------------------------------------------------------------------------
def _check_audio(audio: Tensor) -> Tensor:
    audio = torch.as_tensor(audio)
    if audio.ndim != 2:
        raise ValueError(f"audio must be (n_sounds, n_samples), got shape {tuple(audio.shape)}")
    return audio.float()


def get_timestamp_embeddings(audio: Tensor, model: ClmrModel) -> tuple[Tensor, Tensor]:
    """HEAR: (n_sounds, n_samples) mono audio at `model.sample_rate` ->
    embeddings (n_sounds, n_timestamps, 512) and their centre times in ms (n_sounds, n_timestamps).

    Chunks are `model.audio_length` samples every `model.hop_length`; a sound shorter than one chunk is
    zero-padded to one.
    """
    audio = _check_audio(audio)
    n_sounds, n_samples = audio.shape
    chunks = chunk_audio(audio, model.audio_length, model.hop_length)  # (n_sounds, n_chunks, L)
    n_chunks = chunks.shape[1]
    embeddings = model.embed_chunks(chunks.reshape(-1, model.audio_length)).reshape(n_sounds, n_chunks, -1)
    times = torch.from_numpy(chunk_centres_ms(n_samples, model.sample_rate, model.audio_length, model.hop_length))
    return embeddings.to(audio.device), times.expand(n_sounds, -1).contiguous().to(audio.device)


def get_scene_embeddings(audio: Tensor, model: ClmrModel) -> Tensor:
    """HEAR: (n_sounds, n_samples) mono audio at `model.sample_rate` -> (n_sounds, 512), the mean over chunks."""
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)


# -- whole files ---------------------------------------------------------------------------------
def load_track(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
               audio_length: int = AUDIO_LENGTH) -> np.ndarray:
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
        raise audio_error(path, f"too short ({audio.shape[0] / sample_rate:.2f} s; at least "
                                f"{min_samples / sample_rate:.2f} s, half a chunk, is needed)")
    return audio


@dataclass
class EncodedTrack:
    """One file through the encoder: its chunk representations, or the reason it was skipped."""

    index: int                        # position in the input list
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
        _TrackChunks(paths, model.sample_rate, model.audio_length, model.hop_length), batch_size=None,
        num_workers=workers, collate_fn=_as_is)
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
            entry.parts.append(out[offset:offset + take])
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
    chunk_probs: np.ndarray   # (n_chunks, n_tags)
    times_ms: np.ndarray      # (n_chunks,) centre of each chunk
    probs: np.ndarray         # (n_tags,) the track: mean over chunks

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        order = np.argsort(-self.probs, kind="stable")[:k]
        return [(self.tag_names[i], float(self.probs[i])) for i in order]

    def to_json(self, k: int = 10) -> dict:
        return {"path": str(self.path), "duration_s": round(self.duration_s, 3), "n_chunks": len(self.chunk_probs),
                "tags": {tag: round(p, 6) for tag, p in self.top(k)}}


def predict_tags(track: EncodedTrack, model: ClmrModel) -> TagPrediction:
    """The head on every chunk; the track's scores are the mean over chunks, as linear evaluation scores a track."""
    chunk_probs = model.tag_probabilities(track.embeddings)
    track_probs = evaluation.track_level_scores(chunk_probs, np.zeros(len(chunk_probs), dtype=np.int64))[0]
    return TagPrediction(track.path, track.duration_s, model.tag_names, chunk_probs, track.times_ms, track_probs)


def predict_files(paths: Sequence[str | os.PathLike], model: ClmrModel,
                  workers: int = 0) -> Iterator[TagPrediction | EncodedTrack]:
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


def taggram_paths(base: str | os.PathLike, paths: Sequence[Path]) -> dict[Path, Path]:
    """Where --taggram BASE.png draws each file: BASE.png for one file, BASE_<file stem>.png for several."""
    base = Path(base)
    if len(paths) == 1:
        return {paths[0]: base}
    out: dict[Path, Path] = {}
    used: set[Path] = set()
    for path in paths:
        target, k = base.with_name(f"{base.stem}_{path.stem}{base.suffix or '.png'}"), 1
        while target in used:
            k += 1
            target = base.with_name(f"{base.stem}_{path.stem}_{k}{base.suffix or '.png'}")
        used.add(target)
        out[path] = target
    return out


def format_prediction(pred: TagPrediction, k: int = 10) -> str:
    minutes, seconds = divmod(pred.duration_s, 60)
    n = len(pred.chunk_probs)
    lines = [f"{shown(pred.path)}  {int(minutes)}:{seconds:04.1f}  ({n} chunk{'' if n == 1 else 's'})"]
    width = max(len(t) for t, _ in pred.top(k))
    lines += [f"  {tag:<{width}}  {p:.3f}" for tag, p in pred.top(k)]
    return "\n".join(lines)
